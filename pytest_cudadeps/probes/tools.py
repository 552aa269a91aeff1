"""Tools of the checked environment run as triton runs them: in a session of their own, with a timeout.

Running the wheel's ``ptxas`` is running foreign code, so it happens here, from an item's
``runtest``, never while the items are collected.  What triton 3.8.0 does with the answers is in
:mod:`pytest_cudadeps.engine.triton`; the findings are :mod:`pytest_cudadeps.checks.triton`'s.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_cudadeps.engine.triton import RELEASE, TOOLS, Triton

_OUTPUT_CAP = 64 << 10


@dataclass(frozen=True)
class ToolRun:
    """How one run of a tool ended: its exit status (None: killed at the timeout), its output, or why it did not start."""

    command: tuple[str, ...]
    returncode: int | None
    output: str
    error: str | None = None


def run_tool(command: Sequence[str], timeout: float) -> ToolRun:
    """Run a program of the checked environment in its own session, output to a file, killed with its group at the timeout."""
    with tempfile.TemporaryFile() as output:
        try:
            process = subprocess.Popen(list(command), stdin=subprocess.DEVNULL, stdout=output, stderr=output,
                                       start_new_session=True)
        except OSError as exc:  # FileNotFoundError, PermissionError, ENOEXEC: what triton would meet too
            return ToolRun(tuple(command), None, "", f"{type(exc).__name__}: {exc}")
        try:
            code: int | None = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            # the whole group, also after a normal exit: nothing the tool forked may outlive the item
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        output.seek(0)
        text = output.read(_OUTPUT_CAP).decode("utf-8", "replace")
    return ToolRun(tuple(command), code, text)


@dataclass(frozen=True)
class ToolVersion:
    """The tool triton settles on (None: none runs), its ``release X.Y``, and what went wrong with each path tried."""

    path: Path | None
    release: str
    tried: tuple[str, ...]


def tool_version(triton: Triton, name: str, environ: Mapping[str, str], timeout: float) -> ToolVersion:
    """The paths triton tries for ``name``, each asked ``--version``, as ``env_nvidia_tool`` does."""
    tried: list[str] = []
    for path in triton.tool(name, environ):
        run = run_tool([str(path), "--version"], timeout)
        if run.error is not None and not run.error.startswith("FileNotFoundError"):
            # NvidiaTool.from_path catches only CalledProcessError and FileNotFoundError: this one propagates
            return ToolVersion(None, "", (*tried, f"{path}: {run.error} (triton raises it)"))
        if run.error is not None:
            tried.append(f"{path}: missing")
            continue
        if run.returncode is None:
            tried.append(f"{path}: `--version` still running after {timeout:g} s")
            return ToolVersion(None, "", tuple(tried))
        match = RELEASE.search(run.output)
        if run.returncode == 0 and match:
            return ToolVersion(path, match.group(1), tuple(tried))
        tried.append(f"{path}: `--version` exited {run.returncode} ({first_line(run.output)})")
    return ToolVersion(None, "", tuple(tried))


def first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "no output")[:200]


_PTX = ".version 7.0\n.target sm_75\n.address_size 64\n.visible .entry cudadeps_probe() { ret; }\n"


def gpu_name(capability: tuple[int, int]) -> str:
    """``sm_arch_from_capability``: ``sm_120a`` for 12.0 (the ``a`` from 9.0 on), ``sm_86`` for 8.6."""
    cc = capability[0] * 10 + capability[1]
    return f"sm_{cc}{'a' if cc >= 90 else ''}"


@dataclass(frozen=True)
class Assembled:
    """One GPU architecture: the ptxas triton picks for it (``tool``, its version) and how assembling for it went
    (None: that ptxas does not run)."""

    arch: str
    tool: str
    version: ToolVersion
    run: ToolRun | None


def assemble_for(triton: Triton, capabilities: Sequence[tuple[int, int]], environ: Mapping[str, str],
                 timeout: float) -> list[Assembled]:
    """For each compute capability, a tiny PTX (target sm_75, which every newer ``--gpu-name`` accepts)
    assembled with ``--gpu-name=sm_XXa`` by the ptxas triton's compiler would call."""
    found = []
    with tempfile.TemporaryDirectory() as work:
        source = Path(work) / "probe.ptx"
        source.write_text(_PTX, encoding="ascii")
        for capability in sorted(set(capabilities)):
            name = TOOLS[1] if capability[0] >= 10 else TOOLS[0]  # get_ptxas(arch): arch >= 100
            version = tool_version(triton, name, environ, timeout)
            arch = gpu_name(capability)
            run = None if version.path is None else run_tool(
                [str(version.path), f"--gpu-name={arch}", str(source), "-o", str(Path(work) / "probe.cubin")], timeout)
            found.append(Assembled(arch, name, version, run))
    return found
