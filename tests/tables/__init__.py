"""Tests of pytest_cudadeps.tables, a module each."""
