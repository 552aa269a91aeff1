"""The load child: each library opened in a child with a timeout, a crash or a hang blamed on its step and the rest
still loaded.  How the load[...] items word the answers is tests/checks/test_load.py's."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pytest_cudadeps.checks.findings import Outcome
from pytest_cudadeps.checks.load import load_finding
from pytest_cudadeps.probes.child.protocol import Loaded
from pytest_cudadeps.probes.load import LoadStep, library_steps, probe_loads, torch_steps
from pytest_cudadeps.probes.runner import Blame
from tests.support import venvs
from tests.support.fakes import misbehaving


def test_each_bad_constructor_is_reported_and_the_rest_still_load(tmp_path: Path, gcc: str) -> None:
    libs = {kind: misbehaving(gcc, tmp_path, kind) for kind in ("good", "segv", "hang", "exit0", "noisy")}
    order = ["segv", "good", "hang", "exit0", "noisy"]
    steps = library_steps([(libs[k].name, libs[k]) for k in order])
    results = probe_loads(steps, timeout=2)  # each bad library costs its own child, the rest go on
    findings = {s.name: load_finding(s, results[s.name]) for s in steps}
    assert [findings[libs[k].name].outcome for k in order] == [
        Outcome.FAIL, Outcome.PASS, Outcome.FAIL, Outcome.FAIL, Outcome.PASS]
    assert findings["libsegv.so.1"].message == f"loading {libs['segv']} crashed: killed by signal 11 (SIGSEGV)"
    assert findings["libhang.so.1"].message == f"loading {libs['hang']} hung: no answer within 2 s (killed)"
    assert "--cuda-deps-timeout" in findings["libhang.so.1"].fix
    assert "exit status 0" in findings["libexit0.so.1"].message
    assert dict(findings["libgood.so.1"].facts)["mapped"] == str(libs["good"])
    assert dict(findings["libnoisy.so.1"].facts)["mapped"] == str(libs["noisy"])  # its printf did not garble


def test_a_crash_in_the_root_library_is_blamed_once_and_libraries_still_load(tmp_path: Path, gcc: str) -> None:
    segv = misbehaving(gcc, tmp_path, "segv")
    good = misbehaving(gcc, tmp_path, "good")
    steps = [LoadStep("root", str(segv)), *library_steps([("libgood.so.1", good)])]
    results = probe_loads(steps, timeout=30)
    assert results["root"] == Blame("crashed: killed by signal 11 (SIGSEGV)", ())
    assert results["libgood.so.1"] == Loaded(True, str(good), "opened")


@pytest.mark.integration
def test_real_torch_loads_and_maps_the_wheels_cudart(cuda_venv: Path) -> None:
    site = venvs.site_packages(cuda_venv)
    wheel_cudart = site / "nvidia" / "cu13" / "lib" / "libcudart.so.13"
    steps = [*torch_steps(site / "torch"),
             *library_steps([("libcudart.so.13", wheel_cudart), ("libcublas.so.13", site / "nvidia/cu13/lib/libcublas.so.13")])]
    results = probe_loads(steps, timeout=60, paths=[str(site)], inhibit_ld_cache=True)
    findings = [load_finding(s, results[s.name]) for s in steps]
    assert [f.outcome for f in findings] == [Outcome.PASS] * 4, [f.text() for f in findings]
    assert dict(findings[2].facts)["mapped"] == str(wheel_cudart)
    assert dict(findings[2].facts)["how"] == "already mapped"  # pulled in by libtorch_cuda.so's RPATH


def test_a_background_process_left_by_a_constructor_neither_hangs_the_step_nor_outlives_it(
        tmp_path: Path, gcc: str) -> None:
    """A step ends on the child's own exit, not on the EOF of the pipes the forked process holds open."""
    forking, good = misbehaving(gcc, tmp_path, "fork"), misbehaving(gcc, tmp_path, "good")
    steps = library_steps([(forking.name, forking), (good.name, good)])
    results = probe_loads(steps, timeout=20)
    # a step that waited for the pipes' EOF would have run into its timeout and been blamed as hung
    assert results == {forking.name: Loaded(True, str(forking), "opened"), good.name: Loaded(True, str(good), "opened")}
    leftovers = subprocess.run(["pgrep", "-f", f"{tmp_path}"], capture_output=True, text=True).stdout.split()
    assert leftovers == []  # the background process went with the child's process group
