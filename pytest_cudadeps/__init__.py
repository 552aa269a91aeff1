"""pytest-cudadeps: check that a Python environment can really run PyTorch on CUDA."""

__version__ = "0.1.0"
