"""Integration tier: the frameworks other than torch, against the real venvs cached in ~/.cache/pytest-cudadeps
(`pip install 'jax[cuda13]'`, `pip install 'cupy-cuda13x[ctk]'`, plain `pip install cupy-cuda13x`,
`pip install 'tensorflow[and-cuda]'`), intact and broken in a hard-link copy; a venv not cached is skipped.

Each verdict is held against what the framework itself does (its own preload, run in the venv's interpreter), and
each printed fix is run as printed (``pip ...`` through the copy's ``bin/python -m``: a console script of a copy
would run the cached venv's interpreter) and must leave the copy healthy.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import fixloop, venvs

pytestmark = pytest.mark.integration
CHECKOUT = Path(__file__).resolve().parents[2]  # this checkout's plugin, whatever the interpreter has installed

JAX_PRELOAD = """\
import re, jax_plugins.xla_cuda13 as plugin
plugin._load_nvidia_libraries()
print(sorted({m for m in re.findall(r"lib[\\w]+\\.so\\.\\d+", open("/proc/self/maps").read())}))
"""


def cached(name: str) -> Path:
    venv = venvs.CACHE / name
    if not (venv / ".complete").exists():
        pytest.skip(f"{venv} is not cached (see /work/prep/frameworks/scripts/build_venv.sh)")
    return venv


def broken(name: str, tmp_path: Path, *uninstall: str) -> Path:
    venv = venvs.copy_venv(cached(name), tmp_path / "venv")
    result = venvs.pip(venv, "uninstall", "-y", *uninstall)
    assert result.returncode == 0, result.stderr
    return venv


def check(venv: Path, tmp_path: Path, *args: str, env: dict[str, str] | None = None,
          ) -> tuple[int, dict[str, str], list[dict[str, str]]]:
    """(exit status, outcome per item, the causes) of `python -m pytest_cudadeps` on the venv's site-packages, the
    venv activated (so its fixes are bare `pip install`: tests/integration/test_fix_loop.py runs the other case)."""
    report = tmp_path / "report.json"
    result = subprocess.run([sys.executable, "-m", "pytest_cudadeps", f"--cuda-deps-path={venvs.site_packages(venv)}",
                             f"--cuda-deps-json={report}", *args], cwd=tmp_path, capture_output=True, text=True,
                            timeout=600, env={**os.environ, "PYTHONPATH": str(CHECKOUT), "VIRTUAL_ENV": str(venv),
                                              "PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '')}", **(env or {})})
    assert report.exists(), result.stdout[-3000:] + result.stderr[-3000:]
    document = json.loads(report.read_text(encoding="utf-8"))
    return result.returncode, {f["id"]: f["outcome"] for f in document["findings"]}, document["causes"]


def run_fix(venv: Path, fix: str) -> None:
    words = shlex.split(fix)
    assert words[:2] == ["pip", "install"], fix
    result = subprocess.run([str(venv / "bin" / "python"), "-m", *words], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def preloaded(venv: Path) -> str:
    result = subprocess.run([str(venv / "bin" / "python"), "-c", JAX_PRELOAD], capture_output=True, text=True,
                            env={"PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/bin:/bin"}, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_jax_cuda13_intact_is_green_with_items_that_name_jax(tmp_path: Path) -> None:
    venv = cached("jax-cuda13")
    status, found, _ = check(venv, tmp_path)
    assert status == 0
    assert found["lazy[jax>jax_plugins.xla_cuda13>libcudnn.so.9]"] == "pass"
    assert found["requires[jax>nvidia-cudnn-cu13]"] == "pass"
    assert found["framework[jax]"] == "pass"  # `import jax` and its plugin's own preload, in the venv's python
    assert not [name for name in found if name.startswith("requires[nvidia-")]  # no CUDA wheel is a root
    assert "libcudnn.so.9" in preloaded(venv)  # what the plugin's own preload maps


def test_jax_named_with_its_extra_is_that_root(tmp_path: Path) -> None:
    status, found, _ = check(cached("jax-cuda13"), tmp_path, "--cuda-deps-root=jax[cuda13]")
    assert status == 0
    assert not [name for name in found if name.startswith("root[")]
    assert found["requires[jax>nvidia-cudnn-cu13]"] == "pass"


def test_jax_without_cudnn_is_red_naming_jax_and_the_printed_fix_repairs_it(tmp_path: Path) -> None:
    venv = broken("jax-cuda13", tmp_path, "nvidia-cudnn-cu13")
    assert "libcudnn.so.9" not in preloaded(venv)  # jax: `RuntimeError: Unable to load cuDNN. Is it installed?`
    status, found, causes = check(venv, tmp_path)
    assert status == 1
    assert found["lazy[jax>jax_plugins.xla_cuda13>libcudnn.so.9]"] == "fail"
    assert found["framework[jax]"] == "fail"  # jax itself opened no cuDNN: one cause with the static items
    assert [cause["id"] for cause in causes] == ["requires[jax>nvidia-cudnn-cu13]"]
    run_fix(venv, causes[0]["fix"])
    assert check(venv, tmp_path)[0] == 0
    assert "libcudnn.so.9" in preloaded(venv)


def test_jax_without_cublas_is_missing_with_a_runnable_fix(tmp_path: Path) -> None:
    venv = broken("jax-cuda13", tmp_path, "nvidia-cublas")
    status, _, causes = check(venv, tmp_path)
    assert status == 1
    assert [(c["id"], c["fix"]) for c in causes] == [("requires[jax>nvidia-cublas]", "pip install 'nvidia-cublas>=13.0.0.19'")]
    run_fix(venv, causes[0]["fix"])
    assert check(venv, tmp_path)[0] == 0


def test_cupy_with_ctk_is_green_and_nccl_is_optional(tmp_path: Path) -> None:
    status, found, _ = check(cached("cupy-cuda13x"), tmp_path)
    assert status == 0
    assert found["lazy[cupy-cuda13x>cuda.pathfinder>libcublas.so.13]"] == "pass"
    assert found["lazy[cupy-cuda13x>cuda.pathfinder>libnccl.so.2]"] == "skip"  # no extra declares it
    assert found["framework[cupy-cuda13x]"] == "pass"  # cuda.pathfinder found each one, cuFFT included


def test_cupy_without_cublas_is_one_cause_and_cupy_itself_says_so(tmp_path: Path) -> None:
    venv = broken("cupy-cuda13x", tmp_path, "nvidia-cublas")
    status, found, causes = check(venv, tmp_path)
    assert status == 1
    assert found["framework[cupy-cuda13x]"] == "fail"  # `Failure finding "libcublasLt.so.13"`, from CuPy
    assert [c["id"] for c in causes] == ["requires[cupy-cuda13x>nvidia-cublas]"]
    run_fix(venv, causes[0]["fix"])
    assert check(venv, tmp_path)[0] == 0


def test_numba_cuda_compiles_with_its_wheels_nvvm(tmp_path: Path) -> None:
    status, found, _ = check(cached("numba-cuda13"), tmp_path)
    assert status == 0
    # numba.cuda.compile_ptx for sm_75 needs no GPU: NVVM and libdevice really ran
    assert found["framework[numba-cuda]"] == "pass"
    assert found["lazy[numba-cuda>cuda.pathfinder>libnvvm.so.4]"] == "pass"


def test_plain_cupy_is_red_and_installing_its_ctk_extra_repairs_it(tmp_path: Path) -> None:
    venv = venvs.copy_venv(cached("cupy-cuda13x-plain"), tmp_path / "venv")
    status, _, causes = check(venv, tmp_path)
    assert status == 1
    assert [(c["id"], c["fix"]) for c in causes] == [("requires[cupy-cuda13x>cuda-toolkit]",
                                                      "pip install 'cupy-cuda13x[ctk]'")]
    run_fix(venv, causes[0]["fix"])
    assert check(venv, tmp_path)[0] == 0


def test_tensorflow_and_cuda_without_cudnn_is_red_naming_tensorflow(tmp_path: Path) -> None:
    status, found, _ = check(cached("tensorflow-and-cuda"), tmp_path)
    assert status == 0
    assert found["framework[tensorflow]"] == "pass"
    status, found, causes = check(cached("tensorflow-and-cuda-no-cudnn"), tmp_path)
    assert status == 1
    assert found["lazy[tensorflow>tsl.dso_loader>libcudnn.so.9]"] == "fail"
    assert [c["id"] for c in causes] == ["requires[tensorflow>nvidia-cudnn-cu12]"]


def test_bitsandbytes_beside_torch_is_one_item_for_the_binary_it_loads_after_torch(tmp_path: Path) -> None:
    venv = cached("torch-2.14.1-bnb")
    status, found, _ = check(venv, tmp_path, "--cuda-deps-no-probes")
    assert status == 0
    assert [name for name in found if "bitsandbytes" in name] == ["after-torch[bitsandbytes>libbitsandbytes_cuda130.so]"]
    binary = venvs.site_packages(venv) / "bitsandbytes" / "libbitsandbytes_cuda130.so"
    load = f"import ctypes; ctypes.CDLL({str(binary)!r})"
    after = subprocess.run([str(venv / "bin" / "python"), "-c", f"import torch; {load}"], capture_output=True, text=True)
    alone = subprocess.run([str(venv / "bin" / "python"), "-c", load], capture_output=True, text=True)
    assert after.returncode == 0, after.stderr[-2000:]  # what bitsandbytes does: torch first
    assert "libcublas.so.13: cannot open shared object file" in alone.stderr  # why it is not checked alone


def test_jax_plugin_and_pjrt_older_than_jaxlib_are_one_cause_whose_fix_aligns_them(tmp_path: Path) -> None:
    venv = venvs.copy_venv(cached("jax-cuda13-plugin-pjrt-0.9.2"), tmp_path / "venv")  # pip check: clean
    devices = "import warnings, jax; warnings.simplefilter('error'); jax.devices()"
    before = subprocess.run([str(venv / "bin" / "python"), "-c", devices], capture_output=True, text=True)
    assert "is not compatible with the installed jaxlib version 0.10.2" in before.stderr
    status, _, causes = check(venv, tmp_path)
    assert status == 1
    assert [(c["id"], c["fix"]) for c in causes] == [
        ("parts[jax]", "pip install 'jax-cuda13-plugin==0.10.2' 'jax-cuda13-pjrt==0.10.2'")]
    run_fix(venv, causes[0]["fix"])
    assert check(venv, tmp_path)[0] == 0


NVRTC_COMPILE = """\
import ctypes, sys
nvrtc = ctypes.CDLL(sys.argv[1])  # as jax's plugin opens it: by absolute path
program = ctypes.c_void_p()
nvrtc.nvrtcCreateProgram(ctypes.byref(program), b'extern "C" __global__ void k(float *x) { *x = 1; }', b"k.cu", 0,
                         None, None)
sys.exit(nvrtc.nvrtcCompileProgram(program, 1, (ctypes.c_char_p * 1)(b"--gpu-architecture=compute_75")))
"""


def test_torch_and_jax_in_one_venv_nvrtc_beside_its_builtins_is_fixed_by_the_loader_path(tmp_path: Path) -> None:
    """torch 2.14.1 pins nvidia-cuda-nvrtc 13.0.88, whose libnvrtc has no RUNPATH: in jax's process (which opens it by
    absolute path) the first NVRTC compile cannot open libnvrtc-builtins.so.13.0 beside it."""
    venv = cached("torch-2.14.1-jax")  # `pip install 'jax[cuda13]'` into a copy of the torch 2.14.1 venv
    nvrtc = str(venvs.site_packages(venv) / "nvidia/cu13/lib/libnvrtc.so.13")
    clean = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/")}
    compile_ = [str(venv / "bin" / "python"), "-c", NVRTC_COMPILE, nvrtc]
    assert subprocess.run(compile_, env=clean, capture_output=True).returncode != 0  # NVRTC_ERROR_BUILTIN_OPERATION_FAILURE
    status, found, causes = check(venv, tmp_path, env={"LD_LIBRARY_PATH": ""})
    assert status == 1
    assert found["framework[jax]"] == "pass"  # jax opened every library it opens at start
    assert [c["id"] for c in causes] == ["lazy[jax>libnvrtc.so.13>libnvrtc-builtins.so.13.0]"]
    fix = causes[0]["fix"]
    assert fix.startswith("export LD_LIBRARY_PATH=")
    # the fix as printed, in a shell without the venv on PATH; the compile and the next check in that shell
    shell = subprocess.run(["/bin/sh", "-c", f'{fix}; printf %s "$LD_LIBRARY_PATH"'], env=clean, capture_output=True,
                           text=True, check=True)
    fixed = {**clean, "LD_LIBRARY_PATH": shell.stdout}
    assert subprocess.run(compile_, env=fixed, capture_output=True).returncode == 0
    assert check(venv, tmp_path, env={"LD_LIBRARY_PATH": shell.stdout})[0] == 0


@pytest.mark.parametrize(("name", "key"), [("jax-cuda13", "jax"), ("tensorflow-and-cuda", "tensorflow")])
def test_the_device_list_and_the_product_run_for_real_with_the_cpu_in_place_of_the_gpus(name: str, key: str) -> None:
    """The GPU path of the framework child (its devices, the 256x256 product of ones), on the real framework with
    its CPU platform: what runs on a GPU host, but the device."""
    from pytest_cudadeps.probes.child.protocol import FrameworkDevices, FrameworkFacts
    from pytest_cudadeps.probes.framework import probe_framework
    from pytest_cudadeps.tables.frameworks import framework_for

    venv = cached(name)
    framework = framework_for(key)
    assert framework is not None
    run = probe_framework(framework, timeout=300, paths=[str(venvs.site_packages(venv))],
                          executable=str(venv / "bin" / "python"), platform="cpu")
    assert isinstance(run.facts, FrameworkFacts)
    assert isinstance(run.devices, FrameworkDevices), run.devices
    assert run.devices.devices, run.devices
    assert run.devices.computed is True, run.devices


# --- the CUDA 12 builds: jax[cuda12] and cupy-cuda12x[ctk], one folder per component --------------------------------

JAX12_PRELOAD = JAX_PRELOAD.replace("xla_cuda13", "xla_cuda12")
PATHFINDER = "from cuda.pathfinder import load_nvidia_dynamic_lib as load; print(load({name!r}).abs_path)"


def truth(venv: Path, code: str) -> subprocess.CompletedProcess[str]:
    """What the framework's own code does in the venv's interpreter (the referee)."""
    return subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, timeout=300,
                          env={"PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/bin:/bin"})


def fix_loop(venv: Path, tmp_path: Path) -> tuple[int, list[dict[str, str]], int]:
    """(exit status before, its causes, exit status after each cause's fix ran as printed): the venv not activated,
    each fix run by /bin/sh with PATH=/usr/bin:/bin, as tests/support/fixloop.py runs them."""
    env = fixloop.job_env({})
    plugin = {"PYTHONPATH": str(CHECKOUT)}  # this checkout's plugin, for the checks only (not in the fixes' shell)
    before = fixloop.check(venv, {**env, **plugin}, tmp_path)
    assert before.returncode == 0 or before.causes, before.output
    for cause in before.causes:
        status, env, output = fixloop.run_fix(cause["fix"], env, tmp_path)
        assert status == 0, output
    return before.returncode, before.causes, fixloop.check(venv, {**env, **plugin}, tmp_path).returncode


def test_jax_cuda12_intact_is_green_with_items_that_name_jax(tmp_path: Path) -> None:
    venv = cached("jax-cuda12")
    status, found, _ = check(venv, tmp_path)
    assert status == 0
    assert found["lazy[jax>jax_plugins.xla_cuda12>libcudnn.so.9]"] == "pass"
    assert found["lazy[jax>jax_plugins.xla_cuda12>libcublas.so.12]"] == "pass"
    assert found["requires[jax>nvidia-cudnn-cu12]"] == "pass"
    assert found["parts[jax]"] == "pass"
    assert found["cuda-major[jax]"] == "pass"
    assert "libcudnn.so.9" in truth(venv, JAX12_PRELOAD).stdout


def test_jax_cuda12_without_cudnn_is_one_cause_whose_printed_fix_repairs_it(tmp_path: Path) -> None:
    venv = broken("jax-cuda12", tmp_path, "nvidia-cudnn-cu12")
    assert "libcudnn.so.9" not in truth(venv, JAX12_PRELOAD).stdout
    status, causes, after = fix_loop(venv, tmp_path)
    assert status == 1
    assert [c["id"] for c in causes] == ["requires[jax>nvidia-cudnn-cu12]"]
    assert after == 0
    assert "libcudnn.so.9" in truth(venv, JAX12_PRELOAD).stdout


def test_jax_cuda12_with_the_cu13_cudnn_in_place_of_its_own_is_one_cause_that_swaps_it(tmp_path: Path) -> None:
    """`pip install nvidia-cudnn-cu13` after the cu12 one went: the same nvidia/cudnn/lib/libcudnn.so.9, of CUDA 13."""
    venv = broken("jax-cuda12", tmp_path, "nvidia-cudnn-cu12")
    done = venvs.pip(venv, "install", "-q", "--no-deps", "nvidia-cudnn-cu13")
    assert done.returncode == 0, done.stderr[-2000:]
    status, causes, after = fix_loop(venv, tmp_path)
    assert status == 1
    assert [c["id"] for c in causes] == ["cuda-major[jax]"]
    assert "uninstall -y 'nvidia-cudnn-cu13' && " in causes[0]["fix"]
    assert after == 0
    assert venvs.pip(venv, "show", "nvidia-cudnn-cu12").returncode == 0


def test_cupy_cuda12x_intact_is_green_and_without_cublas_one_cause_whose_fix_repairs_it(tmp_path: Path) -> None:
    status, found, _ = check(cached("cupy-cuda12x"), tmp_path)
    assert status == 0
    assert found["lazy[cupy-cuda12x>cuda.pathfinder>libcublas.so.12]"] == "pass"
    assert found["requires[cupy-cuda12x>cuda-toolkit]"] == "pass"
    assert found["lazy[cupy-cuda12x>cuda.pathfinder>libnccl.so.2]"] == "skip"  # no extra declares it
    venv = broken("cupy-cuda12x", tmp_path, "nvidia-cublas-cu12")
    assert truth(venv, PATHFINDER.format(name="cublas")).returncode != 0  # DynamicLibNotFoundError
    status, causes, after = fix_loop(venv, tmp_path)
    assert status == 1
    assert [c["id"] for c in causes] == ["requires[cupy-cuda12x>nvidia-cublas-cu12]"]
    assert after == 0
    assert "nvidia/cublas/lib/libcublas.so.12" in truth(venv, PATHFINDER.format(name="cublas")).stdout


def test_a_cu13_wheel_beside_cupy_cuda12x_is_taken_by_cuda_pathfinder_and_one_cause_uninstalls_it(
        tmp_path: Path) -> None:
    """nvidia-cusparse 12.9.4.2 (CUDA 13) ships nvidia/cu13/lib/libcusparse.so.12, which cuda.pathfinder tries first."""
    venv = venvs.copy_venv(cached("cupy-cuda12x"), tmp_path / "venv")
    done = venvs.pip(venv, "install", "-q", "--no-deps", "nvidia-cusparse")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "nvidia/cu13/lib/libcusparse.so.12" in truth(venv, PATHFINDER.format(name="cusparse")).stdout
    status, causes, after = fix_loop(venv, tmp_path)
    assert status == 1
    assert [c["id"] for c in causes] == ["cuda-major[cupy-cuda12x]"]
    assert after == 0
    assert "nvidia/cusparse/lib/libcusparse.so.12" in truth(venv, PATHFINDER.format(name="cusparse")).stdout


LIBDEVICE = "from numba.cuda.cudadrv.libs import get_libdevice; print(get_libdevice())"


def libdevice_item(venv: Path, tmp_path: Path) -> str:
    """The path the file[numba-cuda>libdevice.10.bc] item names (the CLI's JSON report), "None" when it fails (as
    numba's get_libdevice() prints when it finds none)."""
    check(venv, tmp_path)
    document = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    item = next(f for f in document["findings"] if f["id"] == "file[numba-cuda>libdevice.10.bc]")
    if item["outcome"] == "fail":
        return "None"
    return str(item["message"]).split(" -> ", 1)[1].split(" (found by", 1)[0]


def test_numba_cuda_libdevice_is_the_one_numba_takes_and_nvvm_missing_is_one_cause_whose_fix_repairs_it(
        tmp_path: Path) -> None:
    intact = cached("numba-cuda13")
    assert libdevice_item(intact, tmp_path) == truth(intact, LIBDEVICE).stdout.strip()  # numba's own answer
    venv = venvs.copy_venv(cached("numba-cuda13-no-nvvm"), tmp_path / "venv")  # pip uninstall nvidia-nvvm
    assert libdevice_item(venv, tmp_path) == truth(venv, LIBDEVICE).stdout.strip()  # elsewhere, or the item fails
    status, causes, after = fix_loop(venv, tmp_path)
    assert status == 1
    assert [c["id"] for c in causes] == ["requires[numba-cuda>nvidia-nvvm]"]
    assert after == 0
    wheel = str(venvs.site_packages(venv) / "nvidia/cu13/nvvm/libdevice/libdevice.10.bc")
    assert libdevice_item(venv, tmp_path) == wheel == truth(venv, LIBDEVICE).stdout.strip()
