"""Every host[...] finding, on fake /proc and /dev trees (real character devices, a real tmpfs).

How the trees are read is tests/engine/test_host.py's.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_cudadeps.checks.findings import Outcome
from pytest_cudadeps.checks.host import (
    SHM_FIX,
    UVM_FIX,
    compat_finding,
    cpu_build_finding,
    device_nodes_finding,
    forward_compat_support,
    kernel_module_finding,
    mig_blocks_all_reduce,
    mig_finding,
    shm_finding,
    visible_devices_finding,
)
from pytest_cudadeps.engine.distributions import read_version_module
from pytest_cudadeps.engine.host import HostFacts, read_host
from pytest_cudadeps.probes.driver import Gpu
from tests.support import venvs
from tests.support.host_tree import PROPRIETARY, make_root

H100 = Gpu(0, "NVIDIA H100 80GB HBM3", (9, 0), 80 << 30, "off")
H100_1 = Gpu(1, "NVIDIA H100 80GB HBM3", (9, 0), 80 << 30, "off")
GEFORCE = Gpu(0, "NVIDIA GeForce RTX 4090", (8, 9), 24 << 30, "n/a")
A100_MIG = Gpu(0, "NVIDIA A100-SXM4-80GB", (8, 0), 80 << 30, "on")
RTX_PRO = Gpu(0, "NVIDIA RTX PRO 6000 Blackwell Workstation Edition", (12, 0), 96 << 30, "n/a")


def facts_with(root: Path, **env: str) -> HostFacts:
    return read_host(root, env)


# --- host[kernel-module] -------------------------------------------------------------------------------------------


def test_kernel_module_matching_nvml_passes(tmp_path: Path) -> None:
    finding = kernel_module_finding(facts_with(make_root(tmp_path)), "580.65.06", None)
    assert finding.outcome is Outcome.PASS
    assert finding.message == "kernel module 580.65.06 = NVML 580.65.06"


def test_kernel_module_older_than_libcuda_is_the_driver_library_mismatch(tmp_path: Path) -> None:
    facts = facts_with(make_root(tmp_path, PROPRIETARY.replace("550.90.07", "570.86.15")))
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "libcuda.so.580.65.06").write_text("")  # never loaded: only its name is read, through the symlink
    (lib / "libcuda.so.1").symlink_to("libcuda.so.580.65.06")
    finding = kernel_module_finding(facts, None, str(lib / "libcuda.so.1"))
    assert finding.outcome is Outcome.FAIL
    assert finding.message == "Driver/library version mismatch: kernel module 570.86.15, libcuda 580.65.06"
    assert finding.details[0].startswith("NVRM version: NVIDIA UNIX x86_64 Kernel Module  570.86.15")
    assert finding.fix.startswith("reboot; or stop every process on the GPU")
    assert "sudo modprobe nvidia && sudo modprobe nvidia_uvm" in finding.fix
    both = kernel_module_finding(facts, "580.65.06", str(lib / "libcuda.so.1"))
    assert both.message == "Driver/library version mismatch: kernel module 570.86.15, NVML 580.65.06, libcuda 580.65.06"


def test_kernel_module_without_a_driver_skips_or_fails_when_a_gpu_is_required(tmp_path: Path) -> None:
    facts = facts_with(make_root(tmp_path, None, char=()))
    assert kernel_module_finding(facts, None, None).outcome is Outcome.SKIP
    required = kernel_module_finding(facts, None, None, require_gpu=True)
    assert required.outcome is Outcome.FAIL
    assert "--cuda-deps-require-gpu" in required.message
    # libcuda answered but there is no version file (WSL): cannot compare, a plain skip
    wsl = kernel_module_finding(facts, "580.65.06", "/usr/lib/wsl/lib/libcuda.so.1", require_gpu=True)
    assert wsl.outcome is Outcome.SKIP
    assert wsl.message.startswith("cannot read the kernel module's version (")


# --- host[device-nodes] --------------------------------------------------------------------------------------------


def test_device_nodes_present_pass(tmp_path: Path) -> None:
    root = make_root(tmp_path, char=("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia0", "nvidia1"))
    finding = device_nodes_finding(facts_with(root), 2)
    dev = root / "dev"
    assert finding.outcome is Outcome.PASS
    assert finding.message == (f"{dev}/nvidiactl, {dev}/nvidia-uvm and 2 GPU node(s) ({dev}/nvidia0, {dev}/nvidia1) "
                               "are character devices")


def test_a_missing_nvidia_uvm_is_the_container_classic(tmp_path: Path) -> None:
    root = make_root(tmp_path, char=("nvidiactl", "nvidia0"))
    finding = device_nodes_finding(facts_with(root), 1)
    assert finding.outcome is Outcome.FAIL
    assert finding.message == f"{root}/dev/nvidia-uvm is missing"
    assert finding.details == ("without /dev/nvidia-uvm nvidia-smi works but CUDA does not: cudaGetDeviceCount fails "
                               "(cuInit: CUDA_ERROR_OPERATING_SYSTEM or CUDA_ERROR_NO_DEVICE)",)
    assert finding.fix == UVM_FIX
    assert "`sudo nvidia-modprobe -u -c=0`" in UVM_FIX
    assert "--gpus all" in UVM_FIX


def test_a_regular_file_posing_as_a_node_and_too_few_gpu_nodes(tmp_path: Path) -> None:
    root = make_root(tmp_path, char=("nvidiactl", "nvidia0"))
    (root / "dev" / "nvidia-uvm").write_text("")
    finding = device_nodes_finding(facts_with(root), 2)
    assert finding.message == (f"{root}/dev/nvidia-uvm is a regular file, not a character device; "
                               "1 /dev/nvidiaN character devices for the 2 GPUs NVML reports")
    assert f"(`sudo rm {root}/dev/nvidia-uvm`)" in finding.details[1]


def test_no_driver_no_nodes_is_a_skip(tmp_path: Path) -> None:
    finding = device_nodes_finding(facts_with(make_root(tmp_path, None, char=())), 0)
    assert finding.outcome is Outcome.SKIP


# --- host[visible-devices] -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "outcome", "message", "fix"), [
    (None, Outcome.PASS, "CUDA_VISIBLE_DEVICES is not set: torch sees all 2 GPU(s)", ""),
    ("1", Outcome.PASS, "CUDA_VISIBLE_DEVICES='1': torch sees 1 of the 2 GPU(s): GPU 1 NVIDIA H100 80GB HBM3", ""),
    ("", Outcome.FAIL, "CUDA_VISIBLE_DEVICES='': torch sees 0 of the 2 GPU(s); it is empty", "unset CUDA_VISIBLE_DEVICES"),
    ("-1", Outcome.FAIL, "CUDA_VISIBLE_DEVICES='-1': torch sees 0 of the 2 GPU(s); `-1` is not a GPU index "
     "(`-1`, `none` and `void` hide GPUs)", "unset CUDA_VISIBLE_DEVICES"),
    ("none", Outcome.FAIL, "CUDA_VISIBLE_DEVICES='none': torch sees 0 of the 2 GPU(s); `none` is not a GPU index "
     "(`-1`, `none` and `void` hide GPUs)", "unset CUDA_VISIBLE_DEVICES"),
    ("0,5,1", Outcome.FAIL, "CUDA_VISIBLE_DEVICES='0,5,1': torch sees 1 of the 2 GPU(s): GPU 0 NVIDIA H100 80GB HBM3; "
     "`5` is past the 2 GPU(s) of this host (indices 0 to 1); CUDA ignores the entries after it (1)",
     "export CUDA_VISIBLE_DEVICES=0"),
    ("0,0", Outcome.FAIL, "CUDA_VISIBLE_DEVICES='0,0': torch sees 0 of the 2 GPU(s); `0` is repeated: a repeated "
     "entry hides every GPU", "export CUDA_VISIBLE_DEVICES=0"),
    ("1gpu", Outcome.PASS, "CUDA_VISIBLE_DEVICES='1gpu': torch sees 1 of the 2 GPU(s): GPU 1 NVIDIA H100 80GB HBM3", ""),
    ("MIG-aaa,MIG-bbb", Outcome.FAIL, "CUDA_VISIBLE_DEVICES='MIG-aaa,MIG-bbb': torch sees 1 of the 2 GPU(s): MIG "
     "device MIG-aaa; `MIG-bbb`: a process uses one MIG device only (pytorch#130181), the first listed",
     "export CUDA_VISIBLE_DEVICES=MIG-aaa"),
    ("GPU-0badc0de", Outcome.FAIL, "CUDA_VISIBLE_DEVICES='GPU-0badc0de': torch sees 0 of the 2 GPU(s); "
     "`GPU-0badc0de` matches no GPU's UUID", "unset CUDA_VISIBLE_DEVICES"),
    ("GPU-2f1e", Outcome.PASS, "CUDA_VISIBLE_DEVICES='GPU-2f1e': torch sees 1 of the 2 GPU(s): GPU 1 NVIDIA H100 "
     "80GB HBM3", ""),
])
def test_visible_devices(tmp_path: Path, value: str | None, outcome: Outcome, message: str, fix: str) -> None:
    env = {} if value is None else {"CUDA_VISIBLE_DEVICES": value}
    facts = read_host(make_root(tmp_path, char=()), env)
    finding = visible_devices_finding(facts, (H100, H100_1), uuids=("GPU-8c3a-0", "GPU-2f1e-1"))
    assert (finding.outcome, finding.message) == (outcome, message)
    assert finding.fix.startswith(fix)


def test_uuids_the_probe_does_not_report_are_named_as_unchecked(tmp_path: Path) -> None:
    facts = read_host(make_root(tmp_path, char=()), {"CUDA_VISIBLE_DEVICES": "GPU-2f1e"})
    finding = visible_devices_finding(facts, (H100, H100_1))
    assert finding.message == ("CUDA_VISIBLE_DEVICES='GPU-2f1e': torch sees 1 of the 2 GPU(s): GPU-2f1e "
                               "(UUID not checked: the probe reports none)")


def test_no_gpu_because_the_container_runtime_added_none(tmp_path: Path) -> None:
    facts = read_host(make_root(tmp_path, None, char=()), {"NVIDIA_VISIBLE_DEVICES": "void"})
    finding = visible_devices_finding(facts, (), require_gpu=True)
    assert finding.outcome is Outcome.FAIL
    assert finding.message == ("no GPU to make visible: NVIDIA_VISIBLE_DEVICES='void': the NVIDIA container runtime "
                               "was told to add no GPU to this container, but --cuda-deps-require-gpu asks for a GPU")
    assert finding.fix == "start the container with `docker run --gpus all`"


# --- host[shm] -----------------------------------------------------------------------------------------------------


@pytest.fixture
def tmpfs_64m(tmp_path: Path) -> Iterator[Path]:
    """A fake root whose /dev/shm is a real 64 MiB tmpfs, as Docker gives by default."""
    root = make_root(tmp_path, char=())
    shm = root / "dev" / "shm"
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(shm)], capture_output=True,
                             text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield root
    finally:
        subprocess.run(["umount", str(shm)], check=True)


def test_docker_default_shm_is_too_small_for_nccl(tmpfs_64m: Path) -> None:
    facts = read_host(tmpfs_64m, {})
    assert facts.shm_bytes == 64 << 20  # measured: statvfs of `mount -t tmpfs -o size=64m` is 67108864
    finding = shm_finding(facts, 2)
    assert finding.outcome is Outcome.FAIL
    assert finding.message == (f"{tmpfs_64m}/dev/shm is 64 MiB: too small for NCCL between the 2 GPUs (at least "
                               "1 GiB; Docker's default is 64 MiB, NVIDIA/nccl#473)")
    assert finding.fix == SHM_FIX
    assert "--ipc=host" in SHM_FIX
    assert "--shm-size=16g" in SHM_FIX
    assert shm_finding(facts, 1).outcome is Outcome.SKIP


def test_shm_size_through_an_injected_statvfs(tmp_path: Path) -> None:
    root = make_root(tmp_path, char=())
    big = os.statvfs_result((4096, 4096, 16 << 18, 0, 0, 0, 0, 0, 0, 255))  # 16 GiB in 4 KiB blocks

    def fake(path: Path) -> os.statvfs_result:
        assert path == root / "dev" / "shm"
        return big

    finding = shm_finding(read_host(root, {}, statvfs=fake), 8)
    assert (finding.outcome, finding.message) == (Outcome.PASS, f"{root}/dev/shm is 16 GiB: enough for NCCL between "
                                                                "8 GPUs")

    def refuse(path: Path) -> os.statvfs_result:
        raise PermissionError(13, "Permission denied")

    denied = shm_finding(read_host(root, {}, statvfs=refuse), 2)
    assert denied.outcome is Outcome.FAIL
    assert denied.message.startswith(f"cannot read the size of {root}/dev/shm ({root}/dev/shm: Permission denied)")


# --- host[compat] --------------------------------------------------------------------------------------------------

COMPAT_LIB = "/usr/local/cuda-13.0/compat/libcuda.so.1"


def test_compat_libcuda_on_a_geforce_is_804(tmp_path: Path) -> None:
    facts = read_host(make_root(tmp_path, char=()), {"LD_LIBRARY_PATH": "/usr/local/cuda-13.0/compat:/opt/my lib"})
    finding = compat_finding(facts, COMPAT_LIB, (GEFORCE,))
    assert finding.outcome is Outcome.FAIL
    assert finding.message == ("libcuda.so.1 comes from the forward-compatibility folder /usr/local/cuda-13.0/compat, "
                               "which GPU 0 NVIDIA GeForce RTX 4090 does not support: cuInit fails with "
                               "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE (804)")
    assert finding.fix == ("take the compat folder out of LD_LIBRARY_PATH: `export LD_LIBRARY_PATH='/opt/my lib'`; or "
                           "uninstall it: `sudo apt-get remove 'cuda-compat-*'` (or `conda remove cuda-compat`)")


def test_compat_libcuda_from_the_loader_cache_and_the_cuinit_verdict(tmp_path: Path) -> None:
    facts = read_host(make_root(tmp_path, char=()), {})
    finding = compat_finding(facts, COMPAT_LIB, (RTX_PRO,), cu_init=804)
    assert finding.message.startswith("libcuda.so.1 comes from the forward-compatibility folder "
                                      "/usr/local/cuda-13.0/compat, which a GPU of this host does not support")
    assert finding.fix.startswith("remove /usr/local/cuda-13.0/compat from the loader's configuration (`grep -rl "
                                  "/usr/local/cuda-13.0/compat /etc/ld.so.conf.d`")
    fine = compat_finding(facts, COMPAT_LIB, (H100,))
    assert (fine.outcome, fine.message) == (Outcome.PASS, "libcuda.so.1 from the forward-compatibility folder "
                                            "/usr/local/cuda-13.0/compat on data-center GPUs")
    workstation = compat_finding(facts, COMPAT_LIB, (RTX_PRO,), cu_init=0)
    assert workstation.outcome is Outcome.PASS
    assert workstation.message.endswith("GPU 0 NVIDIA RTX PRO 6000 Blackwell Workstation Edition: supported only by "
                                        "the NGC Server Ready SKUs, and cuInit succeeded")
    own = compat_finding(facts, "/usr/lib/x86_64-linux-gnu/libcuda.so.1", (GEFORCE,))
    assert (own.outcome, own.message) == (Outcome.PASS, "/usr/lib/x86_64-linux-gnu/libcuda.so.1 is the driver's own "
                                          "libcuda (not a compat/ folder)")


@pytest.mark.parametrize(("name", "support"), [
    ("NVIDIA H100 80GB HBM3", "yes"), ("NVIDIA A100-SXM4-80GB", "yes"), ("NVIDIA L40S", "yes"), ("Tesla T4", "yes"),
    ("NVIDIA GH200 480GB", "yes"), ("NVIDIA B200", "yes"), ("NVIDIA GeForce RTX 4090", "no"), ("NVIDIA TITAN RTX", "no"),
    ("NVIDIA RTX A6000", "maybe"), ("NVIDIA RTX 6000 Ada Generation", "maybe"), ("Quadro RTX 8000", "maybe"),
])
def test_forward_compat_support_by_name(name: str, support: str) -> None:
    assert forward_compat_support(name) == support


# --- host[mig] -----------------------------------------------------------------------------------------------------


def test_mig_on_allows_one_device_per_process_and_blocks_the_all_reduce(tmp_path: Path) -> None:
    reason = mig_blocks_all_reduce((A100_MIG, H100_1))
    assert reason == ("MIG mode is on (GPU 0 NVIDIA A100-SXM4-80GB): a process can use one MIG device only "
                      "(pytorch#130181), so an NCCL all-reduce across MIG devices cannot run")
    assert mig_blocks_all_reduce((H100, H100_1)) is None
    root = make_root(tmp_path, caps=True)
    finding = mig_finding(read_host(root, {}), (A100_MIG, H100_1))
    assert finding.message == f"{reason}; torch in one process sees 1 MIG device"
    assert dict(finding.facts)["gpu0"] == "on"
    no_caps = mig_finding(read_host(make_root(tmp_path / "b", char=()), {}), (A100_MIG,))
    assert no_caps.message.endswith("/dev/nvidia-caps is absent: in a container, MIG devices come only through the "
                                    "NVIDIA runtime (NVIDIA_VISIBLE_DEVICES=MIG-...)")
    off = mig_finding(read_host(root, {}), (H100,))
    assert (off.outcome, off.message) == (Outcome.PASS, "MIG mode is off on the 1 GPU(s)")


# --- host[torch-build] ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("installer", "fix"), [
    ("pip", "pip install --force-reinstall 'torch==2.13.0' --index-url https://download.pytorch.org/whl/cu130"),
    ("uv", "uv pip install --reinstall 'torch==2.13.0' --index-url https://download.pytorch.org/whl/cu130"),
    ("poetry", "poetry source add --priority=explicit pytorch-cu130 https://download.pytorch.org/whl/cu130 && "
               "poetry add 'torch==2.13.0' --source pytorch-cu130"),
])
def test_a_cpu_torch_on_a_gpu_host_fails_with_the_cuda_build_for_the_installer(installer: str, fix: str) -> None:
    finding = cpu_build_finding("2.13.0+cpu", installer, (H100,), (13, 0))
    assert finding.outcome is Outcome.FAIL
    assert finding.message == "torch 2.13.0+cpu cannot use the NVIDIA H100 80GB HBM3 of this host: it is a CPU-only build"
    assert finding.fix == fix


def test_the_index_follows_the_driver_and_the_build(tmp_path: Path) -> None:
    older = cpu_build_finding("2.7.1+cpu", "pip", (H100, H100_1), (12, 7))
    assert older.message == ("torch 2.7.1+cpu cannot use the 2 GPUs (NVIDIA H100 80GB HBM3) of this host: it is a "
                             "CPU-only build")
    assert older.fix == "pip install --force-reinstall 'torch==2.7.1' --index-url https://download.pytorch.org/whl/cu126"
    too_old = cpu_build_finding("2.13.0+cpu", "pip", (H100,), (11, 0))
    assert too_old.fix == ("the driver supports CUDA 11.0 only: upgrade it to >= 580, then pip install "
                           "--force-reinstall 'torch==2.13.0' --index-url https://download.pytorch.org/whl/cu130")
    # PyPI's aarch64 wheel is CPU-only without a +cpu label: version.py's verdict wins
    unlabeled = cpu_build_finding("2.13.0", "uv", (H100,), (13, 0), cpu_only=True)
    assert unlabeled.outcome is Outcome.FAIL
    assert unlabeled.fix.startswith("uv pip install --reinstall 'torch==2.13.0' ")
    assert cpu_build_finding("2.14.1", "pip", (H100,), (13, 0)).outcome is Outcome.PASS
    assert cpu_build_finding("2.13.0+cpu", "pip", (), None).outcome is Outcome.SKIP
    assert cpu_build_finding("2.13.0+cpu", "pip", (), None, require_gpu=True).outcome is Outcome.FAIL


@pytest.mark.integration
def test_the_real_cpu_venv_on_an_h100_host(cpu_venv: Path) -> None:
    values = read_version_module(venvs.site_packages(cpu_venv) / "torch")
    assert values["cuda"] is None
    finding = cpu_build_finding(str(values["__version__"]), "pip", (H100,), (13, 0), cpu_only=values["cuda"] is None)
    assert finding.message == "torch 2.13.0+cpu cannot use the NVIDIA H100 80GB HBM3 of this host: it is a CPU-only build"
    assert finding.fix == "pip install --force-reinstall 'torch==2.13.0' --index-url https://download.pytorch.org/whl/cu130"


def test_an_editable_torch_is_rebuilt_where_it_lives_never_reinstalled(tmp_path: Path) -> None:
    source = tmp_path / "my pytorch"
    finding = cpu_build_finding("2.15.0a0+git1234", "pip", (H100,), (13, 0), cpu_only=True, editable=source)
    assert finding.outcome is Outcome.FAIL
    assert finding.fix == f"cd '{source}' && USE_CUDA=1 python -m pip install --no-build-isolation -e ."
    assert "--force-reinstall" not in finding.fix
