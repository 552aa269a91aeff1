"""Running the plugin under pytester on a fake torch 2.14.1 site, and reading what it printed."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

from tests.support import sitebuilder as sb

RUNTIME = "cudadeps::requires[torch>nvidia-cuda-runtime]"


RUNTIME_CHAIN = "torch 2.14.1 > cuda-toolkit[cudart] 13.0.3.0 > nvidia-cuda-runtime==13.0.96.*"


def expected_items_2_14_1() -> list[str]:
    """The item list of the intact torch 2.14.1 tree, from the tree's contents (not from the engine)."""
    reached = {d.key for d in (*sb.COMMON, *sb.CU13)}
    if sys.version_info >= (3, 10):
        reached -= {"importlib-metadata", "zipp"}  # only triton's `python_version < "3.10"` asks for them
    names = ["cuda-major[torch]", "installed-once[all]", *(f"requires[torch>{key}]" for key in reached), *SECURITY]
    names += ["toolchain[triton-cache]"] if "triton" in reached else []  # triton's kernel cache, writable here
    return sorted(f"cudadeps::{name}" for name in names)


def cuda_site(pytester: pytest.Pytester, *, omit: Iterable[str] = (), extra: Iterable[sb.Dist] = ()) -> Path:
    return sb.torch_2_14_1(pytester.path / "site", omit=omit, extra=extra)


def inner(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # the outer run imported pytest_cudadeps already, so the inner one cannot rewrite its asserts
    # the runtime probes are tested in face/test_probe_items.py; these trees hold no loadable libraries
    return pytester.runpytest_inprocess("-W", "ignore::pytest.PytestAssertRewriteWarning", "--cuda-deps-no-probes", *args)


def run_only(pytester: pytest.Pytester, site: Path, *args: str) -> pytest.RunResult:
    return inner(pytester, "--cuda-deps-only", f"--cuda-deps-path={site}", *args)


def failure_section(result: pytest.RunResult, nodeid: str) -> list[str]:
    """The lines pytest prints under ``____ nodeid ____`` in the FAILURES section."""
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if line.startswith("_") and f" {nodeid} " in line)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith(("_", "=")))
    return lines[start + 1:end]


# every run has these four, whatever the roots (pytest_cudadeps/security.py)
SECURITY = tuple(f"security[{kind}]" for kind in ("ld-library-path", "ld-preload", "rpath", "writable-folders"))
