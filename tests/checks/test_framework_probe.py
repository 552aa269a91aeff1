"""``framework[KEY]``: the child's answers worded, and a ``lazy[...]`` prediction held to what the framework mapped."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_cudadeps.checks.findings import Finding, Outcome, failed, passed, skipped
from pytest_cudadeps.checks.framework_probe import framework_finding
from pytest_cudadeps.checks.load import held_to
from pytest_cudadeps.engine.distributions import Distribution, scan
from pytest_cudadeps.probes.child.protocol import FrameworkDevices, FrameworkFacts
from pytest_cudadeps.probes.driver import Gpu
from pytest_cudadeps.probes.framework import FrameworkRun
from pytest_cudadeps.probes.runner import Blame
from pytest_cudadeps.tables.frameworks import Framework
from tests.support import sitebuilder as sb
from tests.support.frameworks import known_framework

GPU = Gpu(0, "NVIDIA H200", (9, 0), 141 << 30, "off")
NO_GPU = skipped("framework", "jax", "no GPU to check: NVML library not found (libnvidia-ml.so.1)")
REINSTALL = "pip install 'jax[cuda13]==0.10.2'"


JAX = known_framework("jax")
TF = known_framework("tensorflow")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return sb.build(tmp_path / "site", [sb.Dist("jax", "0.10.2"), sb.Dist("tensorflow", "2.21.0")])


def _dist(site: Path, key: str) -> Distribution:
    found = scan([site]).get(key)
    assert found is not None
    return found


def _all_mapped(site: Path, framework: Framework, *, but: tuple[str, ...] = ()) -> tuple[str, ...]:
    return tuple(str(site / lib.folders[0] / lib.soname) for lib in framework.libraries if lib.soname not in but)


def _finding(site: Path, run: FrameworkRun, gpus: tuple[Gpu, ...] | Finding, key: str = "jax") -> Finding:
    return framework_finding(run.framework, run, gpus, fixes={"libcudnn.so.9": "pip install 'nvidia-cudnn-cu13'"},
                             reinstall=REINSTALL, dist=_dist(site, key))


def test_a_library_it_needs_and_did_not_open_fails_in_its_own_words_with_that_library_s_fix(site: Path) -> None:
    facts = FrameworkFacts("0.10.2", refused="RuntimeError: Unable to load cuDNN. Is it installed?\nmore",
                           loaded=_all_mapped(site, JAX, but=("libcudnn.so.9",)))
    found = _finding(site, FrameworkRun(JAX, facts, None), NO_GPU)
    assert found.outcome is Outcome.FAIL
    assert found.message == ("jax 0.10.2 opened its CUDA libraries without libcudnn.so.9; it says: "
                             "RuntimeError: Unable to load cuDNN. Is it installed?")
    assert found.fix == "pip install 'nvidia-cudnn-cu13'"


def test_an_optional_library_it_did_not_open_is_no_failure(site: Path) -> None:
    optional = tuple(lib.soname for lib in JAX.libraries if lib.optional)
    assert "libnccl.so.2" in optional
    facts = FrameworkFacts("0.10.2", refused="RuntimeError: Unable to load cuPTI. Is it installed?",
                           loaded=_all_mapped(site, JAX, but=optional))
    found = _finding(site, FrameworkRun(JAX, facts, None), NO_GPU)
    assert found.outcome is Outcome.PASS
    # without a driver jax refuses CUDA anyway (cuPTI's error 999): a fact, not a failure
    assert dict(found.facts)["said"] == "RuntimeError: Unable to load cuPTI. Is it installed?"
    assert "opened 8 CUDA libraries from nvidia/cu13/lib (7), nvidia/cudnn/lib (1)" in found.message
    assert "its devices and a product not run (no GPU to check" in found.message


def test_tensorflow_opens_its_libraries_only_once_it_found_a_gpu(site: Path) -> None:
    only_cudart = (str(site / "nvidia/cuda_runtime/lib/libcudart.so.12"),)
    without_gpu = _finding(site, FrameworkRun(TF, FrameworkFacts("2.21.0", loaded=only_cudart), None), NO_GPU,
                           "tensorflow")
    assert without_gpu.outcome is Outcome.PASS
    devices = FrameworkDevices(("/physical_device:GPU:0",), computed=True)
    with_gpu = _finding(site, FrameworkRun(TF, FrameworkFacts("2.21.0", loaded=only_cudart), devices), (GPU,),
                        "tensorflow")
    assert with_gpu.outcome is Outcome.FAIL
    assert "without libcublas.so.12" in with_gpu.message


@pytest.mark.parametrize(("devices", "outcome", "words"), [
    (FrameworkDevices(("cuda:0",), computed=True), Outcome.PASS, "1 GPU(s) (cuda:0), a product on the first right"),
    (FrameworkDevices(("cuda:0",), computed=False, failure="the product of ones is not 256 everywhere"),
     Outcome.FAIL, "a product of ones came out wrong"),
    (FrameworkDevices(error="RuntimeError: Unknown backend cuda"), Outcome.FAIL,
     "sees no GPU although the driver does: RuntimeError: Unknown backend cuda"),
    (Blame("crashed (SIGSEGV)", ("Segmentation fault",)), Outcome.FAIL, "crashed (SIGSEGV)"),
])
def test_on_a_gpu_its_devices_and_the_product_decide(site: Path, devices: FrameworkDevices | Blame,
                                                     outcome: Outcome, words: str) -> None:
    facts = FrameworkFacts("0.10.2", loaded=_all_mapped(site, JAX))
    found = _finding(site, FrameworkRun(JAX, facts, devices), (GPU,))
    assert found.outcome is outcome
    assert words in found.message
    assert found.fix == ("" if outcome is Outcome.PASS else REINSTALL)


def test_an_import_that_fails_or_dies(site: Path) -> None:
    raised = _finding(site, FrameworkRun(JAX, FrameworkFacts(error="ModuleNotFoundError: No module named 'jaxlib'"),
                                         None), NO_GPU)
    assert raised.outcome is Outcome.FAIL
    assert raised.fix == REINSTALL
    assert raised.message == "`import jax` fails: ModuleNotFoundError: No module named 'jaxlib'"
    killed = _finding(site, FrameworkRun(JAX, Blame("killed from outside (SIGKILL)", ()), None), NO_GPU)
    assert killed.outcome is Outcome.FAIL
    assert killed.fix.startswith("nothing in this environment: rerun")
    hung = _finding(site, FrameworkRun(JAX, Blame("hung (no answer in 10 s)", ()), None), NO_GPU)
    assert hung.fix == f"raise --cuda-deps-timeout if this host is just slow; otherwise {REINSTALL}"


def test_require_gpu_fails_where_there_is_none(site: Path) -> None:
    required = failed("framework", "jax", "no GPU to check, but --cuda-deps-require-gpu asks for a GPU", fix="x")
    found = _finding(site, FrameworkRun(JAX, FrameworkFacts("0.10.2", loaded=_all_mapped(site, JAX)), None), required)
    assert found is required


def test_a_lazy_prediction_is_held_to_what_the_framework_mapped(tmp_path: Path) -> None:
    wheel = tmp_path / "site/nvidia/cu13/lib/libnvvm.so.4"
    system = tmp_path / "usr/local/cuda/lib/libnvvm.so.4"
    for path in (wheel, system):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"\x7fELF")
    missing = failed("lazy", "numba-cuda>cuda.pathfinder>libnvvm.so.4", "libnvvm.so.4 is not where it looks",
                     fix="pip install 'nvidia-nvvm==13.5.37.*'")
    by = "cuda.pathfinder's own loading"
    # the framework found the declared wheel's copy the model missed: the loader's verdict, a pass
    right = held_to(missing, "libnvvm.so.4", str(wheel), [wheel], by=by)
    assert right.outcome is Outcome.PASS
    assert dict(right.facts)["model"] == "wrong"
    assert right.message.startswith(f"libnvvm.so.4 -> {wheel} after {by} (the declared wheel's copy)")
    # a copy from outside the wheels (a system CUDA): a foreign library, with the wheel's fix
    foreign = held_to(missing, "libnvvm.so.4", str(system), [], by=by)
    assert foreign.outcome is Outcome.FAIL
    assert foreign.fix == missing.fix
    assert f"is mapped from {system} after {by}, not from the declared wheel" in foreign.message
    # the model and the process agree: the finding stands, with the truth as a fact
    agreed = passed("lazy", "numba-cuda>cuda.pathfinder>libnvvm.so.4", "ok", path=str(wheel))
    assert dict(held_to(agreed, "libnvvm.so.4", str(wheel), [wheel], by=by).facts)["loader"] == f"agrees: mapped after {by}"
