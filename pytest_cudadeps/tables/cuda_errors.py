"""The driver's error codes as data: each code's name, its usual cause on a Linux GPU host, and the cure.

Where the entries come from:

- ``CU_RESULTS``: the ``CUresult`` enum of ``cuda.h`` (CUDA 13.0, ``#define CUDA_VERSION 13000``,
  read from the toolkit in ``/usr/local/cuda/include/cuda.h`` and from the ``nvidia/cu13/include/cuda.h``
  of the nvidia-cuda-runtime 13.0.96 wheel).  Names are spelled as cuda.h spells them.  ``cuda.h`` has
  no ``CUresult`` 35: the often quoted "35, insufficient driver" is the *runtime's*
  ``cudaErrorInsufficientDriver`` (``driver_types.h``), so it lives in ``CUDART_ERRORS``.
- ``CUDART_ERRORS``: the ``cudaError`` enum of ``driver_types.h`` (same toolkit), for the codes that
  the runtime returns at first contact with the driver (``cudaGetDeviceCount``, ``cudaSetDevice``).
- ``NVML_ERRORS``: ``nvmlReturn_t`` as nvidia-ml-py 13.615.71's ``pynvml.py`` defines it
  (``NVML_ERROR_*`` constants, which mirror ``nvml.h``); the tests compare the table with pynvml.
- The causes and cures are what the field reports (FACTS.md, pytorch#35710 for 802,
  NVIDIA/nvidia-docker#1515 for 804, pytorch#88639 for 999 after suspend) and NVIDIA's own
  descriptions in the headers.

Every cure is an action or a command a user can paste; the checks print it after ``fix:``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class DriverError:
    """One return code of the driver API, the CUDA runtime or NVML: what it means on a Linux host and the cure."""

    code: int
    name: str
    cause: str
    cure: str


_RELOAD_MODULES = ("reboot; or stop every process that uses the GPU (`sudo lsof /dev/nvidia*`) and reload the "
                   "modules: `sudo rmmod nvidia_uvm nvidia_drm nvidia_modeset nvidia && sudo modprobe nvidia "
                   "&& sudo modprobe nvidia_uvm`")
_NO_DEVICE_CURE = ("check `nvidia-smi -L`; unset CUDA_VISIBLE_DEVICES if it hides the GPUs; in a container, start "
                   "it with `docker run --gpus all` (the NVIDIA container runtime)")
_INSUFFICIENT_DRIVER = ("upgrade the NVIDIA driver (CUDA 13 needs >= 580, CUDA 12 >= 525), or install the torch build "
                        "for the CUDA version that `nvidia-smi` shows")

_CU_ENTRIES = (
    DriverError(1, "CUDA_ERROR_INVALID_VALUE", "an argument of the call is out of range (a bug in the caller, "
                "or libcuda older than the caller expects)", "upgrade the NVIDIA driver; if it persists, report the "
                "call and its arguments to the program's authors"),
    DriverError(2, "CUDA_ERROR_OUT_OF_MEMORY", "the GPU has no memory left for a context: other processes hold it",
                "list them with `nvidia-smi --query-compute-apps=pid,used_memory --format=csv` and stop them"),
    DriverError(3, "CUDA_ERROR_NOT_INITIALIZED", "cuInit failed or was never called; in Python usually a CUDA call "
                "in a child forked after the parent had initialised CUDA",
                "start worker processes with the 'spawn' method (`multiprocessing.set_start_method('spawn')`); "
                "check `nvidia-smi` if cuInit itself fails"),
    DriverError(4, "CUDA_ERROR_DEINITIALIZED", "the CUDA driver is shutting down in this process (a call during "
                "interpreter exit)", "release CUDA objects before the interpreter exits; nothing is wrong with the host"),
    DriverError(34, "CUDA_ERROR_STUB_LIBRARY", "the libcuda.so loaded is the toolkit's link-time stub "
                "(a `stubs/` folder on LD_LIBRARY_PATH), not the driver's",
                "remove the `stubs` folder from LD_LIBRARY_PATH (e.g. /usr/local/cuda/lib64/stubs) and from "
                "/etc/ld.so.conf.d, then `sudo ldconfig`"),
    DriverError(36, "CUDA_ERROR_CALL_REQUIRES_NEWER_DRIVER", "the call needs a newer driver than the one installed",
                "upgrade the NVIDIA driver to the release that `nvidia-smi` names for the CUDA version in use"),
    DriverError(46, "CUDA_ERROR_DEVICE_UNAVAILABLE", "the GPU is in EXCLUSIVE_PROCESS (or PROHIBITED) compute mode "
                "and another process holds it", "see the mode with `nvidia-smi -q -d COMPUTE`; stop the other "
                "process, or `sudo nvidia-smi -i 0 -c DEFAULT` to share the GPU"),
    DriverError(100, "CUDA_ERROR_NO_DEVICE", "the driver sees no CUDA-capable GPU (hidden by CUDA_VISIBLE_DEVICES, "
                "or a container without the GPU runtime)", _NO_DEVICE_CURE),
    DriverError(101, "CUDA_ERROR_INVALID_DEVICE", "the device ordinal is past the number of visible GPUs "
                "(CUDA_VISIBLE_DEVICES renumbers them from 0)", "count the visible GPUs with `nvidia-smi -L` and use "
                "ordinals from 0 in the order CUDA_VISIBLE_DEVICES lists them"),
    DriverError(102, "CUDA_ERROR_DEVICE_NOT_LICENSED", "a vGPU without a license", "check the licensing daemon: "
                "`systemctl status nvidia-gridd` and `nvidia-smi -q | grep -i license`"),
    DriverError(200, "CUDA_ERROR_INVALID_IMAGE", "a kernel image (cubin/fatbin) is corrupt or not for this driver",
                "reinstall the package that ships the kernels (`pip install --force-reinstall torch`)"),
    DriverError(209, "CUDA_ERROR_NO_BINARY_FOR_GPU", "the library carries no kernel for this GPU's architecture "
                "(sm_XY not compiled in, and no PTX to JIT)", "install a build compiled for this GPU (a newer torch "
                "and CUDA build for a new GPU; an older one for a GPU that was dropped)"),
    DriverError(214, "CUDA_ERROR_ECC_UNCORRECTABLE", "the GPU reported an uncorrectable memory (ECC) error",
                "look at `nvidia-smi -q -d ECC`; reset the GPU (`sudo nvidia-smi -r -i 0`) and have it replaced if "
                "the errors come back"),
    DriverError(218, "CUDA_ERROR_INVALID_PTX", "the PTX could not be JIT-compiled by this driver",
                "upgrade the NVIDIA driver, or install a build that carries native code (SASS) for this GPU"),
    DriverError(221, "CUDA_ERROR_JIT_COMPILER_NOT_FOUND", "the driver's PTX JIT compiler library is missing "
                "(libnvidia-ptxjitcompiler.so.1, often not mounted into a container)", "reinstall the NVIDIA driver; "
                "in a container use `--gpus all` with NVIDIA_DRIVER_CAPABILITIES=compute,utility"),
    DriverError(222, "CUDA_ERROR_UNSUPPORTED_PTX_VERSION", "the PTX was produced by a newer toolkit than the driver "
                "supports (minor-version compatibility cannot JIT newer PTX)",
                "upgrade the NVIDIA driver, or install the build for the CUDA version that `nvidia-smi` shows"),
    DriverError(304, "CUDA_ERROR_OPERATING_SYSTEM", "an OS call of the driver failed: usually /dev/nvidia-uvm "
                "missing or not permitted (container device rules, a module not loaded)",
                "on the host: `sudo nvidia-modprobe -u -c=0` (creates /dev/nvidia-uvm), check `ls -l /dev/nvidia*` "
                "and `sudo dmesg | grep -i nvrm`; start containers with `--gpus all`"),
    DriverError(800, "CUDA_ERROR_NOT_PERMITTED", "the operation is not permitted (MPS client or a restricted "
                "compute mode)", "check `nvidia-smi -q -d COMPUTE` and whether an MPS server runs "
                "(`pgrep -a nvidia-cuda-mps`)"),
    DriverError(801, "CUDA_ERROR_NOT_SUPPORTED", "the operation is not supported on this system or GPU "
                "(for cuInit: e.g. a vGPU or WSL profile without CUDA)", "check the GPU and profile with "
                "`nvidia-smi -q`; use a GPU or vGPU profile that supports CUDA compute"),
    DriverError(802, "CUDA_ERROR_SYSTEM_NOT_READY", "the system is not ready for CUDA work: on NVSwitch systems "
                "(HGX/DGX) the NVIDIA fabric manager is not running",
                "`sudo systemctl enable --now nvidia-fabricmanager` with a nvidia-fabricmanager package of exactly "
                "the driver's version (`nvidia-smi --query-gpu=driver_version --format=csv,noheader`); then "
                "`systemctl status nvidia-fabricmanager`"),
    DriverError(803, "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH", "the loaded nvidia kernel module and libcuda.so.1 differ "
                "in version (the driver was upgraded without a reboot)", _RELOAD_MODULES),
    DriverError(804, "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE", "a forward-compatibility libcuda (the cuda-compat "
                "package, a `compat/` folder) runs on a GPU that does not support it (GeForce and most "
                "workstation GPUs: only data-center GPUs and select NGC-ready RTX do)",
                "remove the compat folder (e.g. /usr/local/cuda/compat) from LD_LIBRARY_PATH and /etc/ld.so.conf.d "
                "(`sudo ldconfig`), or uninstall it: `sudo apt-get remove 'cuda-compat-*'`"),
    DriverError(805, "CUDA_ERROR_MPS_CONNECTION_FAILED", "CUDA_MPS_PIPE_DIRECTORY points at an MPS daemon that "
                "is not running", "start it (`nvidia-cuda-mps-control -d`) or unset CUDA_MPS_PIPE_DIRECTORY"),
    DriverError(999, "CUDA_ERROR_UNKNOWN", "an unknown internal error; on desktops and laptops typically after a "
                "suspend/resume, when the nvidia_uvm module lost its state",
                "reload nvidia_uvm: `sudo rmmod nvidia_uvm && sudo modprobe nvidia_uvm` (or reboot); "
                "check `sudo dmesg | grep -i xid`"),
)

CU_RESULTS: Mapping[int, DriverError] = {entry.code: entry for entry in _CU_ENTRIES}


def _like_driver(code: int, name: str) -> DriverError:
    """A runtime code that passes the driver's error through: same cause and cure as the CUresult."""
    return DriverError(code, name, CU_RESULTS[code].cause, CU_RESULTS[code].cure)


_CUDART_ENTRIES = (
    DriverError(3, "cudaErrorInitializationError", "the CUDA driver could not be initialised (cuInit failed)",
                "check `nvidia-smi`; the driver[libcuda] item names cuInit's own error"),
    _like_driver(34, "cudaErrorStubLibrary"),
    DriverError(35, "cudaErrorInsufficientDriver", "the NVIDIA driver is older than the CUDA runtime needs, or "
                "there is no driver at all (\"CUDA driver version is insufficient for CUDA runtime version\")",
                _INSUFFICIENT_DRIVER),
    _like_driver(46, "cudaErrorDevicesUnavailable"),
    _like_driver(100, "cudaErrorNoDevice"),
    _like_driver(101, "cudaErrorInvalidDevice"),
    _like_driver(209, "cudaErrorNoKernelImageForDevice"),
    _like_driver(222, "cudaErrorUnsupportedPtxVersion"),
    _like_driver(304, "cudaErrorOperatingSystem"),
    _like_driver(801, "cudaErrorNotSupported"),
    _like_driver(802, "cudaErrorSystemNotReady"),
    _like_driver(803, "cudaErrorSystemDriverMismatch"),
    _like_driver(804, "cudaErrorCompatNotSupportedOnDevice"),
    _like_driver(999, "cudaErrorUnknown"),
)

_NVML_ENTRIES = (
    DriverError(1, "NVML_ERROR_UNINITIALIZED", "NVML was used before nvmlInit succeeded",
                "call nvmlInit first; if nvmlInit failed, its own code names the cause"),
    DriverError(2, "NVML_ERROR_INVALID_ARGUMENT", "an argument is invalid (often a device index past the count)",
                "count the GPUs with `nvidia-smi -L` and use indices below that count"),
    DriverError(3, "NVML_ERROR_NOT_SUPPORTED", "the query is not supported by this GPU (e.g. MIG mode on a GPU "
                "without MIG)", "nothing to repair: the GPU lacks the feature"),
    DriverError(4, "NVML_ERROR_NO_PERMISSION", "this user may not open the GPU's device files",
                "check `ls -l /dev/nvidia*`; add the user to the group that owns them (`sudo usermod -aG video "
                "$USER`) or fix the container's device rules"),
    DriverError(5, "NVML_ERROR_ALREADY_INITIALIZED", "deprecated: nvmlInit was called twice",
                "nothing to repair (NVML counts nested nvmlInit calls)"),
    DriverError(6, "NVML_ERROR_NOT_FOUND", "the GPU or object asked for does not exist (a wrong UUID, PCI bus id "
                "or index)", "list the GPUs with `nvidia-smi -L` and use one of those identifiers"),
    DriverError(7, "NVML_ERROR_INSUFFICIENT_SIZE", "a buffer passed to NVML is too small",
                "upgrade nvidia-ml-py (`pip install -U nvidia-ml-py`)"),
    DriverError(8, "NVML_ERROR_INSUFFICIENT_POWER", "a GPU's external power cables are not connected properly",
                "power the host off and reseat the GPU's power connectors"),
    DriverError(9, "NVML_ERROR_DRIVER_NOT_LOADED", "libnvidia-ml.so.1 is installed but the nvidia kernel module "
                "is not loaded (not built for this kernel, or blocked by Secure Boot)",
                "`sudo modprobe nvidia` and read `sudo dmesg | grep -i nvrm`; rebuild the module for this kernel "
                "(`sudo dkms autoinstall`) or enroll its key for Secure Boot"),
    DriverError(10, "NVML_ERROR_TIMEOUT", "the GPU or the driver did not answer in time",
                "check `sudo dmesg | grep -i xid`; reset the GPU (`sudo nvidia-smi -r -i 0`) or reboot"),
    DriverError(11, "NVML_ERROR_IRQ_ISSUE", "the kernel could not set up the GPU's interrupts",
                "read `sudo dmesg | grep -i nvrm`; try the kernel parameter `pci=nomsi` only as a diagnosis and "
                "update the BIOS"),
    DriverError(12, "NVML_ERROR_LIBRARY_NOT_FOUND", "libnvidia-ml.so.1 is not found: no NVIDIA driver on this "
                "host, or a container started without the GPU runtime",
                "install the NVIDIA driver, or start the container with `docker run --gpus all`"),
    DriverError(13, "NVML_ERROR_FUNCTION_NOT_FOUND", "libnvidia-ml.so.1 is older than the function nvidia-ml-py "
                "asks for", "upgrade the NVIDIA driver, or install an nvidia-ml-py as old as the driver"),
    DriverError(14, "NVML_ERROR_CORRUPTED_INFOROM", "the GPU's infoROM is corrupt",
                "look at `nvidia-smi -q | grep -i inforom`; contact the vendor for an infoROM update or replacement"),
    DriverError(15, "NVML_ERROR_GPU_IS_LOST", "the GPU fell off the bus (Xid 79: power, heat or a PCIe fault)",
                "read `sudo dmesg | grep -i xid`; reboot, then check cooling, power and the PCIe seating"),
    DriverError(16, "NVML_ERROR_RESET_REQUIRED", "the GPU needs a reset before it can be used again",
                "`sudo nvidia-smi -r -i 0` (with no process on that GPU), or reboot"),
    DriverError(17, "NVML_ERROR_OPERATING_SYSTEM", "the operating system refused an NVML call (device cgroup rules "
                "in a container, or a blocked ioctl)", "check `ls -l /dev/nvidia*` and `sudo dmesg | grep -i nvrm`; "
                "start the container with `--gpus all`"),
    DriverError(18, "NVML_ERROR_LIB_RM_VERSION_MISMATCH", "Driver/library version mismatch: libnvidia-ml.so.1 and "
                "the loaded nvidia kernel module differ in version (upgraded without a reboot)", _RELOAD_MODULES),
    DriverError(19, "NVML_ERROR_IN_USE", "the GPU is busy with another operation (e.g. a reset)",
                "stop the other process (`nvidia-smi --query-compute-apps=pid --format=csv`) and retry"),
    DriverError(20, "NVML_ERROR_MEMORY", "NVML ran out of host memory", "free host memory and retry"),
    DriverError(21, "NVML_ERROR_NO_DATA", "NVML has no data for the query yet", "nothing to repair: ask again later"),
    DriverError(22, "NVML_ERROR_VGPU_ECC_NOT_SUPPORTED", "ECC is on but a vGPU cannot run with it",
                "disable ECC: `sudo nvidia-smi -e 0` and reboot"),
    DriverError(23, "NVML_ERROR_INSUFFICIENT_RESOURCES", "not enough GPU resources for the operation",
                "stop other processes on the GPU and retry"),
    DriverError(24, "NVML_ERROR_FREQ_NOT_SUPPORTED", "the asked clock frequency is not supported",
                "list the supported clocks with `nvidia-smi -q -d SUPPORTED_CLOCKS`"),
    DriverError(25, "NVML_ERROR_ARGUMENT_VERSION_MISMATCH", "nvidia-ml-py passes a structure version that this "
                "driver's NVML does not know (nvidia-ml-py newer than the driver)",
                "upgrade the NVIDIA driver, or install an nvidia-ml-py as old as the driver"),
    DriverError(26, "NVML_ERROR_DEPRECATED", "the function is deprecated in this driver",
                "upgrade nvidia-ml-py (`pip install -U nvidia-ml-py`)"),
    DriverError(27, "NVML_ERROR_NOT_READY", "the GPU is not ready yet (initialising, or after a reset)",
                "wait and retry; enable persistence mode (`sudo nvidia-smi -pm 1`) so the GPU stays initialised"),
    DriverError(28, "NVML_ERROR_GPU_NOT_FOUND", "the GPU asked for is not found", "list the GPUs with `nvidia-smi -L`"),
    DriverError(29, "NVML_ERROR_INVALID_STATE", "the GPU is in a state that does not allow the operation",
                "reset the GPU (`sudo nvidia-smi -r -i 0`) or reboot"),
    DriverError(30, "NVML_ERROR_RESET_TYPE_NOT_SUPPORTED", "the asked reset type is not supported by this GPU",
                "reboot the host instead"),
    DriverError(999, "NVML_ERROR_UNKNOWN", "an unknown internal NVML error", "check `nvidia-smi` and "
                "`sudo dmesg | grep -i -e nvrm -e xid`; reboot if nvidia-smi fails the same way"),
)

CUDART_ERRORS: Mapping[int, DriverError] = {entry.code: entry for entry in _CUDART_ENTRIES}
NVML_ERRORS: Mapping[int, DriverError] = {entry.code: entry for entry in _NVML_ENTRIES}


def _unknown(code: int, kind: str) -> DriverError:
    return DriverError(code, f"unknown {kind} {code}", "a code this table does not know",
                       "check `nvidia-smi` and `sudo dmesg | grep -i -e nvrm -e xid`; look the code up in the "
                       "header of the driver's CUDA version")


def cu_error(code: int) -> DriverError:
    """The ``CUresult`` entry for ``code``; an unknown code gives an entry that says so (never a KeyError)."""
    if code in CU_RESULTS:
        return CU_RESULTS[code]
    runtime = CUDART_ERRORS.get(code)
    if runtime is None:
        return _unknown(code, "CUresult")
    # A runtime code reported as a driver code is a common mix-up (35 above all): say what it would mean.
    return DriverError(code, f"unknown CUresult {code}", f"cuda.h has no CUresult {code} (as a CUDA runtime code it "
                       f"is {runtime.name}: {runtime.cause})", runtime.cure)


def cudart_error(code: int) -> DriverError:
    """The CUDA runtime's ``cudaError`` entry for ``code`` (only the codes met at first contact with the driver)."""
    return CUDART_ERRORS.get(code) or _unknown(code, "cudaError")


def nvml_error(code: int) -> DriverError:
    """The ``nvmlReturn_t`` entry for ``code``; an unknown code gives an entry that says so."""
    return NVML_ERRORS.get(code) or _unknown(code, "nvmlReturn_t")


# How the programs that meet a faulty driver word it, whatever their call: the CUDA runtime's strings
# (cudaGetErrorString of cudaErrorInsufficientDriver and cudaErrorSystemDriverMismatch), torch's message for an
# old driver (c10/cuda/CUDAFunctions.cpp), NVML's string for a mismatch (nvidia-smi prints it), and the names of
# the codes above that mean "the driver, not the program".  The causes fold a failure that says one of these
# under the driver's own fault, when the driver items found one.
DRIVER_FAULT_WORDS = (
    "CUDA driver version is insufficient", "NVIDIA driver on your system is too old",
    "unsupported display driver / cuda driver combination", "Driver/library version mismatch",
    "cudaErrorInsufficientDriver", "cudaErrorSystemDriverMismatch", "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH",
    "NVML_ERROR_LIB_RM_VERSION_MISMATCH", "NVML_ERROR_DRIVER_NOT_LOADED",
)
