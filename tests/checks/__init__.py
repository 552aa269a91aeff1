"""Tests of pytest_cudadeps.checks, a module each."""
