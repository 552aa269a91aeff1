"""Tests of pytest_cudadeps.probes.child, a module each."""
