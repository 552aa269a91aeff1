"""Child: import torch once, multiply matrices on each GPU, and all-reduce across two processes.

Request: :class:`~.protocol.SmokeRequest`.  torch is imported first, as the user's job imports it, and
its answer (:class:`~.protocol.TorchFacts`) lists every object the process then maps, in the loader's
order: the truth the parent holds its model against.  Then each library of the request is asked for
in that process (one the import mapped is answered from where it was mapped), then the products and,
with two or more devices, the all-reduce (backend ``nccl`` or ``gloo``): one
:class:`~.protocol.MatmulDevice` per device and one :class:`~.protocol.AllReduceAnswer`.
``devices`` replaces the visible GPUs, so the comparison and the report can be tested
on the CPU.  torch is imported here only: never in the plugin process.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import socket
import tempfile
import threading
import time
from types import ModuleType
from typing import Any, Callable

from pytest_cudadeps.probes.child import protocol
from pytest_cudadeps.probes.child.load import libdl, load_all, loaded_objects
from pytest_cudadeps.probes.child.protocol import (
    AllReduceAnswer,
    Compiled,
    Imported,
    MatmulCheck,
    MatmulDevice,
    RankResult,
    SmokeRequest,
    TorchFacts,
    decode,
)

# Largest |result - reference| / max |reference| accepted, per dtype (TF32 fits under float32's).
TOLERANCE = {"float32": 1e-3, "bfloat16": 3e-2, "float16": 5e-3}


def _version_of(read: Callable[[], object]) -> str | None:
    """A version torch reports, or the error reading it: a missing or broken library is a fact, not a crash."""
    try:
        value = read()
    except Exception as exc:
        return f"error: {exc}"
    if isinstance(value, tuple):
        return ".".join(str(part) for part in value)
    if isinstance(value, int) and value > 10000:  # cuDNN: 92400 for 9.24.0
        return f"{value // 10000}.{value % 10000 // 100}.{value % 100}"
    return str(value) if value else None


def torch_facts(torch: ModuleType) -> TorchFacts:
    count = torch.cuda.device_count()
    reason = None
    if not count:
        try:
            torch.cuda.init()
            reason = "torch.cuda.device_count() is 0"
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
    compiled = getattr(getattr(getattr(torch, "_C", None), "_cudnn", None), "getCompileVersion", None)
    return TorchFacts(torch=str(torch.__version__), cuda=torch.version.cuda,
                      cudnn=_version_of(torch.backends.cudnn.version),
                      cudnn_compiled=_version_of(compiled) if compiled is not None else None,
                      nccl=_version_of(torch.cuda.nccl.version), device_count=count, no_gpu_reason=reason)


def dtypes_for(torch: ModuleType, device: str) -> list[str]:
    if device == "cpu":
        return ["float32", "bfloat16"]
    major, minor = torch.cuda.get_device_capability(device)
    return ["float32", *(["bfloat16"] if major >= 8 else []), *(["float16"] if (major, minor) >= (5, 3) else [])]


def matmul_check(torch: ModuleType, device: str, dtype_name: str, size: int = 1024, repeats: int = 3) -> MatmulCheck:
    """One ``size``x``size`` product on ``device`` against a float64 CPU reference, timed."""
    generator = torch.Generator().manual_seed(1234)
    a = torch.randn(size, size, generator=generator)
    b = torch.randn(size, size, generator=generator)
    dtype = getattr(torch, dtype_name)
    a_dev, b_dev = a.to(device=device, dtype=dtype), b.to(device=device, dtype=dtype)
    reference = a_dev.double().cpu() @ b_dev.double().cpu()  # the inputs as rounded to dtype

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)

    out = a_dev @ b_dev  # warm-up: kernel selection, cuBLAS handle
    sync()
    started = time.perf_counter()
    for _ in range(repeats):
        out = a_dev @ b_dev
    sync()
    seconds = (time.perf_counter() - started) / repeats
    error = float((out.double().cpu() - reference).abs().max() / reference.abs().max())
    return MatmulCheck(dtype_name, error <= TOLERANCE[dtype_name], error, TOLERANCE[dtype_name], seconds,
                       2 * size**3 / seconds / 1e9 if seconds > 0 else None)


def device_name(torch: ModuleType, device: str) -> str:
    return torch.cuda.get_device_name(device) if device.startswith("cuda") else "CPU"


def _products(torch: ModuleType, device: str, size: int) -> MatmulDevice:
    checks = []
    for dtype in dtypes_for(torch, device):
        try:
            checks.append(matmul_check(torch, device, dtype, size))
        except Exception as exc:  # "no kernel image is available", out of memory, ...
            checks.append(MatmulCheck(dtype, False, failure=f"{type(exc).__name__}: {exc}"[:500]))
    try:  # cuDNN opens its sub-libraries (libcudnn_cnn...) at the first convolution: this is that first one
        checks.append(conv_check(torch, device))
    except Exception as exc:  # "Unable to load any of {libcudnn_cnn.so.9...}", CUDNN_STATUS_..., ...
        checks.append(MatmulCheck(CONV, False, failure=f"{type(exc).__name__}: {exc}"[:500]))
    return MatmulDevice(device, device_name(torch, device), tuple(checks))


CONV = "conv2d"  # the check's name where a matmul check has its dtype


def conv_check(torch: ModuleType, device: str) -> MatmulCheck:
    """A 3x3 convolution of a 16-channel 64x64 image in float32 (through cuDNN on a GPU) against float64 on the CPU."""
    generator = torch.Generator().manual_seed(4321)
    image = torch.randn(4, 16, 64, 64, generator=generator)
    weight = torch.randn(32, 16, 3, 3, generator=generator)
    functional = importlib.import_module("torch.nn.functional")
    reference = functional.conv2d(image.double(), weight.double(), padding=1)
    started = time.perf_counter()
    out = functional.conv2d(image.to(device), weight.to(device), padding=1)
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    error = float((out.double().cpu() - reference).abs().max() / reference.abs().max())
    return MatmulCheck(CONV, error <= TOLERANCE["float32"], error, TOLERANCE["float32"], seconds)


def run_matmul(torch: ModuleType, request: SmokeRequest) -> None:
    """The products on every device at once, a thread each (CUDA work releases the GIL): a host with
    eight GPUs takes the time of one.  Every device's step begins first, so that a crash or a hang
    names the devices still at work."""
    devices = request.devices or [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    for device in devices:
        protocol.begin(f"matmul[{device}]")

    def work(device: str) -> None:
        protocol.end(f"matmul[{device}]", _products(torch, device, request.size))

    threads = [threading.Thread(target=work, args=(device,), daemon=True) for device in devices]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _all_reduce_worker(rank: int, backend: str, devices: list[str], address: str, out_dir: str) -> None:
    torch = importlib.import_module("torch")
    dist = importlib.import_module("torch.distributed")
    device = devices[rank]
    if device.startswith("cuda"):
        torch.cuda.set_device(device)
    dist.init_process_group(backend, init_method=f"tcp://{address}", rank=rank, world_size=len(devices))
    try:
        tensor = torch.full((1 << 20,), float(rank + 1), device=device)
        dist.all_reduce(tensor)  # warm-up: communicator set-up
        tensor.fill_(float(rank + 1))
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        dist.all_reduce(tensor)
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - started
        expected = float(sum(range(1, len(devices) + 1)))
        seen = sorted({float(v) for v in tensor.unique().cpu().tolist()})
        with open(os.path.join(out_dir, f"{rank}.json"), "w") as stream:
            json.dump(dataclasses.asdict(RankResult(rank, device, expected, tuple(seen), seconds)), stream)
    finally:
        dist.destroy_process_group()


def run_all_reduce(torch: ModuleType, request: SmokeRequest) -> None:
    devices = list(request.devices or [f"cuda:{i}" for i in range(min(2, torch.cuda.device_count()))])
    backend = request.backend
    step = f"all-reduce[{backend}]"
    protocol.begin(step)
    if len(devices) < 2:
        protocol.end(step, AllReduceAnswer(backend, skipped=f"{len(devices)} GPU visible; an all-reduce needs 2"))
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    multiprocessing = importlib.import_module("torch.multiprocessing")
    with tempfile.TemporaryDirectory() as out_dir:
        try:
            multiprocessing.start_processes(_all_reduce_worker, args=(backend, devices, address, out_dir),
                                            nprocs=len(devices), join=True, start_method="spawn")
        except Exception as exc:
            protocol.end(step, AllReduceAnswer(backend, failure=f"{type(exc).__name__}: {exc}"[-800:]))
            return
        ranks = []
        for rank in range(len(devices)):
            with open(os.path.join(out_dir, f"{rank}.json")) as stream:
                ranks.append(decode(RankResult, json.load(stream)))
    protocol.end(step, AllReduceAnswer(backend, ranks=tuple(ranks)))


def import_torch() -> ModuleType | None:
    """``import torch`` as the user's job does it, first of all: its facts, and what the process mapped, worked or not."""
    protocol.begin("import torch")
    try:
        torch = importlib.import_module("torch")
    except Exception as exc:
        protocol.end("import torch", TorchFacts(error=f"{type(exc).__name__}: {exc}", loaded=loaded_objects(libdl())))
        return None
    protocol.end("import torch", dataclasses.replace(torch_facts(torch), loaded=loaded_objects(libdl())))
    return torch


def main() -> None:
    protocol.open_channel()
    request: SmokeRequest | None = protocol.request_as(SmokeRequest)
    torch = import_torch()  # at once: a child started ahead imports while the parent reads the environment
    while request is not None and request.more:
        request = protocol.next_part(SmokeRequest)
    if request is None:  # the parent ended the run before sending the rest: nothing more to do
        protocol.done()
        return
    if request.loads is not None:  # after the import: a library it mapped is answered from where it was mapped
        load_all(request.loads)
    if torch is None:
        protocol.done()
        return
    devices = request.devices or ()
    count = torch.cuda.device_count() if not devices else len(devices)
    run_matmul(torch, request)
    # the all-reduce's two workers each import torch again: only where there are two devices to join
    if count >= 2:
        run_all_reduce(torch, request)
    if request.compile:
        devices = devices or (("cuda:0",) if count else ())
        if devices:
            protocol.begin("compile")
            protocol.end("compile", compile_check(torch, devices[0]))
    for name in request.imports:  # last: a companion that crashes its import costs nothing above
        protocol.begin(f"import {name}")
        protocol.end(f"import {name}", import_one(name))
    protocol.done()


def compile_check(torch: ModuleType, device: str) -> Compiled:
    """torch.compile (inductor: Triton on a GPU) of a small elementwise-and-reduce function, against eager."""
    def f(x: Any) -> Any:  # a tensor: torch has no types here (it is imported at run time)
        return (x.sin() * 2 + x.cos()).sum(dim=1)

    x = torch.randn(256, 256, generator=torch.Generator().manual_seed(7)).to(device)
    try:
        started = time.perf_counter()
        got = torch.compile(f)(x)
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - started
    except Exception as exc:  # a missing compiler, Python.h, ptxas...: what triton raises
        return Compiled(device, failure=f"{type(exc).__name__}: {exc}"[-1000:])
    want = f(x)
    error = float((got.double() - want.double()).abs().max() / want.double().abs().max())
    return Compiled(device, error <= TOLERANCE["float32"], error, seconds)


def import_one(name: str) -> Imported:
    try:
        importlib.import_module(name)
    except BaseException as exc:  # SystemExit and KeyboardInterrupt from a package's import are its failure too
        return Imported(f"{type(exc).__name__}: {exc}"[:1000])
    return Imported()


if __name__ == "__main__":
    main()
