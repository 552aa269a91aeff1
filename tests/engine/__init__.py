"""Tests of pytest_cudadeps.engine, a module each."""
