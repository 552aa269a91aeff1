"""Tests of pytest_cudadeps.probes, a module each."""
