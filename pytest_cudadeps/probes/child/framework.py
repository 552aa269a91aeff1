"""Child: a framework other than torch imported as the user's job imports it, then made to open its CUDA libraries
its own way; then the GPUs it sees and a tiny computation on the first.

Request: :class:`~.protocol.FrameworkRequest`; answers: :class:`~.protocol.FrameworkFacts` (step ``import``) and
:class:`~.protocol.FrameworkDevices` (step ``devices``).  Each recipe uses the framework's public API only, as a
job would, and was read against the installed versions named in its docstring.  What the framework writes to
stderr meanwhile (JAX logs its plugin's failure and goes on with the CPU; TensorFlow's C++ logs) is kept: its
own words.  The framework is imported here only: never in the plugin process.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from types import ModuleType
from typing import Callable

from pytest_cudadeps.probes.child import protocol
from pytest_cudadeps.probes.child.load import libdl, loaded_objects
from pytest_cudadeps.probes.child.protocol import FrameworkDevices, FrameworkFacts, FrameworkRequest

SIZE = 256  # the product of two SIZE x SIZE matrices of ones: every element is SIZE
_KEPT = 12  # lines of stderr kept
_FRAME = re.compile(r"^(\s|Traceback \(most recent call last\)|The above exception|During handling)")
_ERROR_LINE = re.compile(r"^[A-Za-z_.]*(Error|Exception): .")


@contextlib.contextmanager
def _stderr_kept(kept: list[str]) -> Iterator[None]:
    """Descriptors 1 and 2 (the protocol pointed 1 at 2) into a file while the framework works; its last lines,
    without traceback frames, appended to ``kept``; both restored after."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 1)
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            capture.seek(0)
            text = capture.read(1 << 20).decode("utf-8", "replace")
            lines = [line.rstrip() for line in text.splitlines() if line.strip() and not _FRAME.match(line)]
            kept.extend(line[:500] for line in lines[-_KEPT:])


def _text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:1000]


# --- how each framework opens its CUDA libraries --------------------------------------------------------


def _open_jax(jax: ModuleType) -> None:
    """jax 0.10.2: ``jax_plugins.xla_cuda13.initialize()`` runs at the first use of a backend; it CDLLs the
    libraries from the nvidia wheels, then checks their versions; a failure is logged and JAX goes on with the CPU."""
    jax.devices()


def _open_cupy(cupy: ModuleType) -> None:
    """cupy-cuda13x 14.2.0: ``cupy_backends.cuda.libs.<name>`` asks cuda.pathfinder for the library before
    importing the extension that needs it (cuBLAS, cuSOLVER, cuSPARSE, cuRAND; cuFFT through ``cupy.cuda``'s own
    ``__getattr__``, as ``cupy.fft`` asks for it); NVRTC is opened at its first call.
    NCCL and cuTENSOR are optional: not asked for."""
    libs = importlib.import_module("cupy_backends.cuda.libs")
    errors = []
    for name in ("cublas", "cusolver", "cusparse", "curand"):
        try:
            getattr(libs, name)
        except ImportError as exc:
            errors.append(f"cupy_backends.cuda.libs.{name}: {_text(exc)}")
    try:
        libs.nvrtc.getVersion()
    except Exception as exc:
        errors.append(f"nvrtc: {_text(exc)}")
    try:  # cupy.fft asks for it so: cupy.cuda's __getattr__ has cuda.pathfinder open libcufft first
        getattr(cupy.cuda, "cufft")  # noqa: B009 (the attribute is the import)
    except ImportError as exc:
        errors.append(f"cupy.cuda.cufft: {_text(exc)}")
    if errors:
        raise ImportError("; ".join(errors))


def _open_onnxruntime(ort: ModuleType) -> None:
    """onnxruntime-gpu 1.31.1: ``preload_dlls()`` CDLLs the CUDA and cuDNN libraries from the nvidia wheels."""
    ort.preload_dlls()


def _open_tensorflow(tf: ModuleType) -> None:
    """tensorflow 2.21.0: looking for GPUs dlopens the CUDA libraries by soname (only when libcuda finds a GPU)."""
    tf.config.list_physical_devices("GPU")


def _open_numba(cuda: ModuleType) -> None:
    """numba-cuda 0.30.4: compiling a kernel to PTX loads NVVM and libdevice (through cuda.pathfinder) and needs
    no GPU when the compute capability is given."""
    float32 = importlib.import_module("numba").float32

    def kernel(out):  # type: ignore[no-untyped-def]  # numba compiles it: never called here
        out[0] = 1.0

    cuda.compile_ptx(kernel, (float32[:],), cc=(7, 5))


# --- the devices each sees, and the product ---------------------------------------------------------------


def _devices_jax(jax: ModuleType) -> FrameworkDevices:
    devices = jax.devices("cuda")
    jnp = importlib.import_module("jax.numpy")
    ones = jax.device_put(jnp.ones((SIZE, SIZE), dtype=jnp.float32), devices[0])
    return _product([str(d) for d in devices], lambda: float((ones @ ones).min()), lambda: float((ones @ ones).max()))


def _devices_cupy(cupy: ModuleType) -> FrameworkDevices:
    count = cupy.cuda.runtime.getDeviceCount()
    names = [cupy.cuda.runtime.getDeviceProperties(i)["name"] for i in range(count)]
    names = [name.decode() if isinstance(name, bytes) else str(name) for name in names]
    ones = cupy.ones((SIZE, SIZE), dtype=cupy.float32)
    return _product(names, lambda: float((ones @ ones).min()), lambda: float((ones @ ones).max()))


def _devices_tensorflow(tf: ModuleType) -> FrameworkDevices:
    devices = [d.name for d in tf.config.list_physical_devices("GPU")]
    if not devices:
        return FrameworkDevices(error="tf.config.list_physical_devices('GPU') is empty")
    with tf.device("/GPU:0"):
        product = tf.matmul(tf.ones((SIZE, SIZE)), tf.ones((SIZE, SIZE)))
    return _product(devices, lambda: float(tf.reduce_min(product)), lambda: float(tf.reduce_max(product)))


def _devices_numba(cuda: ModuleType) -> FrameworkDevices:
    numpy = importlib.import_module("numpy")
    if not cuda.is_available():
        return FrameworkDevices(error="numba.cuda.is_available() is False")
    names = [str(gpu.name.decode() if isinstance(gpu.name, bytes) else gpu.name) for gpu in cuda.gpus]

    @cuda.jit  # numba has no types: the decorator is Any
    def add_one(x):  # type: ignore[no-untyped-def]
        i = cuda.grid(1)
        if i < x.size:
            x[i] += SIZE - 1

    host = numpy.ones(SIZE, dtype=numpy.float32)
    device = cuda.to_device(host)
    add_one[1, SIZE](device)
    out = device.copy_to_host()
    return _product(names, lambda: float(out.min()), lambda: float(out.max()))


def _product(devices: list[str], low: Callable[[], float], high: Callable[[], float]) -> FrameworkDevices:
    if not devices:
        return FrameworkDevices(error="no device")
    try:
        right = low() == high() == SIZE
    except Exception as exc:  # "no kernel image is available", out of memory...
        return FrameworkDevices(tuple(devices), computed=False, failure=_text(exc))
    return FrameworkDevices(tuple(devices), computed=right,
                            failure=None if right else f"the product of ones is not {SIZE} everywhere")


class Recipe:
    def __init__(self, module: str, open_: Callable[[ModuleType], None],
                 devices: Callable[[ModuleType], FrameworkDevices] | None) -> None:
        self.module, self.open, self.devices = module, open_, devices


RECIPES: dict[str, Recipe] = {
    "jax": Recipe("jax", _open_jax, _devices_jax),
    "cupy": Recipe("cupy", _open_cupy, _devices_cupy),
    "onnxruntime": Recipe("onnxruntime", _open_onnxruntime, None),
    "tensorflow": Recipe("tensorflow", _open_tensorflow, _devices_tensorflow),
    "numba-cuda": Recipe("numba.cuda", _open_numba, _devices_numba),
}


def import_and_open(recipe: Recipe) -> tuple[ModuleType | None, FrameworkFacts]:
    said: list[str] = []
    module: ModuleType | None = None
    refused: str | None = None
    error: str | None = None
    with _stderr_kept(said):
        try:
            module = importlib.import_module(recipe.module)
        except BaseException as exc:  # SystemExit from a package's import is its failure too
            error = _text(exc)
        else:
            error = None
            try:
                recipe.open(module)
            except BaseException as exc:
                refused = _text(exc)
    if module is not None and refused is None:  # JAX logs its plugin's failure and goes on: its last error line
        refused = next((line for line in reversed(said) if _ERROR_LINE.match(line)), None)
    version = getattr(module, "__version__", None) if module is not None else None
    return module, FrameworkFacts(str(version) if version else None, error, refused, tuple(said),
                                  loaded_objects(libdl()))


def devices_of(recipe: Recipe, module: ModuleType) -> FrameworkDevices:
    if recipe.devices is None:
        return FrameworkDevices(error=f"{recipe.module} has no device list of its own")
    said: list[str] = []
    try:
        with _stderr_kept(said):
            return recipe.devices(module)
    except BaseException as exc:  # no GPU, no driver: the framework's own words
        return FrameworkDevices(error=_text(exc))


def main() -> None:
    protocol.open_channel()
    request = protocol.request_as(FrameworkRequest)
    recipe = RECIPES[request.recipe]
    protocol.begin("import")
    module, facts = import_and_open(recipe)
    protocol.end("import", facts)
    if module is not None and request.devices:
        protocol.begin("devices")
        protocol.end("devices", devices_of(recipe, module))
    protocol.done()


if __name__ == "__main__":
    main()
