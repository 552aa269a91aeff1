"""Integration tier: the plugin against a real torch 2.14.1 (CUDA 13) venv and a real CPU torch venv.

Each scenario is a hard-link copy of the cached venv, broken the way users break theirs
(``pip uninstall`` of one wheel, metadata of another build).  Run with ``--integration``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import venvs
from tests.support.fakes import fake_driver, fake_host

pytestmark = pytest.mark.integration

SYSTEM_CUDART = Path("/usr/local/cuda-13.0/lib/libcudart.so.13")


def outcomes(output: str) -> dict[str, str]:
    """Item name -> PASSED/FAILED/SKIPPED from ``-rA`` short summary lines."""
    found = {}
    for match in re.finditer(r"^(PASSED|FAILED|SKIPPED|ERROR) (?:\[\d+\] )?cudadeps::([^\s:]+)", output, re.M):
        found[match.group(2)] = match.group(1)
    return found


def failure_text(output: str, name: str) -> str:
    """The lines pytest printed for one failed item, between its header and the next."""
    match = re.search(rf"_+ cudadeps::{re.escape(name)} _+\n(.*?)(?=\n_{{3,}} |\n=+ )", output, re.S)
    assert match, f"no failure section for {name} in:\n{output[-3000:]}"
    return match.group(1)


def run(site: Path, tmp_path: Path, *args: str) -> tuple[int, str]:
    result = venvs.run_plugin(site, "-rA", *args, cwd=tmp_path)
    return result.returncode, result.stdout + result.stderr


# nvidia-cusparselt-cu13 0.8.1 ships libcusparseLt.so.0 with DT_RUNPATH `$ORIGIN:`: the trailing empty entry
# makes ld.so look for its librt.so.1 & co. in the working directory (LD_DEBUG=libs shows `trying file=librt.so.1`)
CUSPARSELT_RUNPATH = "libcusparseLt.so.0 (of nvidia-cusparselt-cu13 0.8.1): DT_RUNPATH entry '': an empty entry"


def test_intact_venv_passes_every_check_and_notes_cusparselts_runpath(cuda_venv: Path, tmp_path: Path) -> None:
    code, out = run(venvs.site_packages(cuda_venv), tmp_path)
    got = outcomes(out)
    assert [k for k, v in got.items() if v == "FAILED"] == [], out[-3000:]
    assert code == 0
    # the wheel ships DT_RUNPATH '$ORIGIN:' (the working directory too): a note in the summary, not a failure and
    # not a warning (a healthy run ends with none); -v shows the whole note with its hardening
    assert got["security[rpath]"] == "PASSED"
    assert "warning" not in out.splitlines()[-1]
    assert "note: security[rpath]: 1 entry as shipped by nvidia-cusparselt-cu13 0.8.1" in out
    assert CUSPARSELT_RUNPATH in run(venvs.site_packages(cuda_venv), tmp_path, "-v", "-k", "rpath")[1]
    assert got["requires[torch>nvidia-cuda-runtime]"] == "PASSED"
    assert got["cuda-major[torch]"] == "PASSED"
    # every CUDA soname resolves into the wheel that owns it (only the driver's libcuda is absent here)
    linkage = {k: v for k, v in got.items() if k.startswith("linkage[")}
    assert len(linkage) >= 15
    assert {k for k, v in linkage.items() if v != "PASSED"} <= {"linkage[torch>libcuda.so.1]"}
    # the libraries opened by name at run time load too, in the torch child, from the predicted files
    assert got["load[libcudnn_cnn.so.9]"] == "PASSED"
    assert got["load[libnvrtc-builtins.so.13.0]"] == "PASSED"


def test_intact_venv_verbose_answers_which_library_torch_loads(cuda_venv: Path, tmp_path: Path) -> None:
    site = venvs.site_packages(cuda_venv)
    code, out = run(site, tmp_path, "-vv", "-k", "libcublas.so")
    assert code == 0
    assert re.search(rf"linkage\[torch>libcublas.so.13\](?: <- \S+)? PASSED  libcublas.so.13 -> {re.escape(str(site))}"
                     r"/nvidia/cu13/lib/libcublas.so.13 \(nvidia-cublas 13\.1\.1\.3, "
                     r"via the preload in torch/__init__\.py \(_load_global_deps\(\)\)\)",
                     out), out


def test_cuda_runtime_uninstalled(scenario: Callable[..., Path], tmp_path: Path) -> None:
    venv = scenario("nvidia-cuda-runtime")
    site = venvs.site_packages(venv)
    # pip check does not follow cuda-toolkit[cudart]: it sees nothing wrong
    check = venvs.pip(venv, "check")
    assert check.returncode == 0
    assert "No broken requirements found." in check.stdout
    code, out = run(site, tmp_path, "-vv")
    assert code == 1
    text = failure_text(out, "requires[torch>nvidia-cuda-runtime]")
    assert text.splitlines()[0] == "nvidia-cuda-runtime is not installed"
    assert "required by: torch 2.14.1 > cuda-toolkit[cudart] 13.0.3.0 > nvidia-cuda-runtime==13.0.96.*" in text
    assert "fix: pip install 'nvidia-cuda-runtime==13.0.96.*'" in text
    assert "Traceback" not in out
    if SYSTEM_CUDART.exists():  # this machine's system CUDA is in ld.so.cache: the import works by accident
        linkage = failure_text(out, "linkage[torch>libcudart.so.13]")
        assert f"resolves to {SYSTEM_CUDART} (via ld.so.cache, owned by no installed distribution)" in linkage
        assert "nvidia-cuda-runtime (not installed)" in linkage
    # a clean container sees no cache: the loader cannot find libcudart at all
    code, out = run(site, tmp_path, "--cuda-deps-no-ld-cache", "-vv")
    linkage = failure_text(out, "linkage[torch>libcudart.so.13]")
    assert linkage.startswith("libcudart.so.13 is not found: loading torch fails with "
                              "`OSError: libcudart.so.13: cannot open shared object file")
    assert "declared: torch 2.14.1 > cuda-toolkit[cudart] 13.0.3.0 > nvidia-cuda-runtime==13.0.96.*" in linkage
    assert "  root cause: requires[torch>nvidia-cuda-runtime]\n" in linkage
    # by default: the missing wheel is the one root cause, printed once; the linkage and load items are counted
    # as its consequences (-v lists them, -vv prints each whole)
    code, out = run(site, tmp_path, "--cuda-deps-no-ld-cache")
    assert code == 1
    assert [k for k, v in outcomes(out).items() if v == "FAILED"] == ["requires[torch>nvidia-cuda-runtime]"]
    counted = re.search(r" 1 failed, .*\b(\d+) consequences? in ", out.splitlines()[-1])
    assert counted is not None, out.splitlines()[-1]
    assert int(counted.group(1)) >= 2
    assert out.splitlines()[-3:-1] == [
        f"[1] requires[torch>nvidia-cuda-runtime]: {int(counted.group(1)) + 1} failed checks: nvidia-cuda-runtime is "
        "not installed",
        "    fix: pip install 'nvidia-cuda-runtime==13.0.96.*'",
    ]


def test_cuda_toolkit_uninstalled(scenario: Callable[..., Path], tmp_path: Path) -> None:
    venv = scenario("cuda-toolkit")
    code, out = run(venvs.site_packages(venv), tmp_path)
    got = outcomes(out)
    assert code == 1
    assert [k for k, v in got.items() if v == "FAILED"] == ["requires[torch>cuda-toolkit]"]
    text = failure_text(out, "requires[torch>cuda-toolkit]")
    assert "fix: pip install 'cuda-toolkit[cublas,cudart,cufft,cufile,cupti,curand,cusolver,cusparse,nvjitlink,nvrtc,nvtx]==13.0.3'" in text
    assert got["linkage[torch>libcudart.so.13]"] == "PASSED"


def test_cublas_uninstalled(scenario: Callable[..., Path], tmp_path: Path) -> None:
    venv = scenario("nvidia-cublas")
    code, out = run(venvs.site_packages(venv), tmp_path, "-vv")
    assert code == 1
    assert failure_text(out, "requires[torch>nvidia-cublas]").startswith("nvidia-cublas is not installed")
    linkage = failure_text(out, "linkage[torch>libcublas.so.13]")
    assert "cannot open shared object file" in linkage
    # torch's preload opens it by name first: the walk predicts the import's own error
    assert "loading torch fails with `OSError: libcublas.so.13: cannot open shared object file" in linkage
    assert "root cause: requires[torch>nvidia-cublas]" in linkage


def test_nvjitlink_uninstalled_names_cusparse(scenario: Callable[..., Path], tmp_path: Path) -> None:
    venv = scenario("nvidia-nvjitlink")
    code, out = run(venvs.site_packages(venv), tmp_path, "-vv")
    assert code == 1
    linkage = failure_text(out, "linkage[torch>libnvJitLink.so.13]")
    assert linkage.startswith("libnvJitLink.so.13 is not found")
    assert "needed by: nvidia/cu13/lib/libcusparse.so.12" in linkage


def test_metadata_without_cuda_requirements(scenario: Callable[..., Path], tmp_path: Path) -> None:
    """The metadata lies (another platform's): only the ELF files tell that torch needs libcudart."""
    venv = scenario("nvidia-cuda-runtime")
    site = venvs.site_packages(venv)
    metadata = site / "torch-2.14.1.dist-info" / "METADATA"
    lines = metadata.read_text().splitlines(keepends=True)
    venvs.replace_file(metadata, "".join(line for line in lines
                                         if not re.match(r"Requires-Dist: (nvidia-|cuda-)", line)))
    code, out = run(site, tmp_path, "--cuda-deps-no-ld-cache", "-vv")
    assert code == 1
    assert "requires[torch>nvidia-cuda-runtime]" not in outcomes(out)  # the metadata no longer asks for it
    text = failure_text(out, "linkage[torch>libcudart.so.13]")
    assert "no requirement of torch 2.14.1 declares a distribution that provides it" in text
    assert "(for CUDA 13.0 it comes from nvidia-cuda-runtime)" in text
    assert "fix: pip install 'cuda-toolkit[cudart]==13.0.*'" in text
    # the cached venv was not touched
    assert "cuda-toolkit" in (venvs.base_venv(venvs.CUDA_TORCH) / metadata.relative_to(venv)).read_text()


def test_cpu_torch_skips_with_the_cpu_reason(cpu_venv: Path, tmp_path: Path) -> None:
    code, out = run(venvs.site_packages(cpu_venv), tmp_path)
    assert code == 0, out[-3000:]
    assert "SKIPPED [1] cudadeps::cuda-major[torch]: torch 2.13.0+cpu is a CPU-only build" in out
    assert not [k for k in outcomes(out) if k.startswith("linkage[")]


def h100_host(gcc: str, tmp_path: Path) -> tuple[Path, Path, Path]:
    """(a fake driver 580.65.06 with one H100, the host it belongs to, an empty working folder)."""
    if os.geteuid() != 0:
        pytest.skip("the fake host's device nodes need root (os.mknod)")
    driver = fake_driver(gcc, tmp_path / "driver", driver="580.65.06", cuda=13000,
                         gpus=(("NVIDIA H100 80GB HBM3", 9, 0, 80, 0),))
    host = fake_host(tmp_path / "host", driver="580.65.06", gpus=1)
    work = tmp_path / "work"
    work.mkdir()
    return driver, host, work


def test_cpu_torch_on_a_gpu_host_fails_naming_the_gpu_and_the_cuda_build_to_install(
        cpu_venv: Path, tmp_path: Path, gcc: str) -> None:
    """The most common 'why is my GPU idle': a CPU wheel where NVML reports an H100 with driver 580.65.06."""
    driver, host, work = h100_host(gcc, tmp_path)
    result = venvs.run_plugin(venvs.site_packages(cpu_venv), "-rA", f"--cuda-deps-host-root={host}", cwd=work,
                              env={"LD_LIBRARY_PATH": str(driver)})
    out = result.stdout + result.stderr
    assert result.returncode == 1, out[-3000:]
    assert [k for k, v in outcomes(out).items() if v == "FAILED"] == ["host[torch-build]"]
    text = failure_text(out, "host[torch-build]")
    assert text.splitlines()[0] == ("torch 2.13.0+cpu cannot use the NVIDIA H100 80GB HBM3 of this host: "
                                    "it is a CPU-only build")
    assert "fix: pip install --force-reinstall 'torch==2.13.0' --index-url https://download.pytorch.org/whl/cu130" in text


def test_plugin_installed_into_the_venv_runs_the_main_job(scenario: Callable[..., Path], tmp_path: Path) -> None:
    """The README's main job: pip install the plugin into the environment, then pytest --cuda-deps-only."""
    venv = scenario()
    repo = Path(__file__).resolve().parents[2]
    install = venvs.pip(venv, "install", "-q", str(repo))  # isolated: the build fetches setuptools>=77
    assert install.returncode == 0, install.stderr[-3000:]
    work = tmp_path / "work"
    work.mkdir()
    result = subprocess.run([str(venv / "bin" / "python"), "-m", "pytest", "--cuda-deps-only", "-p", "no:cacheprovider"],
                            cwd=work, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
    assert re.search(r"\d+ passed, \d+ skipped in", result.stdout)  # cusparseLt's `$ORIGIN:` is a note (see above)
    assert " failed" not in result.stdout
    assert sys.executable not in result.stdout  # it ran in the venv, not in this interpreter


def test_a_preloaded_fake_cudart_is_predicted_as_the_import_fails(cuda_venv: Path, tmp_path: Path) -> None:
    """FACTS e4: LD_PRELOAD of a libcudart.so.13 with the soname and version node but no CUDA symbols."""
    fake = tmp_path / "fake" / "libcudart.so.13"
    fake.parent.mkdir()
    (fake.parent / "v.map").write_text("libcudart.so.13 { global: unrelated; local: *; };\n")
    (fake.parent / "x.c").write_text("int unrelated(void) { return 1; }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(fake), str(fake.parent / "x.c"), "-Wl,-soname,libcudart.so.13",
                    f"-Wl,--version-script,{fake.parent / 'v.map'}"], check=True)
    site = venvs.site_packages(cuda_venv)
    result = venvs.run_plugin(site, "-rA", "-k", "libcudart or torch-global-deps", cwd=tmp_path,
                              env={"LD_PRELOAD": str(fake)})
    out = result.stdout + result.stderr
    assert result.returncode == 1
    linkage = failure_text(out, "linkage[torch>libcudart.so.13]")
    assert linkage.startswith(f"libcudart.so.13 resolves to {fake} (via LD_PRELOAD, owned by no installed distribution)")
    assert re.search(r"undefined symbol: cudaGetDeviceCount, version libcudart\.so\.13 \(needed by torch/lib/libtorch_\w+\.so\)"
                     r"|undefined symbol: \w+, version libcudart\.so\.13", linkage)
    assert f"fix: remove {fake} from LD_PRELOAD" in linkage
    # the real import fails the same way
    real = subprocess.run([str(cuda_venv / "bin" / "python"), "-c", "import torch"], capture_output=True, text=True,
                          env={**os.environ, "LD_PRELOAD": str(fake)}, timeout=300)
    assert real.returncode != 0
    assert "version libcudart.so.13" in real.stderr
    assert "undefined symbol" in real.stderr


def test_torchvision_built_for_another_torch_fails_with_the_loader_symbol(
        scenario: Callable[..., Path], tmp_path: Path) -> None:
    venv = scenario()
    installed = venvs.pip(venv, "install", "--no-deps", "-q", "torchvision==0.28.0")  # built for torch 2.13.0
    assert installed.returncode == 0, installed.stderr
    site = venvs.site_packages(venv)
    code, out = run(site, tmp_path, "--cuda-deps-no-probes", "-k", "companion")
    got = outcomes(out)
    assert code == 1
    # the pin explains the symbols: one cause, its head printed, the symbols counted as its consequence
    assert got == {"companion[torchvision>build]": "PASSED", "companion[torchvision>torch-pin]": "FAILED"}
    assert "1 consequence" in out.splitlines()[-1]
    pin = failure_text(out, "companion[torchvision>torch-pin]")
    assert "torchvision 0.28.0 requires torch==2.13.0, but torch 2.14.1 is installed" in pin
    assert "fix: pip install 'torchvision==0.29.*'" in pin
    # the very text the loader prints when torch is imported first (measured in this venv)
    symbol = "_ZN3c104cuda29c10_cuda_check_implementationEiPKcS2_jb"
    code, vv = run(site, tmp_path, "--cuda-deps-no-probes", "-k", "companion", "-vv")
    assert f"`{site}/torchvision/_C.so: undefined symbol: {symbol}`" in failure_text(
        vv, "companion[torchvision>symbols]")
    # and in the torch child, where it is imported beside torch, it fails as the user's job would
    code, out = run(site, tmp_path, "-k", "companion", "-vv")
    assert outcomes(out)["companion[torchvision>import]"] == "FAILED"
    text = failure_text(out, "companion[torchvision>import]")
    assert text.startswith("import torchvision fails beside torch: RuntimeError: operator torchvision::nms does not exist")


def test_torchvision_built_for_this_torch_passes(scenario: Callable[..., Path], tmp_path: Path) -> None:
    venv = scenario()
    installed = venvs.pip(venv, "install", "--no-deps", "-q", "torchvision==0.29.1")
    assert installed.returncode == 0, installed.stderr
    site = venvs.site_packages(venv)
    # installed with --no-deps: numpy and pillow, which torchvision imports at once, are missing: one command
    code, out = run(site, tmp_path, "-k", "companion")
    text = failure_text(out, "companion[torchvision>import]")
    assert text.startswith("import torchvision fails beside torch: ModuleNotFoundError: No module named 'numpy'")
    fix = text.splitlines()[-1].removeprefix("  fix: ")
    assert fix == "pip install 'numpy' 'pillow!=8.3.*,>=5.3.0'"
    assert venvs.pip(venv, "install", "-q", *shlex.split(fix)[2:]).returncode == 0  # the fix, as pasted
    code, out = run(site, tmp_path, "-k", "companion", "-vv")
    assert code == 0, out[-3000:]
    assert outcomes(out) == dict.fromkeys(("companion[torchvision>build]", "companion[torchvision>import]",
                                           "companion[torchvision>symbols]", "companion[torchvision>torch-pin]"),
                                          "PASSED")
    assert "symbols that torchvision 0.29.1's 2 extension(s) import from it" in out


def test_a_missing_cudnn_sub_library_fails_its_lazy_item(scenario: Callable[..., Path], tmp_path: Path) -> None:
    venv = scenario()
    site = venvs.site_packages(venv)
    (site / "nvidia/cudnn/lib/libcudnn_cnn.so.9").unlink()  # a hard link: the cached venv keeps its copy
    code, out = run(site, tmp_path, "--cuda-deps-no-probes", "-k", "lazy")
    got = outcomes(out)
    assert code == 1
    assert {k for k, v in got.items() if v == "FAILED"} == {"lazy[torch>libcudnn.so.9>libcudnn_cnn.so.9]"}
    assert len(got) >= 17  # cuDNN's nine, nvrtc's builtins, and what cuDNN, cuBLASLt, cuFFT, cuSPARSELt open
    text = failure_text(out, "lazy[torch>libcudnn.so.9>libcudnn_cnn.so.9]")
    assert ("`Unable to load any of {libcudnn_cnn.so.9.24.0, libcudnn_cnn.so.9.24, libcudnn_cnn.so.9, "
            "libcudnn_cnn.so}`") in text
    assert "fix: pip install --force-reinstall --no-deps 'nvidia-cudnn-cu13==9.24.0.43'" in text


def test_torch_without_its_wheels_is_one_root_cause_in_at_most_150_lines(
        scenario: Callable[..., Path], cuda_venv: Path, tmp_path: Path) -> None:
    """The seed's state (astral-sh/uv#14237: torch installed with --no-deps): every nvidia-*/cuda-* distribution
    uninstalled. The whole default output fits in 150 lines and ends with the one cause and its one fix."""
    wheels = sorted(re.sub(r"-[^-]+\.dist-info$", "", meta.name).replace("_", "-")
                    for meta in venvs.site_packages(cuda_venv).glob("*.dist-info")
                    if meta.name.startswith(("nvidia_", "cuda_")))
    assert len(wheels) >= 15, wheels
    venv = scenario(*wheels)
    result = venvs.run_plugin(venvs.site_packages(venv), cwd=tmp_path)  # the default output: no -r, no -v
    lines = result.stdout.splitlines()
    assert result.returncode == 1, result.stdout[-3000:]
    assert len(lines) <= 150, len(lines)
    shown = re.search(r"= (\d+) failed, .* (\d+) consequences", lines[-1])
    assert shown, lines[-1]
    failed = int(shown.group(1)) + int(shown.group(2))  # the cause's head, and the checks that follow from it
    assert failed >= 30
    verdict = lines.index(f"cudadeps: {failed} failed checks from 1 root cause")
    assert lines[verdict + 1].startswith(f"[1] missing[torch]: {failed} failed checks: torch 2.14.1 is installed "
                                         f"without ")
    fix = lines[-2]
    assert fix.startswith("    fix: pip install 'cuda-bindings"), fix
    for wanted in ("'nvidia-cudnn-cu13==9.24.0.43'", "'nvidia-nccl-cu13==2.30.7'", "cuda-toolkit[cublas,cudart,"):
        assert wanted in fix
    assert "Traceback" not in result.stdout


def test_reports_drift_and_the_command_on_an_intact_venv_and_a_broken_copy(
        scenario: Callable[..., Path], cuda_venv: Path, tmp_path: Path) -> None:
    """The JSON of real runs (with the probes, under -n 2) against the schema; the exit statuses of
    python -m pytest_cudadeps; what compare and --cuda-deps-compare say between the two."""
    import jsonschema

    from pytest_cudadeps.report.document import schema

    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    result = venvs.run_plugin(venvs.site_packages(cuda_venv), "-n", "2", f"--cuda-deps-json={good}", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    good_report = json.loads(good.read_text())
    jsonschema.validate(good_report, schema())
    assert good_report["verdict"] == "healthy"
    assert any(f["id"].startswith("load[") for f in good_report["findings"])  # the workers' probe findings came back
    site = venvs.site_packages(scenario("nvidia-nccl-cu13"))
    command = [sys.executable, "-m", "pytest_cudadeps", f"--cuda-deps-path={site}"]
    broken = subprocess.run([*command, f"--cuda-deps-json={bad}"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=600)
    assert broken.returncode == 1, broken.stdout[-3000:]
    first = broken.stdout.splitlines()[0]
    assert re.fullmatch(r"cudadeps: \d+ failed checks from 1 root cause: requires\[torch>nvidia-nccl-cu13\]", first), first
    jsonschema.validate(json.loads(bad.read_text()), schema())
    fleet = subprocess.run([sys.executable, "-m", "pytest_cudadeps", "compare", str(good), str(bad)], cwd=tmp_path,
                           capture_output=True, text=True, timeout=60)
    assert fleet.returncode == 1
    assert f"dist:nvidia-nccl-cu13\n  (absent): 1 host: {bad}\n  2.30.7: 1 host: {good}\n" in fleet.stdout
    assert (f"lib:libnccl.so.2\n  not found (no owner): 1 host: {bad}\n"
            f"  site-packages/nvidia/nccl/lib/libnccl.so.2 (nvidia-nccl-cu13 2.30.7): 1 host: {good}\n") in fleet.stdout
    assert "dist:torch" not in fleet.stdout  # the venvs live in other folders: paths are compared relative to them
    drift = subprocess.run([*command, f"--cuda-deps-compare={good}", "-k", "drift", "-v"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=600)
    assert drift.returncode == 1
    # -v lists every item (the library's drift follows from the missing wheel: a consequence of its cause)
    assert "\n  drift[dist:nvidia-nccl-cu13]: failed" in drift.stdout
    assert "\n  drift[lib:libnccl.so.2]: failed" in drift.stdout


def test_triton_ptxas_knows_the_architecture_of_the_gpu_the_driver_reports(
        cuda_venv: Path, tmp_path: Path, gcc: str) -> None:
    """triton[ptxas-arch] asks the driver child for the GPUs, then the bundled ptxas for their architecture."""
    driver, host, work = h100_host(gcc, tmp_path)
    result = venvs.run_plugin(venvs.site_packages(cuda_venv), "-rA", "-v", f"--cuda-deps-host-root={host}",
                              "-k", "ptxas-arch", cwd=work, env={"LD_LIBRARY_PATH": str(driver)})
    out = result.stdout + result.stderr
    assert outcomes(out) == {"triton[ptxas-arch]": "PASSED"}, out[-3000:]
    assert "sm_90a" in out
