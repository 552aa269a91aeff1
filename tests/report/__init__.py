"""Tests of pytest_cudadeps.report, a module each."""
