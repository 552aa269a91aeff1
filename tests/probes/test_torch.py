"""The torch child: started ahead and sent its steps in parts, one child for the loads and the import; the real
torch 2.14.1 on the CPU in the integration tier.  How the smoke[...] items word its answers is
tests/checks/test_smoke.py's."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pytest_cudadeps.checks.findings import Outcome
from pytest_cudadeps.checks.smoke import all_reduce_finding, compile_finding, matmul_finding
from pytest_cudadeps.probes.child.protocol import Loaded
from pytest_cudadeps.probes.load import LoadStep, library_steps
from pytest_cudadeps.probes.torch import probe_torch, send_steps, start_torch
from tests.support import venvs
from tests.support.fakes import misbehaving


@pytest.mark.integration
def test_real_torch_matmul_on_the_cpu_device(cuda_venv: Path) -> None:
    site = str(venvs.site_packages(cuda_venv))
    smoke = probe_torch([], timeout=120, devices=["cpu"], paths=[site]).smoke
    finding = matmul_finding(smoke, cpu_ok=True)
    assert finding.outcome is Outcome.PASS, finding.text()
    assert finding.message.startswith("cpu CPU: float32 ")
    assert ", conv2d ok (err " in finding.message  # the convolution ran (through cuDNN on a GPU)
    assert dict(finding.facts) == {"summary": finding.message, "torch": "2.14.1+cu130", "cuda": "13.0",
                                   "cudnn": "9.24.0", "cudnn_compiled": "9.24.0", "nccl": "2.30.7"}
    # the same child, asked for the GPUs this host does not have: a skip naming torch's own reason
    skip = matmul_finding(smoke)
    assert skip.outcome is Outcome.SKIP
    assert "Found no NVIDIA driver" in skip.message


@pytest.mark.integration
def test_real_torch_all_reduce_between_two_cpu_processes(cuda_venv: Path) -> None:
    site = str(venvs.site_packages(cuda_venv))
    smoke = probe_torch([], timeout=180, devices=["cpu", "cpu"], backend="gloo", paths=[site]).smoke
    finding = all_reduce_finding(smoke, cpu_ok=True)
    assert finding.outcome is Outcome.PASS, finding.text()
    assert finding.message.startswith("gloo all-reduce of 4 MiB across cpu, cpu: ")


@pytest.mark.integration
def test_one_torch_child_runs_the_products_and_the_all_reduce(cuda_venv: Path) -> None:
    """What a run does: torch is imported once, for the products and the all-reduce."""
    site = str(venvs.site_packages(cuda_venv))
    smoke = probe_torch([], timeout=240, devices=["cpu", "cpu"], backend="gloo", paths=[site]).smoke
    assert smoke.run.begun.count("import torch") == 1
    assert matmul_finding(smoke, cpu_ok=True).outcome is Outcome.PASS
    reduce = all_reduce_finding(smoke, cpu_ok=True)
    assert reduce.outcome is Outcome.PASS, reduce.text()
    assert reduce.message.startswith("gloo all-reduce of 4 MiB across cpu, cpu: ")
    # one device: the all-reduce's workers are never started
    single = probe_torch([], timeout=120, devices=["cpu"], paths=[site]).smoke
    assert single.all_reduce is None
    assert not [step for step in single.run.begun if step.startswith("all-reduce")]


@pytest.mark.integration
def test_real_torch_compile_on_the_cpu_device(cuda_venv: Path) -> None:
    """--cuda-deps-compile's path through the real torch: inductor builds a kernel (a C++ one on the CPU)."""
    run = probe_torch([], compile=True, devices=["cpu"], timeout=300, paths=[str(venvs.site_packages(cuda_venv))])
    finding = compile_finding(run.smoke, cpu_ok=True)
    assert finding.outcome is Outcome.PASS, finding.text()
    assert finding.message.startswith("torch.compile built and ran its kernel on cpu in ")


def test_a_torch_child_started_early_loads_the_rest_it_is_sent_then_imports_torch(tmp_path: Path, gcc: str) -> None:
    """start_torch starts the child before anything is known; send_steps sends torch's own libraries, and
    probe_torch the rest, to the same child."""
    good, noisy = misbehaving(gcc, tmp_path, "good"), misbehaving(gcc, tmp_path, "noisy")
    first = [LoadStep("root-lib", str(good))]
    rest = library_steps([("libnoisy.so.1", noisy)])
    empty = tmp_path / "site"  # no torch here: its import fails, after every load
    empty.mkdir()
    running = start_torch(timeout=60, paths=[str(empty)])
    send_steps(running, first)
    assert running.steps == ("root-lib",)
    run = probe_torch([*first, *rest], timeout=60, paths=[str(empty)], started=running)
    assert run.smoke.run.begun == ("root-lib", "libnoisy.so.1", "import torch")  # one child, in this order
    assert run.smoke.run.command == running.command
    assert all(isinstance(answer, Loaded) and answer.ok for answer in run.loads.values()), run.loads
    assert run.smoke.torch is not None
    assert run.smoke.torch.error is not None
    assert run.smoke.torch.error.startswith("ModuleNotFoundError: No module named 'torch'")


def test_a_torch_child_started_before_its_steps_were_known_can_be_sent_none(tmp_path: Path, gcc: str) -> None:
    running = start_torch(timeout=60, paths=[str(tmp_path)])  # a CPU torch: no libraries of its own to load
    run = probe_torch(library_steps([("libgood.so.1", misbehaving(gcc, tmp_path, "good"))]), timeout=60,
                      paths=[str(tmp_path)], started=running)
    assert run.smoke.run.begun == ("libgood.so.1", "import torch")
    assert run.smoke.run.command == running.command


def test_a_torch_child_whose_run_ends_before_the_rest_is_sent_imports_nothing(tmp_path: Path, gcc: str) -> None:
    running = start_torch(timeout=60, paths=[])
    send_steps(running, [LoadStep("root-lib", str(misbehaving(gcc, tmp_path, "good")))])
    run = running.wait()  # the parent gave up: the child's stdin ends after the first part
    assert run.ok, (run.trouble(), run.stderr)
    assert run.begun == ("root-lib",)


def test_a_torch_child_started_on_other_steps_is_not_used(tmp_path: Path, gcc: str) -> None:
    good = misbehaving(gcc, tmp_path, "good")
    running = start_torch(timeout=60, paths=[])
    send_steps(running, [LoadStep("other", str(good))])
    run = probe_torch([LoadStep("root-lib", str(good))], timeout=60, paths=[str(tmp_path)], started=running)
    assert run.smoke.run.begun == ("root-lib", "import torch")
    assert isinstance(run.loads["root-lib"], Loaded)
    assert running.process.returncode == 0  # ended, not left behind


def test_a_torch_child_has_its_timeout_from_the_last_part_of_its_request(tmp_path: Path, gcc: str) -> None:
    """Started ahead, it waits for the parent's walk (seconds on a large environment): not its own time."""
    running = start_torch(timeout=1.0, paths=[str(tmp_path)])
    time.sleep(1.5)  # the parent plans for longer than the child's timeout
    run = probe_torch(library_steps([("libgood.so.1", misbehaving(gcc, tmp_path, "good"))]), timeout=1.0,
                      paths=[str(tmp_path)], started=running)
    assert run.smoke.run.trouble() is None, run.smoke.run.stderr
    assert run.smoke.run.elapsed > 1.5
