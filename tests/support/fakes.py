"""Native libraries for the runtime-probe tests, compiled with gcc into tmp_path.

Misbehaving libraries (a constructor that segfaults, hangs or calls ``exit(0)``) and
fake NVIDIA driver libraries (``libcuda.so.1``, ``libnvidia-ml.so.1``) that return
canned values, so that the real ctypes and nvidia-ml-py code runs end to end.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pytest_cudadeps.probes.driver import DriverInfo, probe_driver
from tests.support.build import build_so

CONSTRUCTORS = {
    "segv": "#include <signal.h>\n__attribute__((constructor)) static void init(void) { raise(SIGSEGV); }\n",
    "hang": "#include <unistd.h>\n__attribute__((constructor)) static void init(void) { for (;;) pause(); }\n",
    "exit0": "#include <stdlib.h>\n__attribute__((constructor)) static void init(void) { exit(0); }\n",
    # prints a fake protocol line on stdout: it must not reach the parent as one
    "noisy": (
        "#include <stdio.h>\n__attribute__((constructor)) static void init(void)"
        ' { printf("{\\"begin\\": \\"phantom\\"}\\n"); fflush(stdout); }\nint noisy_ok(void) { return 1; }\n'
    ),
    "good": "int good_answer(void) { return 42; }\n",
    # loads and works, then crashes the process in its destructor, at exit
    "exitsegv": ("#include <signal.h>\n__attribute__((destructor)) static void fini(void) { raise(SIGSEGV); }\n"
                 "int exitsegv_ok(void) { return 1; }\n"),
    # leaves a background process that holds the child's stdout and stderr open for ten minutes
    "fork": ("#include <unistd.h>\n__attribute__((constructor)) static void init(void)"
             " { if (fork() == 0) { sleep(600); _exit(0); } }\nint fork_ok(void) { return 1; }\n"),
}


def misbehaving(gcc: str, folder: Path, kind: str) -> Path:
    """``lib<kind>.so.1`` whose constructor does what ``kind`` says (see CONSTRUCTORS)."""
    name = f"lib{kind}.so.1"
    return build_so(gcc, folder / name, CONSTRUCTORS[kind], f"-Wl,-soname,{name}")


def needing(gcc: str, target: Path, needed: Path) -> Path:
    """A library with a DT_NEEDED entry on ``needed``'s soname (found through LD_LIBRARY_PATH or RPATH)."""
    source = "extern int good_answer(void);\nint ask(void) { return good_answer(); }\n"
    return build_so(gcc, target, source, f"-L{needed.parent}", f"-l:{needed.name}",
                    f"-Wl,-soname,{target.name}")


FAKE_CUDA = r"""
#define CUDA_VERSION %(cuda)d
int cuInit(unsigned int flags) { return %(init)d; }
int cuDriverGetVersion(int *v) { *v = CUDA_VERSION; return 0; }
"""

FAKE_NVML = r"""
#include <stdio.h>
#include <string.h>
typedef struct { unsigned long long total, free, used; } mem_t;
static const char *names[] = { %(names)s };
static const int majors[] = { %(majors)s }, minors[] = { %(minors)s };
static const unsigned long long memory[] = { %(memory)s };
static const unsigned mig[] = { %(mig)s };
int nvmlInit_v2(void) { return %(nvml_init)d; }
int nvmlInitWithFlags(unsigned flags) { return %(nvml_init)d; }
int nvmlShutdown(void) { return 0; }
const char *nvmlErrorString(int r) { return r == 3 ? "Not Supported" : "Unknown Error"; }
int nvmlSystemGetDriverVersion(char *buf, unsigned len) { strncpy(buf, "%(driver)s", len); return 0; }
int nvmlSystemGetCudaDriverVersion(int *v) { *v = %(cuda)d; return 0; }
int nvmlSystemGetCudaDriverVersion_v2(int *v) { *v = %(cuda)d; return 0; }
int nvmlDeviceGetCount_v2(unsigned *n) { *n = %(count)d; return 0; }
int nvmlDeviceGetHandleByIndex_v2(unsigned i, void **h) { *h = (void *)(long)(i + 1); return 0; }
int nvmlDeviceGetName(void *h, char *buf, unsigned len) { strncpy(buf, names[(long)h - 1], len); return 0; }
int nvmlDeviceGetMemoryInfo(void *h, mem_t *m) { m->total = memory[(long)h - 1]; m->free = m->total; m->used = 0; return 0; }
int nvmlDeviceGetCudaComputeCapability(void *h, int *major, int *minor) {
    *major = majors[(long)h - 1]; *minor = minors[(long)h - 1]; return 0; }
int nvmlDeviceGetNvLinkState(void *h, unsigned link, unsigned *active) {
    if ((long)h != 1) return 3;  /* NVML_ERROR_NOT_SUPPORTED: only GPU 0 has NVLink here */
    if (link >= 18) return 2;  /* NVML_ERROR_INVALID_ARGUMENT: 18 links */
    *active = link < 4; return 0; }
int nvmlDeviceGetP2PStatus(void *a, void *b, int index, int *status) { *status = 5; return 0; }
int nvmlDeviceGetUUID(void *h, char *buf, unsigned len) {
    snprintf(buf, len, "GPU-00000000-0000-0000-0000-00000000000%%ld", (long)h - 1); return 0; }
int nvmlDeviceGetMigMode(void *h, unsigned *cur, unsigned *pending) {
    if (mig[(long)h - 1] == 2) return 3;  /* NVML_ERROR_NOT_SUPPORTED */
    *cur = *pending = mig[(long)h - 1]; return 0; }
"""

GIB = 1 << 30
# Two GPUs as fake_driver takes them: one with MIG on and 4 NVLinks, one whose MIG mode is not supported.
TWO_GPUS = (("NVIDIA RTX PRO 6000 Blackwell", 12, 0, 96, 1), ("NVIDIA H100 80GB HBM3", 9, 0, 80, 2))


def fake_driver(
    gcc: str,
    folder: Path,
    *,
    driver: str = "580.65.06",
    cuda: int = 13000,
    gpus: tuple[tuple[str, int, int, int, int], ...] = (("NVIDIA RTX PRO 6000", 12, 0, 96, 0),),
    cu_init: int = 0,
    nvml_init: int = 0,
) -> Path:
    """``folder`` with a fake libcuda.so.1 and libnvidia-ml.so.1; gpus are (name, major, minor, GiB, mig 0/1/2=n.a.).

    ``cu_init`` and ``nvml_init`` are what cuInit and nvmlInit return (a CUresult, an nvmlReturn_t).
    """
    values = {
        "driver": driver, "cuda": cuda, "init": cu_init, "nvml_init": nvml_init, "count": len(gpus),
        "names": ", ".join(f'"{g[0]}"' for g in gpus) or '""',
        "majors": ", ".join(str(g[1]) for g in gpus) or "0",
        "minors": ", ".join(str(g[2]) for g in gpus) or "0",
        "memory": ", ".join(f"{g[3] * GIB}ULL" for g in gpus) or "0",
        "mig": ", ".join(str(g[4]) for g in gpus) or "0",
    }
    build_so(gcc, folder / "libcuda.so.1", FAKE_CUDA % values, "-Wl,-soname,libcuda.so.1")
    build_so(gcc, folder / "libnvidia-ml.so.1", FAKE_NVML % values, "-Wl,-soname,libnvidia-ml.so.1")
    return folder


def fake_host(root: Path, *, driver: str = "580.65.06", gpus: int = 1) -> Path:
    """A host root for ``--cuda-deps-host-root``: the kernel module of ``driver`` in /proc and /dev with
    nvidiactl, nvidia-uvm and one nvidiaN per GPU as real character devices (major 195; needs root)."""
    (root / "proc/driver/nvidia").mkdir(parents=True)
    (root / "proc/driver/nvidia/version").write_text(
        f"NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  {driver}  Release Build  (fake@host)\n")
    (root / "dev/shm").mkdir(parents=True)
    nodes = ["nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", *(f"nvidia{n}" for n in range(gpus))]
    for minor, name in enumerate(nodes):
        os.mknod(root / "dev" / name, stat.S_IFCHR | 0o666, os.makedev(195, minor))
    return root


def probe(folder: Path | str, cudart: Path | None = None, timeout: float = 30) -> DriverInfo:
    """The real driver probe (ctypes and nvidia-ml-py in a child) with ``folder``, a fake driver's, as LD_LIBRARY_PATH."""
    return probe_driver(timeout=timeout, cudart=cudart, env={"LD_LIBRARY_PATH": str(folder)})
