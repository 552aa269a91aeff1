"""The version of pytest-cudadeps, in a module of its own: the report names it without importing the package's faces."""

__version__ = "0.1.0"
