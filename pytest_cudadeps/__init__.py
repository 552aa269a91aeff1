"""pytest-cudadeps: check that a Python environment can really run PyTorch (and JAX, CuPy...) on CUDA.

The public names, importable from here: :class:`CudaEnv` (what the ``cuda_env`` fixture gives a test),
:class:`CudaDepsWarning`, :class:`Finding` and :class:`Outcome` (one check's result), :class:`Cause` (a
root cause and its one fix).  They are imported on first use: pytest imports this package in every run
where the plugin is installed, and a run without ``--cuda-deps`` pays for none of them.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from pytest_cudadeps._version import __version__

if TYPE_CHECKING:
    from pytest_cudadeps.checks.findings import Finding, Outcome
    from pytest_cudadeps.fixture import CudaEnv
    from pytest_cudadeps.options import CudaDepsWarning
    from pytest_cudadeps.report.causes import Cause

__all__ = ["Cause", "CudaDepsWarning", "CudaEnv", "Finding", "Outcome", "__version__"]

_HOMES = {
    "Cause": "pytest_cudadeps.report.causes",
    "CudaDepsWarning": "pytest_cudadeps.options",
    "CudaEnv": "pytest_cudadeps.fixture",
    "Finding": "pytest_cudadeps.checks.findings",
    "Outcome": "pytest_cudadeps.checks.findings",
}


def __getattr__(name: str) -> object:
    """The public names, imported from their modules when first asked (PEP 562)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
