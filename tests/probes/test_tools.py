"""Tools of the checked environment run as triton runs them (ptxas, on triton trees with a fake one): the release
read from ``--version``, each path tried, a tool that cannot run or hangs; and the GPU names triton passes to ptxas."""

from __future__ import annotations

from pathlib import Path

from pytest_cudadeps.checks.findings import Outcome
from pytest_cudadeps.probes.tools import gpu_name
from tests.support.triton import ptxas, triton_tree


def test_gpu_names_as_triton_writes_them() -> None:
    assert [gpu_name(c) for c in [(8, 6), (9, 0), (12, 0)]] == ["sm_86", "sm_90a", "sm_120a"]


def test_a_fake_ptxas_runs_and_its_release_is_read(tmp_path: Path) -> None:
    found = ptxas(triton_tree(tmp_path), "ptxas", {}, 30)
    assert found.outcome is Outcome.PASS
    assert found.message.endswith("ptxas is CUDA 12.9")


def test_missing_ptxas_fails_and_a_missing_variable_falls_back(tmp_path: Path) -> None:
    triton = triton_tree(tmp_path)
    assert ptxas(triton, "ptxas", {"TRITON_PTXAS_PATH": "/nowhere/ptxas"}, 30).outcome is Outcome.PASS
    gone = ptxas(triton, "ptxas-blackwell", {}, 30)
    assert gone.outcome is Outcome.FAIL
    assert "Cannot find ptxas-blackwell" in gone.message
    assert gone.details == (f"tried: {triton.nvidia / 'bin' / 'ptxas-blackwell'}: missing",)


def test_a_ptxas_without_execute_bit_is_the_permission_error_triton_raises(tmp_path: Path) -> None:
    triton = triton_tree(tmp_path)
    (triton.nvidia / "bin" / "ptxas").chmod(0o644)
    found = ptxas(triton, "ptxas", {}, 30)
    assert found.outcome is Outcome.FAIL
    assert "PermissionError" in found.details[0]
    assert "(triton raises it)" in found.details[0]


def test_a_hanging_ptxas_is_killed_at_the_timeout(tmp_path: Path) -> None:
    triton = triton_tree(tmp_path, ptxas="#!/bin/sh\nsleep 30 &\nsleep 30\n")
    found = ptxas(triton, "ptxas", {}, 0.5)
    assert found.outcome is Outcome.FAIL
    assert "still running after 0.5 s" in found.details[0]
