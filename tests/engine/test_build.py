"""Which CUDA a root was built for (torch/version.py), and the CUDA major a wheel's name or version says."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_cudadeps.engine.build import Build, cuda_major_of, read_build
from pytest_cudadeps.engine.distributions import Environment, scan
from tests.support import sitebuilder as sb


def torch_of(site: Path) -> tuple[Environment, Build | str]:
    env = scan([site])
    torch = env.get("torch")
    assert torch is not None
    return env, read_build(env, torch)


def test_a_cuda_and_a_cpu_build(tmp_path: Path) -> None:
    site = sb.torch_2_14_1(tmp_path / "cuda")
    _, build = torch_of(site)
    assert isinstance(build, Build)
    assert (build.cuda, build.cuda_major, build.version_file) == ("13.0", 13, site / "torch" / "version.py")
    _, cpu = torch_of(sb.torch_cpu(tmp_path / "cpu"))
    assert isinstance(cpu, Build)
    assert (cpu.cuda, cpu.cuda_major) == (None, None)


def test_what_cannot_be_read_is_said_in_words(tmp_path: Path) -> None:
    site = sb.torch_2_14_1(tmp_path / "site")
    version_py = site / "torch" / "version.py"
    version_py.write_text("__version__ = '2.14.1'\ncuda = '13'\n")
    assert torch_of(site)[1] == f"{version_py} has cuda = '13', not a CUDA version such as '13.0'"
    version_py.write_text("__version__ = '2.14.1'\n")
    assert torch_of(site)[1] == f"{version_py} has no `cuda = ...` line"
    version_py.unlink()
    assert torch_of(site)[1] == f"{version_py} is missing"
    env = scan([site])
    filelock = env.get("filelock")
    assert filelock is not None
    assert read_build(env, filelock) == f"filelock 4.2.11 has no package folder {site / 'filelock'}"


@pytest.mark.parametrize(("name", "version", "major"), [
    ("nvidia-nccl-cu12", "2.26.2", 12),  # the name says it
    ("nvidia-cudnn-cu13", "9.24.0.43", 13),
    ("nvidia-cuda-runtime", "13.0.96", 13),  # the version is CUDA's
    ("cuda-toolkit", "12.9.1", 12),
    ("nvidia-cublas", "13.1.1.3", None),  # its version is cuBLAS's own, not the toolkit's
    ("filelock", "4.2.11", None),
])
def test_cuda_major_of_a_wheel(tmp_path: Path, name: str, version: str, major: int | None) -> None:
    dist = scan([sb.build(tmp_path / "site", [sb.Dist(name, version)])]).get(name)
    assert dist is not None
    assert cuda_major_of(dist) == major


def test_an_unsuffixed_wheel_is_of_the_major_of_its_nvidia_folder(tmp_path: Path) -> None:
    """nvidia-cusparse 12.9.4.2 is CUDA 13's (its library is nvidia/cu13/lib/libcusparse.so.12); without files
    under nvidia/cuNN/ nothing is said."""
    site = sb.build(tmp_path / "site", [sb.Dist("nvidia-cusparse", "12.9.4.2"), sb.Dist("nvidia-cufile", "1.15.0")])
    library = site / "nvidia" / "cu13" / "lib" / "libcusparse.so.12"
    library.parent.mkdir(parents=True)
    library.write_bytes(b"\x7fELF")
    sb.add_to_record(site, "nvidia_cusparse", [library])
    env = scan([site])
    assert [cuda_major_of(d) for d in sorted(env.distributions, key=lambda d: d.key)] == [None, 13]
