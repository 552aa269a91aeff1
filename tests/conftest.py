from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import venvs


@pytest.fixture(scope="session")
def cuda_venv() -> Path:
    """The cached real torch 2.14.1 (CUDA 13) venv. Never write into it: use ``scenario``."""
    return venvs.base_venv(venvs.CUDA_TORCH)


@pytest.fixture(scope="session")
def cpu_venv() -> Path:
    return venvs.base_venv(venvs.CPU_TORCH)


@pytest.fixture
def scenario(cuda_venv: Path, tmp_path: Path) -> Callable[..., Path]:
    """A hard-link copy of the real venv with the named distributions uninstalled; returns the venv."""

    def make(*uninstall: str) -> Path:
        venv = venvs.copy_venv(cuda_venv, tmp_path / "venv")
        if uninstall:
            result = venvs.pip(venv, "uninstall", "-y", *uninstall)
            assert result.returncode == 0, result.stderr
        return venv

    return make


@pytest.fixture(scope="session")
def gcc() -> str:
    found = shutil.which("gcc")
    if not found:
        pytest.skip("gcc is needed to build ELF test files")
    return found


@pytest.fixture(scope="module")
def gxx() -> str:
    found = shutil.which("g++")
    if not found:
        pytest.skip("g++ is needed to build C++ test libraries")
    return found
