"""The load[...] items: what the load child answered, worded (the dlerror text as it is, a copy mapped from elsewhere
than the linkage check predicted, a missing driver library); the answers come from real children on gcc-built
libraries."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_cudadeps.checks.findings import Outcome
from pytest_cudadeps.checks.load import load_finding
from pytest_cudadeps.engine.installers import reinstall_command
from pytest_cudadeps.probes.child.protocol import Loaded
from pytest_cudadeps.probes.load import LoadStep, library_steps, probe_loads
from tests.support.fakes import misbehaving, needing


def test_dlerror_text_is_reported_exactly(tmp_path: Path, gcc: str) -> None:
    dep = misbehaving(gcc, tmp_path / "elsewhere", "good")
    lib = needing(gcc, tmp_path / "libneeds.so.1", dep)
    steps = library_steps([("libneeds.so.1", lib)], fixes={"libneeds.so.1": reinstall_command("", "nvidia-needs-cu13")})
    finding = load_finding(steps[0], probe_loads(steps, timeout=30)["libneeds.so.1"])
    assert finding.outcome is Outcome.FAIL
    assert finding.message == (f"dlopen({lib}) failed: libgood.so.1: cannot open shared object file: "
                               "No such file or directory")
    assert finding.fix == "pip install --force-reinstall --no-deps 'nvidia-needs-cu13'"


def test_a_copy_mapped_from_elsewhere_than_predicted_fails_showing_both(tmp_path: Path, gcc: str) -> None:
    predicted = misbehaving(gcc, tmp_path / "wheel", "good")
    shadow = misbehaving(gcc, tmp_path / "system", "good")
    root = needing(gcc, tmp_path / "root" / "libroot.so", predicted)  # no RPATH: LD_LIBRARY_PATH decides
    steps = [LoadStep("root", str(root)), *library_steps([("libgood.so.1", predicted)])]
    results = probe_loads(steps, timeout=30, env={"LD_LIBRARY_PATH": str(shadow.parent)})
    root_result = results["root"]
    assert isinstance(root_result, Loaded)
    assert root_result.ok
    finding = load_finding(steps[1], results["libgood.so.1"])
    assert finding.outcome is Outcome.FAIL
    assert finding.message == f"libgood.so.1 was mapped from {shadow} (already mapped)"
    assert finding.details == (f"the static model predicted {predicted}; {shadow} is a different file",)
    assert str(shadow.parent) in finding.fix
    # the same tree, with the predicted folder first: the prediction holds
    results = probe_loads(steps, timeout=30, env={"LD_LIBRARY_PATH": str(predicted.parent)})
    assert load_finding(steps[1], results["libgood.so.1"]).outcome is Outcome.PASS


@pytest.mark.parametrize("require_gpu", [False, True])
def test_missing_driver_library_skips_or_fails(require_gpu: bool) -> None:
    steps = library_steps([("libcuda.so.1", None)])
    results = probe_loads(steps, timeout=30, env={"LD_LIBRARY_PATH": ""})
    finding = load_finding(steps[0], results["libcuda.so.1"], require_gpu=require_gpu)
    assert finding.outcome is (Outcome.FAIL if require_gpu else Outcome.SKIP)
    assert finding.message.startswith("libcuda.so.1 not found: no NVIDIA driver on this host")
