"""The torch child: started ahead, imports torch first and is sent the rest of its steps; the real torch 2.14.1
on the CPU in the integration tier.  How the smoke[...] items word its answers is tests/checks/test_smoke.py's."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pytest_cudadeps.checks.findings import Outcome
from pytest_cudadeps.checks.smoke import all_reduce_finding, compile_finding, matmul_finding
from pytest_cudadeps.probes.child.protocol import Loaded
from pytest_cudadeps.probes.load import LoadStep, library_steps
from pytest_cudadeps.probes.torch import probe_torch, start_torch
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


def test_a_torch_child_started_early_imports_torch_at_once_then_loads_what_it_is_sent(tmp_path: Path,
                                                                                     gcc: str) -> None:
    """start_torch starts the child before anything is known, and it imports torch at once; probe_torch sends the
    libraries to ask for, which the same child opens after the import."""
    good, noisy = misbehaving(gcc, tmp_path, "good"), misbehaving(gcc, tmp_path, "noisy")
    steps = [LoadStep("root-lib", str(good)), *library_steps([("libnoisy.so.1", noisy)])]
    empty = tmp_path / "site"  # no torch here: its import fails, and the libraries are opened after it
    empty.mkdir()
    running = start_torch(timeout=60, paths=[str(empty)])
    run = probe_torch(steps, timeout=60, paths=[str(empty)], started=running)
    assert run.smoke.run.begun == ("import torch", "root-lib", "libnoisy.so.1")  # one child, in this order
    assert run.smoke.run.command == running.command
    assert all(isinstance(answer, Loaded) and answer.ok for answer in run.loads.values()), run.loads
    assert run.smoke.torch is not None
    assert run.smoke.torch.error is not None
    assert run.smoke.torch.error.startswith("ModuleNotFoundError: No module named 'torch'")


FAKE_TORCH = """import ctypes, types
ctypes.CDLL({library!r})  # what torch/__init__.py does with its CUDA libraries: open them by path
__version__ = "2.14.1+cu130"
version = types.SimpleNamespace(cuda="13.0")
cuda = types.SimpleNamespace(device_count=lambda: 0, init=lambda: None, nccl=types.SimpleNamespace(version=lambda: None))
backends = types.SimpleNamespace(cudnn=types.SimpleNamespace(version=lambda: None))
"""


def test_a_library_the_import_mapped_is_answered_from_where_it_was_mapped(tmp_path: Path, gcc: str) -> None:
    """The truth: after `import torch`, the loader's own answer for each soname, not a dlopen of the prediction."""
    site = tmp_path / "site"
    mapped = misbehaving(gcc, site / "mapped", "good")
    elsewhere = misbehaving(gcc, site / "elsewhere", "good")  # where a static model might have predicted it
    (site / "torch").mkdir(parents=True)
    (site / "torch" / "__init__.py").write_text(FAKE_TORCH.format(library=str(mapped)))
    run = probe_torch(library_steps([("libgood.so.1", elsewhere)]), timeout=60, paths=[str(site)])
    assert run.smoke.torch is not None
    assert run.smoke.torch.error is None, run.smoke.torch.error
    assert str(mapped) in run.smoke.torch.loaded
    assert run.loads["libgood.so.1"] == Loaded(True, str(mapped), "already mapped")


def test_a_torch_child_whose_run_ends_before_the_rest_is_sent_does_nothing_more(tmp_path: Path) -> None:
    running = start_torch(timeout=60, paths=[str(tmp_path)])
    run = running.wait()  # the parent gave up: the child's stdin ends after the first part
    assert run.ok, (run.trouble(), run.stderr)
    assert run.begun == ("import torch",)


def test_a_torch_child_has_its_timeout_from_the_last_part_of_its_request(tmp_path: Path, gcc: str) -> None:
    """Started ahead, it waits for the parent's walk (seconds on a large environment): not its own time."""
    running = start_torch(timeout=1.0, paths=[str(tmp_path)])
    time.sleep(1.5)  # the parent plans for longer than the child's timeout
    run = probe_torch(library_steps([("libgood.so.1", misbehaving(gcc, tmp_path, "good"))]), timeout=1.0,
                      paths=[str(tmp_path)], started=running)
    assert run.smoke.run.trouble() is None, run.smoke.run.stderr
    assert run.smoke.run.elapsed > 1.5
