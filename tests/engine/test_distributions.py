"""environment.py on hostile trees: every file read safely and with a cap, every failure a MetadataProblem."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from pytest_cudadeps.core.safe_io import UnsafeFile
from pytest_cudadeps.engine.distributions import (
    RECORD_LIMIT,
    Distribution,
    MetadataProblem,
    parse_headers,
    read_distribution,
    read_version_module,
    scan,
)
from tests.support import sitebuilder as sb
from tests.support.bounds import counted_io, watchdog


def one_dist(tmp_path: Path, **files: bytes | None) -> Path:
    """A site with ``demo 1.0``; ``files`` replace files of its dist-info (None: a FIFO there)."""
    site = sb.build(tmp_path / "site", [sb.Dist("demo", "1.0", ("nvidia-cufft",))])
    info = site / "demo-1.0.dist-info"
    for name, content in files.items():
        target = info / name.replace("_", ".")
        target.unlink(missing_ok=True)
        if content is None:
            os.mkfifo(target)
        else:
            target.write_bytes(content)
    return site


def only_problem(site: Path) -> MetadataProblem:
    with watchdog():
        env = scan([site])
    assert len(env.problems) == 1, env.problems
    return env.problems[0]


@pytest.mark.parametrize("name", ["METADATA", "RECORD", "INSTALLER"])
def test_a_fifo_is_a_problem_naming_the_file(tmp_path: Path, name: str) -> None:
    site = one_dist(tmp_path, **{name: None})
    problem = only_problem(site)
    assert problem.path == site / "demo-1.0.dist-info" / name
    assert problem.problem == "cannot be read: not a regular file (a FIFO)"


def test_a_fifo_requires_txt_of_an_egg_is_a_problem(tmp_path: Path) -> None:
    egg = tmp_path / "site" / "demo-1.0.egg-info"
    egg.mkdir(parents=True)
    (egg / "PKG-INFO").write_text("Metadata-Version: 1.1\nName: demo\nVersion: 1.0\n\n")
    os.mkfifo(egg / "requires.txt")
    problem = only_problem(tmp_path / "site")
    assert (problem.path, problem.problem) == (egg / "requires.txt", "cannot be read: not a regular file (a FIFO)")


def test_a_bad_installer_or_record_keeps_the_distribution(tmp_path: Path) -> None:
    site = one_dist(tmp_path, INSTALLER=None, RECORD=None)
    with watchdog():
        env = scan([site])
    assert [d.name for d in env.distributions] == ["demo"]
    assert env.distributions[0].installer == ""
    assert env.distributions[0].record == ()
    assert sorted(p.path.name for p in env.problems) == ["INSTALLER", "RECORD"]


def test_an_oversized_metadata_is_refused_without_reading_it(tmp_path: Path) -> None:
    site = one_dist(tmp_path)
    with open(site / "demo-1.0.dist-info" / "METADATA", "r+b") as stream:
        stream.truncate(95 << 20)  # sparse
    with counted_io() as io:
        problem = only_problem(site)
    assert io.bytes < 1 << 20  # refused from its size: none of the 95 MB is read
    assert problem.problem == "cannot be read: is 95 MB, more than the 16 MB a METADATA file may be"


def test_an_oversized_record_and_installer_are_refused(tmp_path: Path) -> None:
    site = one_dist(tmp_path, INSTALLER=b"pip" + b" " * 5000)
    with open(site / "demo-1.0.dist-info" / "RECORD", "r+b") as stream:
        stream.truncate(RECORD_LIMIT + 1)
    with counted_io() as io:
        problems = {p.path.name: p.problem for p in scan([site]).problems}
    assert problems == {
        "INSTALLER": "cannot be read: is 4.9 KB, more than the 4 KB an INSTALLER file may be",
        "RECORD": "cannot be read: is 65 MB, more than the 64 MB a RECORD file may be",
    }
    assert io.bytes < 1 << 20  # both refused from their size


def test_a_record_field_over_the_csv_limit_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    long_line = "torch/lib/" + "x" * (130 << 10) + ".so,sha256=abc,1\n"
    site = one_dist(tmp_path, RECORD=f"demo/a.so,sha256=abc,1\n{long_line}demo/b.so,,\n".encode())
    env = scan([site])
    assert len(env.problems) == 1
    assert env.problems[0].problem == "line 2 cannot be parsed: field larger than field limit (131072)"
    dist = env.distributions[0]
    assert [e.path for e in dist.record_entries(".so")] == ["demo/a.so", "demo/b.so"]  # the bad line alone is left out
    assert [e.path for e in dist.record] == ["demo/a.so", "demo/b.so"]


def test_record_is_read_once_by_the_scan(tmp_path: Path) -> None:
    site = one_dist(tmp_path)
    dist = scan([site]).distributions[0]
    (site / "demo-1.0.dist-info" / "RECORD").unlink()
    assert dist.record  # read while scanning, not again


@pytest.mark.parametrize(("field", "line"), [
    ("Name", b"Name: torch\x00"), ("Name", b"Name: tor\x1b[2Jch"), ("Version", b"Version: 2.14.1\x07"),
])
def test_a_control_character_in_name_or_version_is_bad_metadata(tmp_path: Path, field: str, line: bytes) -> None:
    other = b"Version: 2.14.1" if field == "Name" else b"Name: torch"
    site = one_dist(tmp_path, METADATA=b"Metadata-Version: 2.1\n" + line + b"\n" + other + b"\n\n")
    problem = only_problem(site)
    assert problem.problem.startswith(f"bad metadata: the {field} field contains a control character (")


def test_many_continuation_lines_are_parsed_in_linear_time() -> None:
    text = "Name: demo\nDescription: start\n" + "       |line\n" * 400_000
    with watchdog():
        fields = parse_headers(text)
    assert isinstance(fields, dict)
    assert len(fields["description"][0]) == len("start") + 400_000 * len(" |line")


# --- RECORD entries outside the distribution's location -----------------------------------------


def test_owned_files_never_leave_the_location(tmp_path: Path) -> None:
    record = (b"nvidia/cuda_runtime/lib/libcudart.so.13,sha256=a,1\n"
              b"/usr/local/cuda/lib64/libcudart.so.13,sha256=b,2\n"
              b"../../../../usr/local/cuda/lib64/libcudart.so.13,sha256=c,3\n"
              b"nvidia/../../site-other/libx.so,,\n"
              b"../../../bin/tool,,\n")
    site = one_dist(tmp_path, RECORD=record)
    dist = scan([site]).distributions[0]
    owned = [str(p) for p, _ in dist.owned_files()]
    assert owned == [str(site / "nvidia/cuda_runtime/lib/libcudart.so.13")]
    assert [str(p) for p, _ in dist.owned_files(".so")] == owned
    assert len(list(dist.files())) == 5  # files() still lists everything RECORD says


# --- version.py ---------------------------------------------------------------------------------


def test_a_deeply_nested_version_py_is_a_value_error(tmp_path: Path) -> None:
    (tmp_path / "version.py").write_text("cuda = " + "-" * 200_000 + "1\n")  # MemoryError inside CPython's parser
    with pytest.raises(ValueError, match=r"nested too deeply for Python's parser \(MemoryError\)"):
        read_version_module(tmp_path)


def test_a_long_attribute_chain_in_version_py(tmp_path: Path) -> None:
    (tmp_path / "version.py").write_text("cuda = a" + ".a" * 100_000 + "\nx = '1'\n")
    if sys.version_info < (3, 11):  # 3.9 and 3.10 parse it (it is no literal); 3.11+ recurse per level
        assert read_version_module(tmp_path) == {"x": "1"}
        return
    with pytest.raises(ValueError, match=r"nested too deeply for Python's parser \(RecursionError\)"):
        read_version_module(tmp_path)


def test_an_oversized_version_py_is_refused(tmp_path: Path) -> None:
    (tmp_path / "version.py").write_text("cuda = '13.0'\n" * 100_000)  # 1.4 MB
    with counted_io() as io, pytest.raises(UnsafeFile, match=r"^is 1.4 MB, more than the 256 KB a version.py file may be$"):
        read_version_module(tmp_path)
    assert io.bytes < 64 << 10  # refused from its size, not read


def test_a_fifo_version_py_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "version.py")
    with watchdog(), pytest.raises(UnsafeFile, match="a FIFO"):
        read_version_module(tmp_path)


def test_read_distribution_keeps_its_contract(tmp_path: Path) -> None:
    site = one_dist(tmp_path, METADATA=None)
    with watchdog():
        found = read_distribution(site, site / "demo-1.0.dist-info")
    assert isinstance(found, MetadataProblem)
    good = read_distribution(*(lambda s: (s, s / "demo-1.0.dist-info"))(one_dist(tmp_path / "b")))
    assert isinstance(good, Distribution)
    assert good.name == "demo"


def test_a_stale_egg_info_beside_the_dist_info_is_not_the_installed_copy(tmp_path: Path) -> None:
    """importlib.metadata (and pip) take the dist-info: ``torch-2.14.1.dist-info`` over a left-over
    ``torch-2.0.0-py3.11.egg-info``, though "torch-2.0.0..." sorts first; checked against importlib itself."""
    import importlib.metadata

    site = sb.build(tmp_path / "site", [sb.torch_dist("2.14.1", "13.0")])
    egg = site / "torch-2.0.0-py3.11.egg-info"
    egg.mkdir()
    (egg / "PKG-INFO").write_text("Metadata-Version: 1.1\nName: torch\nVersion: 2.0.0\n\n")
    found = scan([site]).get("torch")
    assert found is not None
    assert (found.version, found.meta_dir.name) == ("2.14.1", "torch-2.14.1.dist-info")
    reference = next(d for d in importlib.metadata.distributions(path=[str(site)]) if d.metadata["Name"] == "torch")
    assert reference.version == found.version


def editable_torch(tmp_path: Path, editable: object = True) -> tuple[Path, Path]:
    """torch installed with ``pip install -e`` (PEP 660): its dist-info in site-packages, its package in the
    source tree that direct_url.json names (a space in the folder: the URL quotes it)."""
    import json
    import shutil

    site = sb.build(tmp_path / "site", [sb.torch_dist("2.14.1", "13.0")])
    source = tmp_path / "my pytorch"
    source.mkdir()
    shutil.move(str(site / "torch"), str(source / "torch"))
    (site / "torch-2.14.1.dist-info" / "direct_url.json").write_text(json.dumps(
        {"url": "file://" + str(source).replace(" ", "%20"), "dir_info": {"editable": editable}}))
    (site / "__editable__.torch-2.14.1.pth").write_text(f"{source}\n")
    return site, source


def test_an_editable_torch_is_found_in_its_source_tree(tmp_path: Path) -> None:
    """Before: "torch 2.14.1 has no package folder", a CPU-only verdict and a --force-reinstall fix."""
    from pytest_cudadeps.engine.build import Build, read_build
    from pytest_cudadeps.engine.distributions import editable_source

    site, source = editable_torch(tmp_path)
    env = scan([site])
    torch = env.get("torch")
    assert torch is not None
    assert editable_source(torch) == source
    assert env.package_dir(torch, "torch") == source / "torch"
    build = read_build(env, torch)
    assert isinstance(build, Build)
    assert build.cuda == "13.0"


@pytest.mark.parametrize("editable", [False, "yes", None])
def test_a_direct_url_that_is_not_editable_is_no_source_tree(tmp_path: Path, editable: object) -> None:
    from pytest_cudadeps.engine.distributions import editable_source

    site, _ = editable_torch(tmp_path, editable)
    torch = scan([site]).get("torch")
    assert torch is not None
    assert editable_source(torch) is None


# --- .pth path lines and .egg-link: the entries Python adds for a site folder ---------------------------------


def test_a_develop_install_is_found_through_easy_install_pth_as_python_finds_it(tmp_path: Path) -> None:
    """`setup.py develop` of nvidia-cublas (its real METADATA as PKG-INFO): easy-install.pth puts the project on
    sys.path, the .egg-link marks it editable.  Checked against Python itself: site.addsitedir, then
    importlib.metadata.  Before: the folder was not scanned, and nvidia-cublas was "not installed"."""
    import subprocess
    import sys

    from pytest_cudadeps.engine.distributions import editable_source, installed_from

    site = tmp_path / "site"
    project = tmp_path / "my src" / "cublas"
    (project / "nvidia_cublas.egg-info").mkdir(parents=True)
    (project / "nvidia_cublas.egg-info" / "PKG-INFO").write_bytes(
        (sb.DATA / "nvidia_cublas-13.1.1.3.METADATA").read_bytes())
    site.mkdir()
    (site / "easy-install.pth").write_text(f"import sys; sys.__plainrepr__ = 0\n{project}\n", encoding="utf-8")
    (site / "nvidia-cublas.egg-link").write_text(f"{project}\n.\n", encoding="utf-8")
    env = scan([site])
    assert env.paths == (site, project)
    cublas = env.get("nvidia-cublas")
    assert cublas is not None
    assert (cublas.version, cublas.location, cublas.egg_link) == ("13.1.1.3", project, site / "nvidia-cublas.egg-link")
    assert editable_source(cublas) == project
    assert installed_from(cublas) is not None
    python = subprocess.run(
        [sys.executable, "-S", "-c", "import site, sys, importlib.metadata as m\n"
         f"site.addsitedir({str(site)!r})\nprint(m.version('nvidia-cublas'))\nprint({str(project)!r} in sys.path)"],
        capture_output=True, text=True, timeout=60)
    assert python.stdout.split() == ["13.1.1.3", "True"], python.stderr
    # without the .pth line Python does not see it, whatever the .egg-link says
    (site / "easy-install.pth").unlink()
    assert scan([site]).get("nvidia-cublas") is None


def test_pth_entries_are_read_only_for_given_site_folders_with_bounds(tmp_path: Path) -> None:
    from pytest_cudadeps.engine.distributions import PTH_LINE_LIMIT, pth_entries

    site = tmp_path / "site"
    site.mkdir()
    folders = [tmp_path / f"f{n}" for n in range(3)]
    for folder in folders:
        folder.mkdir()
    # past the line cap nothing more is read (a .pth of millions of lines costs no more than the cap)
    lines = [str(folders[0])] * PTH_LINE_LIMIT + [str(folders[1])]
    (site / "a.pth").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (site / "b.pth").write_text(f"{folders[2]}\n", encoding="utf-8")
    assert pth_entries(site) == [folders[0]] * PTH_LINE_LIMIT + [folders[2]]
    assert scan([site]).paths == (site, folders[0], folders[2])
