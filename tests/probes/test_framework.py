"""The framework child, on fake frameworks in tmp folders whose code does what the real ones do (CDLL their
gcc-built libraries, log their refusal and go on, raise, crash): what it answers is what the process did."""

from __future__ import annotations

import sys
from pathlib import Path

from pytest_cudadeps.probes.child.protocol import FrameworkDevices, FrameworkFacts
from pytest_cudadeps.probes.framework import probe_framework
from pytest_cudadeps.probes.runner import Blame
from tests.support.frameworks import known_framework
from tests.support.onnxruntime import lib

ORT = known_framework("onnxruntime-gpu")
JAX = known_framework("jax")

PRELOADING = """
import ctypes, os, sys
__version__ = "9.9.9"
def preload_dlls():
    sys.stderr.write("preloading the CUDA libraries\\n")
    ctypes.CDLL(os.path.join(os.path.dirname(os.path.dirname(__file__)), "nvidia/cu13/lib/libcublasLt.so.13"))
"""

# jax 0.10.2's way: the plugin's failure is logged (with its traceback) and the CPU backend goes on
JAX_LOGGING = """
import logging, os, ctypes
__version__ = "0.10.2"
logger = logging.getLogger("jax._src.xla_bridge")
def devices(backend=None):
    if backend == "cuda":
        raise RuntimeError("Unknown backend cuda. Available backends are ['cpu']")
    try:
        try:
            raise RuntimeError("cuDNN not found.")
        except RuntimeError as e:
            raise RuntimeError("Unable to load cuDNN. Is it installed?") from e
    except RuntimeError:
        logger.warning("Jax plugin configuration error: Exception when calling initialize()", exc_info=True)
    return ["cpu"]
"""


def _site(tmp_path: Path, package: str, init: str) -> Path:
    site = tmp_path / "site"
    (site / package).mkdir(parents=True)
    (site / package / "__init__.py").write_text(init)
    return site


def _facts(facts: FrameworkFacts | Blame) -> FrameworkFacts:
    assert isinstance(facts, FrameworkFacts), facts
    return facts


def test_what_the_framework_opened_is_read_from_the_process(tmp_path: Path, gcc: str) -> None:
    site = _site(tmp_path, "onnxruntime", PRELOADING)
    built = lib(gcc, site / "nvidia/cu13/lib/libcublasLt.so.13")
    run = probe_framework(ORT, timeout=30, paths=[str(site)], executable=sys.executable)
    facts = _facts(run.facts)
    assert facts.version == "9.9.9"
    assert facts.error is None
    assert facts.refused is None
    assert run.mapped("libcublasLt.so.13") == str(built)
    assert run.mapped("libcudart.so.13") is None  # never opened: not there
    assert "preloading the CUDA libraries" in facts.said  # its own words, from stderr
    assert run.devices == FrameworkDevices(error="onnxruntime has no device list of its own")


def test_its_refusal_is_its_exception(tmp_path: Path) -> None:
    site = _site(tmp_path, "onnxruntime", PRELOADING)  # the library is missing: CDLL raises
    run = probe_framework(ORT, timeout=30, paths=[str(site)])
    facts = _facts(run.facts)
    assert facts.refused is not None
    assert facts.refused.startswith("OSError: ")
    assert "libcublasLt.so.13" in facts.refused
    assert run.mapped("libcublasLt.so.13") is None


def test_a_logged_refusal_is_its_last_error_line_and_frames_are_left_out(tmp_path: Path) -> None:
    site = _site(tmp_path, "jax", JAX_LOGGING)
    run = probe_framework(JAX, timeout=30, paths=[str(site)])
    facts = _facts(run.facts)
    assert facts.refused == "RuntimeError: Unable to load cuDNN. Is it installed?"
    assert "RuntimeError: cuDNN not found." in facts.said
    assert not any(line.startswith(("Traceback", "  File")) for line in facts.said)
    assert isinstance(run.devices, FrameworkDevices)
    assert run.devices.error == "RuntimeError: Unknown backend cuda. Available backends are ['cpu']"
    assert run.devices.devices == ()
    assert run.devices.computed is None


def test_an_import_that_raises_is_the_error_and_no_device_is_asked(tmp_path: Path) -> None:
    site = _site(tmp_path, "onnxruntime", "raise ImportError('libcudnn.so.9: cannot open shared object file')\n")
    run = probe_framework(ORT, timeout=30, paths=[str(site)])
    assert _facts(run.facts).error == "ImportError: libcudnn.so.9: cannot open shared object file"
    assert run.devices is None


def test_an_import_that_crashes_is_blamed_once(tmp_path: Path) -> None:
    site = _site(tmp_path, "onnxruntime", "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    run = probe_framework(ORT, timeout=30, paths=[str(site)])
    assert isinstance(run.facts, Blame)
    assert "SIGSEGV" in run.facts.trouble
    assert run.devices is None


def test_a_whole_run_on_a_jax_tree_imports_jax_and_holds_its_items_to_what_it_opened(tmp_path: Path, gcc: str) -> None:
    """The plan of a run on jax's layout (tests/support/jax.py: its plugin CDLLs its gcc-built libraries as jax 0.10.2
    does): framework[jax] passes intact; without cuDNN it fails in jax's words, as one more consequence of the
    missing wheel's cause."""
    from pytest_cudadeps.checks.findings import Outcome
    from pytest_cudadeps.core.settings import Settings
    from pytest_cudadeps.plan import plan_checks
    from pytest_cudadeps.report.causes import Causes
    from tests.support.jax import jax_tree

    intact = plan_checks(Settings(paths=(str(jax_tree(tmp_path / "intact", gcc)),), no_ld_cache=True))
    found = intact.items["framework[jax]"]()
    assert found.outcome is Outcome.PASS, found.text()
    assert "opened 11 CUDA libraries from nvidia/cu13/lib (8), nvidia/nccl/lib (1)" in found.message
    cudnn = intact.items["lazy[jax>jax_plugins.xla_cuda13>libcudnn.so.9]"]()
    assert dict(cudnn.facts)["loader"] == "agrees: mapped after jax_plugins.xla_cuda13's own loading"

    broken = plan_checks(Settings(paths=(str(jax_tree(tmp_path / "broken", gcc, omit=("nvidia-cudnn-cu13",))),),
                                  no_ld_cache=True))
    failing = broken.items["framework[jax]"]()
    assert failing.outcome is Outcome.FAIL
    assert failing.message == ("jax 0.10.2 opened its CUDA libraries without libcudnn.so.9; it says: RuntimeError: "
                               "Unable to load cuDNN. Is it installed?")
    cause = Causes(broken.snapshot, broken.static).cause_of(failing)
    assert cause is not None
    assert cause.id == "requires[jax>nvidia-cudnn-cu13]"
