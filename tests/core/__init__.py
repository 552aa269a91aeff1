"""Tests of pytest_cudadeps.core, a module each."""
