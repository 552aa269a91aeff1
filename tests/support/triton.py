"""Triton trees for the tests: triton 3.8.0's layout beside torch 2.14.1, with a fake ptxas; the real triton of a venv."""

from __future__ import annotations

from pathlib import Path

from pytest_cudadeps.checks.findings import Finding
from pytest_cudadeps.checks.triton import ptxas_finding
from pytest_cudadeps.engine.distributions import scan
from pytest_cudadeps.engine.triton import Triton, find_triton
from pytest_cudadeps.probes.tools import tool_version
from tests.support import sitebuilder as sb
from tests.support import venvs

NVIDIA_BIN = "triton/backends/nvidia/bin"


FAKE_PTXAS = "#!/bin/sh\necho 'ptxas: NVIDIA (R) Ptx optimizing assembler'\necho 'Cuda compilation tools, release 12.9, V12.9.86'\n"


def ptxas(triton: Triton, name: str, environ: dict[str, str], timeout: float) -> Finding:
    """The item as the plan runs it: the tool asked in its own process, then worded."""
    return ptxas_finding(triton, name, tool_version(triton, name, environ, timeout))


def triton_tree(tmp_path: Path, version: str = "3.8.0", ptxas: str | None = FAKE_PTXAS) -> Triton:
    """torch 2.14.1 with a triton of ``version`` whose nvidia backend has ``ptxas`` (a script) in its bin folder."""
    files = {"triton/__init__.py": "", "triton/backends/nvidia/__init__.py": ""}
    if ptxas is not None:
        files[f"{NVIDIA_BIN}/ptxas"] = ptxas
    site = sb.torch_2_14_1(tmp_path / "site", omit=["triton"], extra=[sb.Dist("triton", version, files=files)])
    if ptxas is not None:
        (site / NVIDIA_BIN / "ptxas").chmod(0o755)
    found = find_triton(scan([site]))
    assert found is not None
    return found


def executable(folder: Path, name: str, text: str = "#!/bin/sh\nexit 0\n") -> Path:
    """A shell script ``folder/name`` with the execute bit (a compiler, an ldconfig, a ptxas)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    path.chmod(0o755)
    return path


def venv_triton(venv: Path) -> Triton:
    """The real triton of a venv (read only: its ptxas is run, nothing is written)."""
    found = find_triton(scan([venvs.site_packages(venv)]))
    assert found is not None
    return found
