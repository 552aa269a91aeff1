"""Helpers of the tests: fake trees, gcc-built objects, real venvs, bounds by counting."""
