"""Ownership: which distribution's RECORD lists a file, and the lines that can never grant it."""

from __future__ import annotations

from pathlib import Path

from pytest_cudadeps.engine.distributions import scan
from pytest_cudadeps.engine.owners import Owners
from tests.support import sitebuilder as sb


def test_record_lines_own_files_inside_site_packages_only(tmp_path: Path) -> None:
    site = tmp_path / "site"
    system = tmp_path / "usr" / "local" / "cuda-13.0" / "lib" / "libcudart.so.13"  # a "system" CUDA library
    system.parent.mkdir(parents=True)
    system.write_bytes(b"\x7fELF")
    sb.build(site, [sb.Dist("nvidia-cuda-runtime", "13.0.96")])
    (site / "nvidia/cu13/lib").mkdir(parents=True)
    (site / "nvidia/cu13/lib/libcudart.so.13").write_bytes(b"\x7fELF")
    (info,) = site.glob("nvidia_cuda_runtime-*.dist-info")
    with open(info / "RECORD", "a", encoding="utf-8") as record:
        record.write("nvidia/cu13/lib/libcudart.so.13,,\n")  # its own file
        record.write(f"{system},,\n")  # an absolute path: the system's library
        record.write(f"../../{system.relative_to(tmp_path)},,\n")  # .. leading out of site-packages
        record.write("../site/nvidia/cu13/lib/../lib/libcudart.so.13,,\n")  # out and back in: its own
    owners = Owners(scan([site]))
    assert [dist.key for dist, _ in owners.of(site / "nvidia/cu13/lib/libcudart.so.13")] == [
        "nvidia-cuda-runtime", "nvidia-cuda-runtime"]
    assert owners.of(system) == []  # never "owned by nvidia-cuda-runtime"
    assert [path for path, _ in owners.files_named("libcudart.so.13")] == [site / "nvidia/cu13/lib/libcudart.so.13"] * 2


def test_an_editable_install_owns_what_lies_in_its_source_but_not_a_venv_inside_it(tmp_path: Path) -> None:
    """PEP 660: the RECORD lists the dist-info and the .pth only; the project's libraries are its own.  A venv
    inside the project folder (a path entry below the source) holds other distributions' files, never its."""
    import json

    project = tmp_path / "project"
    venv_site = project / ".venv" / "lib" / "python3.11" / "site-packages"
    sb.build(venv_site, [sb.Dist("nvidia-cublas", "13.1.1.3")])
    (info,) = venv_site.glob("nvidia_cublas-*.dist-info")
    (info / "direct_url.json").write_text(json.dumps({"url": project.as_uri(), "dir_info": {"editable": True}}))
    (venv_site / "__editable__.nvidia_cublas-13.1.1.3.pth").write_text(f"{project}\n")
    built = project / "nvidia/cu13/lib/libcublas.so.13"
    built.parent.mkdir(parents=True)
    built.write_bytes(b"\x7fELF")
    other = venv_site / "nvidia/cu13/lib/libcudart.so.13"  # a file in the venv that no RECORD lists
    other.parent.mkdir(parents=True)
    other.write_bytes(b"\x7fELF")
    owners = Owners(scan([venv_site]))
    ((dist, entry),) = owners.of(built)
    assert (dist.key, entry.hash) == ("nvidia-cublas", "")
    assert owners.of(other) == []
    assert owners.of(tmp_path / "elsewhere.so") == []
