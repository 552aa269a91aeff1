"""The probes' protocol: how a child talks to its parent, and every message, typed, defined once.

A child reads its request as JSON on stdin and writes one JSON object per line on a private
descriptor the parent passed it: ``{"begin": STEP}`` before a step, ``{"end": STEP, "data":
{...}}`` after it, and ``{"done": true}`` last, each with this run's ``token``.  A child that
dies or hangs leaves a ``begin`` without its ``end``: the parent names that step.  File
descriptor 1 is pointed at stderr before any foreign code runs, so a library that prints
cannot garble the protocol, and a line without the token is not the child's.

The requests and answers below are frozen dataclasses used by both sides: the child builds
them and sends ``asdict``; the parent turns JSON back into them with :func:`decode`, which
checks every field's type, so that a garbled answer is a :class:`ProtocolError` at the edge
and never a ``KeyError`` deep in a finding.  This module runs in the children: standard
library only, and ``Optional``/``Tuple`` spelled so that Python 3.9 can evaluate them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import threading
import typing
from dataclasses import dataclass
from typing import IO, Optional, TypeVar, Union

T = TypeVar("T")


# --- the dlopen probe (probes/load.py) -----------------------------------------------------------

@dataclass(frozen=True)
class LoadTarget:
    """One library to load: ``target`` is a path, or a bare soname when nothing was predicted."""

    name: str
    target: str
    soname: Optional[str] = None  # None for the root's own files, which are opened by path
    rtld_global: bool = False


@dataclass(frozen=True)
class LoadRequest:
    prelude: tuple[LoadTarget, ...]  # loaded again, silently, at the start of a new child
    steps: tuple[LoadTarget, ...]


@dataclass(frozen=True)
class Loaded:
    """What dlopen did: the file mapped (from the link map) and how, or dlerror's text."""

    ok: bool
    mapped: Optional[str] = None
    how: str = ""  # "opened" or "already mapped"
    error: Optional[str] = None


# --- the driver probe (probes/driver.py) -----------------------------------------------------------

@dataclass(frozen=True)
class DriverRequest:
    steps: tuple[str, ...]  # "libcuda", "nvml", "cudart"
    cudart: Optional[str] = None  # the libcudart the linkage check resolved


@dataclass(frozen=True)
class LibcudaAnswer:
    """libcuda.so.1 through ctypes: where it was mapped from, cuInit's result, the CUDA it supports."""

    error: Optional[str] = None  # dlopen failed: no driver
    path: Optional[str] = None
    cu_init: Optional[int] = None
    cuda_version: Optional[int] = None  # cuDriverGetVersion: 13000 for 13.0


@dataclass(frozen=True)
class GpuAnswer:
    index: int
    name: str
    capability: tuple[int, int]
    memory: Optional[int] = None  # bytes
    mig: str = "n/a"  # "on", "off" or "n/a"
    uuid: Optional[str] = None  # "GPU-5e1a...": what CUDA_VISIBLE_DEVICES may name
    nvlinks: Optional[int] = None  # active NVLink links; None where NVML has no NVLink for it


@dataclass(frozen=True)
class NvmlAnswer:
    """NVML through nvidia-ml-py: the driver, the CUDA it supports, each GPU; or the NVML error."""

    error: Optional[str] = None
    code: Optional[int] = None  # nvmlReturn_t of the error
    driver: Optional[str] = None
    cuda_version: Optional[int] = None
    gpus: tuple[GpuAnswer, ...] = ()
    p2p: tuple[tuple[int, int, int], ...] = ()  # (GPU, GPU, nvmlGpuP2PStatus_t for reads): 0 is OK
    module: Optional[str] = None  # the pynvml module imported (its file); None when it could not be imported


@dataclass(frozen=True)
class CudartAnswer:
    """cudaRuntimeGetVersion of the libcudart the wheels carry."""

    error: Optional[str] = None
    path: Optional[str] = None
    version: Optional[int] = None
    rc: Optional[int] = None


# --- the smoke probe (probes/smoke.py) -------------------------------------------------------------

@dataclass(frozen=True)
class SmokeRequest:
    devices: Optional[tuple[str, ...]] = None  # None: the visible GPUs; ("cpu",) in the tests
    backend: str = "nccl"
    size: int = 1024
    loads: Optional[LoadRequest] = None  # the root's libraries, each asked for after torch is imported
    imports: tuple[str, ...] = ()  # companion packages imported last, beside torch ("import torchvision")
    compile: bool = False  # a tiny torch.compile on the first device, after the products
    # another part follows on stdin, and the last part is the request: the child started ahead imports torch at
    # once and reads the rest, worked out by the parent meanwhile, afterwards
    more: bool = False


@dataclass(frozen=True)
class TorchFacts:
    """``import torch``: its versions, what it was built with and loads, and the GPUs it sees."""

    error: Optional[str] = None  # the import failed
    torch: Optional[str] = None
    cuda: Optional[str] = None
    cudnn: Optional[str] = None  # the cuDNN torch loaded (cudnnGetVersion)
    cudnn_compiled: Optional[str] = None  # the cuDNN torch was built against
    nccl: Optional[str] = None
    device_count: int = 0
    no_gpu_reason: Optional[str] = None
    # every object the process has mapped after the import (worked or not), in the order the loader mapped them,
    # as its link map names them: the truth the static model is held against
    loaded: tuple[str, ...] = ()


@dataclass(frozen=True)
class Compiled:
    """``torch.compile`` of a tiny function on one device: the result against eager mode, or the exception."""

    device: str
    ok: bool = False
    error: Optional[float] = None  # relative error against eager mode
    seconds: Optional[float] = None  # the first call: compilation included
    failure: Optional[str] = None


@dataclass(frozen=True)
class Imported:
    """``import NAME`` after torch: the exception it raised, as Python prints its last line; None when it worked."""

    error: Optional[str] = None


@dataclass(frozen=True)
class MatmulCheck:
    """One product in one dtype against the float64 CPU reference, or the exception it raised."""

    dtype: str
    ok: bool
    error: Optional[float] = None  # relative error
    tolerance: Optional[float] = None
    seconds: Optional[float] = None
    gflops: Optional[float] = None
    failure: Optional[str] = None


@dataclass(frozen=True)
class MatmulDevice:
    device: str
    name: str
    checks: tuple[MatmulCheck, ...]


@dataclass(frozen=True)
class RankResult:
    rank: int
    device: str
    expected: float
    seen: tuple[float, ...]
    seconds: float


@dataclass(frozen=True)
class AllReduceAnswer:
    backend: str = ""
    skipped: Optional[str] = None
    failure: Optional[str] = None
    ranks: tuple[RankResult, ...] = ()


# --- decoding at the parent's edge -------------------------------------------------------------------

# --- the framework probe (probes/framework.py) ------------------------------------------------------

@dataclass(frozen=True)
class FrameworkRequest:
    """A framework other than torch (``recipe``: jax, cupy, tensorflow, onnxruntime or numba-cuda), imported and
    made to open its CUDA libraries its own way; with ``devices``, then its device list and a tiny computation."""

    recipe: str
    devices: bool = True


@dataclass(frozen=True)
class FrameworkFacts:
    """The framework imported as the user's job imports it, then made to open its CUDA libraries.

    ``error``: the import raised; ``refused``: its own opening raised (jax's ``Unable to load cuDNN``, CuPy's
    ``Failure finding "libcublasLt.so.13"``); ``said``: the last lines it wrote to stderr meanwhile (its logged
    warnings, its C++ logs), tracebacks' frames left out; ``loaded``: every object the process then maps.
    """

    version: Optional[str] = None
    error: Optional[str] = None
    refused: Optional[str] = None
    said: tuple[str, ...] = ()
    loaded: tuple[str, ...] = ()


@dataclass(frozen=True)
class FrameworkDevices:
    """The GPUs the framework sees, or why none; the tiny computation on the first (a 256x256 product of ones,
    each element must be 256), or its exception."""

    devices: tuple[str, ...] = ()
    error: Optional[str] = None
    computed: Optional[bool] = None  # None: nothing was computed (no device)
    failure: Optional[str] = None


class ProtocolError(ValueError):
    """A child's message that does not have the shape its dataclass says."""


def decode(cls: type[T], data: object) -> T:
    """``cls`` from its JSON form, every field checked against its annotation."""
    if not isinstance(data, dict):
        raise ProtocolError(f"{cls.__name__}: expected an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    values: dict[str, object] = {}
    for item in dataclasses.fields(cls):  # type: ignore[arg-type]  # cls is a dataclass: the callers pass one
        if item.name in data:
            values[item.name] = _convert(hints[item.name], data[item.name], f"{cls.__name__}.{item.name}")
        elif item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING:
            raise ProtocolError(f"{cls.__name__}: no {item.name}")
    return cls(**values)


def _convert(hint: object, value: object, where: str) -> object:
    """``value`` as the annotation ``hint`` says, or :class:`ProtocolError` naming ``where`` it was found."""
    origin = typing.get_origin(hint)
    if origin is Union:
        return _convert_union(typing.get_args(hint), value, where)
    if origin is tuple:
        return _convert_tuple(typing.get_args(hint), value, where)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return decode(hint, value)
    return _convert_scalar(hint, value, where)


def _convert_union(options: tuple[object, ...], value: object, where: str) -> object:
    """The first option of ``Optional[...]``/``Union[...]`` that takes ``value``."""
    for option in options:
        try:
            return _convert(option, value, where)
        except ProtocolError:
            continue
    raise ProtocolError(f"{where}: {value!r} is none of {options}")


def _convert_tuple(items: tuple[object, ...], value: object, where: str) -> tuple[object, ...]:
    """A JSON list as ``Tuple[X, ...]`` (any length) or ``Tuple[X, Y]`` (exactly that many items)."""
    if not isinstance(value, (list, tuple)):
        raise ProtocolError(f"{where}: expected a list, got {value!r}")
    if len(items) == 2 and items[1] is Ellipsis:
        return tuple(_convert(items[0], v, where) for v in value)
    if len(items) != len(value):
        raise ProtocolError(f"{where}: expected {len(items)} items, got {len(value)}")
    return tuple(_convert(a, v, where) for a, v in zip(items, value))


def _convert_scalar(hint: object, value: object, where: str) -> object:
    if hint is type(None) and value is None:
        return None
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)  # JSON writes 3.0 as 3.0 but a float field may hold an integral value
    if hint in (int, str, bool) and type(value) is hint:  # exact type: JSON's true is not an int here
        return value
    raise ProtocolError(f"{where}: {value!r} is not a {getattr(hint, '__name__', hint)}")


# --- the child's side of the channel ----------------------------------------------------------------

_channel: IO[str] | None = None
_token = ""
_lock = threading.Lock()  # the products run a thread per device: one whole line at a time


def open_channel() -> None:
    """Take the private descriptor the parent passed (``CUDADEPS_CHANNEL``: its number and this run's
    token) for the protocol, and point fd 1 at stderr, so that whatever else is printed is not a line
    of it.  Without the variable (a child run by hand) the real stdout is the channel."""
    global _channel, _token
    sys.stdout.flush()
    given = os.environ.pop("CUDADEPS_CHANNEL", "")
    fd, _, _token = given.partition(" ")
    _channel = os.fdopen(int(fd) if fd else os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)


def _emit(event: dict[str, object]) -> None:
    assert _channel is not None, "open_channel() first"
    line = json.dumps({"token": _token, **event}, default=str) + "\n"
    with _lock:
        _channel.write(line)
        _channel.flush()


def begin(step: str) -> None:
    _emit({"begin": step})


def end(step: str, answer: object = None, **data: object) -> None:
    """The step's answer: a dataclass of this module, or (for the tests' echo probes) plain fields."""
    if answer is not None and dataclasses.is_dataclass(answer) and not isinstance(answer, type):
        data = {**dataclasses.asdict(answer), **data}
    _emit({"end": step, "data": data})


def done() -> None:
    """Say that every answer is in, and exit as a C program does.

    Python's ``atexit`` handlers, the C ``atexit`` handlers and the libraries' destructors run, so a
    library that crashes the process at exit still fails its probe (``crashed at exit``); Python's own
    teardown of its modules is skipped: after ``import torch`` it takes 0.4 s of the child's 1.4 s.
    """
    _emit({"done": True})
    import atexit
    import ctypes

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    ctypes.CDLL(None).exit(0)


def read_request() -> object:
    """The next part of the request on stdin (one JSON line); None at its end."""
    return json.loads(sys.stdin.readline() or "null")


def request_as(cls: type[T]) -> T:
    """The request on stdin, decoded into its dataclass (the parent sent ``asdict`` of it)."""
    return decode(cls, read_request() or {})


def next_part(cls: type[T]) -> T | None:
    """The next part of a request sent in parts, or None when the parent ended it without one (it gave up)."""
    part = read_request()
    return None if part is None else decode(cls, part)
