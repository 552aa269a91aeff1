"""The framework child, on fake frameworks in tmp folders whose code does what the real ones do (CDLL their
gcc-built libraries, log their refusal and go on, raise, crash): what it answers is what the process did."""

from __future__ import annotations

import sys
from pathlib import Path

from pytest_cudadeps.probes.child.protocol import FrameworkDevices, FrameworkFacts
from pytest_cudadeps.probes.framework import probe_framework
from pytest_cudadeps.probes.runner import Blame
from pytest_cudadeps.tables.frameworks import Framework, framework_for
from tests.support.onnxruntime import lib


def _framework(key: str) -> Framework:
    found = framework_for(key)
    assert found is not None
    return found


ORT = _framework("onnxruntime-gpu")
JAX = _framework("jax")

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
