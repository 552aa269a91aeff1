"""The cuda-major[torch] item: torch is a CUDA build, and no wheel of another CUDA major sits beside it (trees of
real METADATA, through the declared-dependency check)."""

from __future__ import annotations

from pathlib import Path

from pytest_cudadeps.checks.findings import Outcome
from tests.support import sitebuilder as sb
from tests.support.declared import failures, run


def test_cu12_wheels_beside_a_cu13_torch(tmp_path: Path) -> None:
    site = sb.torch_2_14_1(tmp_path / "site", extra=[sb.Dist("nvidia-nccl-cu12", "2.26.2")])
    found = run(site)
    assert set(failures(found)) == {"cuda-major[torch]"}
    major = found["cuda-major[torch]"]
    assert major.message == ("torch 2.14.1 is a CUDA 13.0 build, but CUDA 12 wheels are installed beside it: "
                             "nvidia-nccl-cu12 2.26.2 (CUDA 12)")
    assert major.details[0].startswith(f"read from {site / 'torch' / 'version.py'}")
    assert major.fix == "pip uninstall -y 'nvidia-nccl-cu12'"  # it shares no file with a cu13 wheel: nothing to put back


def test_a_cu12_wheel_that_overwrote_a_cu13_one_is_uninstalled_and_the_cu13_one_put_back(tmp_path: Path) -> None:
    """nvidia-nccl-cu12 and nvidia-nccl-cu13 both list nvidia/nccl/lib/libnccl.so.2: uninstalling the cu12 one
    deletes the file, so the cu13 one is reinstalled without its dependencies (measured to repair the real venv)."""
    site = sb.torch_2_14_1(tmp_path / "site", extra=[sb.Dist("nvidia-nccl-cu12", "2.32.3")])
    shared = site / "nvidia" / "nccl" / "lib" / "libnccl.so.2"
    shared.parent.mkdir(parents=True, exist_ok=True)
    shared.write_bytes(b"\x7fELF")
    sb.add_to_record(site, "nvidia_nccl_cu13", [shared])
    sb.add_to_record(site, "nvidia_nccl_cu12", [shared])
    major = run(site)["cuda-major[torch]"]
    assert major.fix == ("pip uninstall -y 'nvidia-nccl-cu12' && "
                         "pip install --force-reinstall --no-deps 'nvidia-nccl-cu13==2.30.7'")
    assert "overwritten: libnccl.so.2 of nvidia-nccl-cu13 2.30.7" in major.details


def test_a_cu13_runtime_beside_a_cu12_torch(tmp_path: Path) -> None:
    site = sb.torch_cu12(tmp_path / "site", "2.7.1-x86_64")
    sb.write_dist(site, sb.Dist("nvidia-cuda-runtime", "13.0.96"))
    major = run(site)["cuda-major[torch]"]
    assert major.outcome is Outcome.FAIL
    assert major.message.startswith("torch 2.7.1 is a CUDA 12.6 build, but CUDA 13 wheels are installed beside it: "
                                    "nvidia-cuda-runtime 13.0.96 (CUDA 13)")


def test_cpu_torch_is_a_skip(tmp_path: Path) -> None:
    site = sb.torch_cpu(tmp_path / "site")
    found = run(site)
    cpu = found["cuda-major[torch]"]
    assert cpu.outcome is Outcome.SKIP
    assert "torch 2.13.0+cpu is a CPU-only build" in cpu.message
    assert failures(found) == {}


def test_torch_without_version_py_fails_the_build_check(tmp_path: Path) -> None:
    site = sb.torch_2_14_1(tmp_path / "site")
    (site / "torch" / "version.py").unlink()
    major = run(site)["cuda-major[torch]"]
    assert major.outcome is Outcome.FAIL
    version_py = site / "torch" / "version.py"
    assert major.message == f"cannot tell which CUDA torch 2.14.1 was built for: {version_py} is missing"


def test_a_cu12_wheel_in_place_of_the_cu13_one_jax_requires_is_one_cause_that_swaps_it(tmp_path: Path, gcc: str) -> None:
    """jax[cuda13] with nvidia-cudnn-cu13 swapped for nvidia-cudnn-cu12 (same nvidia/cudnn/lib/libcudnn.so.9): the
    framework root's cuda-major item fails, and its fix uninstalls the cu12 wheel and installs the required one,
    which explains the missing wheel's requires item and the plugin's lazy item (one cause)."""
    from pytest_cudadeps.checks.static import static_findings
    from pytest_cudadeps.core.settings import Settings
    from pytest_cudadeps.engine.snapshot import take_snapshot
    from pytest_cudadeps.report.causes import Causes
    from tests.support.jax import jax_tree
    from tests.support.onnxruntime import lib

    intact = run(jax_tree(tmp_path / "intact", gcc))["cuda-major[jax]"]
    assert intact.outcome is Outcome.PASS
    site = jax_tree(tmp_path / "swapped", gcc, omit=("nvidia-cudnn-cu13",))
    sb.write_dist(site, sb.Dist("nvidia-cudnn-cu12", "9.28.0.42"))
    sb.add_to_record(site, "nvidia_cudnn_cu12", [lib(gcc, site / "nvidia/cudnn/lib/libcudnn.so.9")])
    major = run(site)["cuda-major[jax]"]
    assert major.fix == "pip uninstall -y 'nvidia-cudnn-cu12' && pip install 'nvidia-cudnn-cu13<10.0,>=9.12.0.46'"
    assert "in place of: nvidia-cudnn-cu13 (required, not installed)" in major.details
    snapshot = take_snapshot(Settings(paths=(str(site),), no_ld_cache=True))
    static = static_findings(snapshot)
    causes = Causes(snapshot, static)
    failing = [f for f in static if f.outcome is Outcome.FAIL]
    assert {f.name for f in failing} >= {"cuda-major[jax]", "requires[jax>nvidia-cudnn-cu13]"}
    assert {cause.id for f in failing if (cause := causes.cause_of(f))} == {"cuda-major[jax]"}
