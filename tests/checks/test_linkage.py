"""The linkage findings (a to e) on fake site-packages trees whose libraries are built with gcc.

The tree is tests/support/linkage_tree.py's: torch 2.14.1 with the real METADATA plus small ELF
files laid out like the real wheels, each listed in the RECORD of the distribution that owns it.
ld.so.cache is ignored unless a test asks for it, so the system CUDA of this machine never answers
for the wheels.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_cudadeps.checks.findings import Finding, Outcome
from pytest_cudadeps.checks.linkage import linkage_findings
from pytest_cudadeps.engine.distributions import scan
from pytest_cudadeps.engine.ldso import read_ld_so_cache
from pytest_cudadeps.engine.linkage import analyze
from pytest_cudadeps.engine.requirements import closure
from tests.support import sitebuilder as sb
from tests.support.linkage_tree import (
    CU13_LIB,
    TREE_STRICT,
    Libs,
    build_libs,
    dist_info,
    put,
    record_line,
    tree,
    trimmed_init,
    versioned,
)

SYSTEM_CUDART = Path("/usr/local/cuda-13.0/lib/libcudart.so.13")


@pytest.fixture(scope="module")
def libs(gcc: str, tmp_path_factory: pytest.TempPathFactory) -> Libs:
    return build_libs(gcc, tmp_path_factory.mktemp("cuda"))


def findings(site: Path, *, use_ld_cache: bool = False, ld_library_path: str = "", ld_preload: str = "") -> dict[str, Finding]:
    env = scan([site])
    root = env.get("torch")
    assert root is not None
    linkage = analyze(env, root, use_ld_cache=use_ld_cache, ld_library_path=ld_library_path, ld_preload=ld_preload)
    found = linkage_findings(env, linkage, closure(env, root), "13.0")
    by_name = {f.name: f for f in found}
    assert len(by_name) == len(found), "item names must be unique"
    return by_name


def failures(found: dict[str, Finding]) -> dict[str, Finding]:
    return {name: f for name, f in found.items() if f.outcome is Outcome.FAIL}


# --- all well --------------------------------------------------------------------------------


def test_intact_tree_passes_and_each_item_says_which_file_and_whose(tmp_path: Path, libs: Libs) -> None:
    site = tree(tmp_path / "site", libs)
    found = findings(site)
    assert failures(found) == {}
    assert set(found) == {f"linkage[torch>{s}]" for s in
                          ("libcudart.so.13", "libcublas.so.13", "libcusparse.so.12", "libnvJitLink.so.13")}
    cudart = dict(found["linkage[torch>libcudart.so.13]"].facts)
    assert cudart["path"] == str(site / CU13_LIB / "libcudart.so.13")
    assert cudart["owner"] == "nvidia-cuda-runtime 13.0.96"
    assert cudart["via"] == "DT_RPATH of libtorch_global_deps.so"
    assert cudart["summary"] == (f"libcudart.so.13 -> {site / CU13_LIB / 'libcudart.so.13'} "
                                 "(nvidia-cuda-runtime 13.0.96, via DT_RPATH of libtorch_global_deps.so)")
    nvjitlink = dict(found["linkage[torch>libnvJitLink.so.13]"].facts)
    assert (nvjitlink["owner"], nvjitlink["via"]) == ("nvidia-nvjitlink 13.5.37", "DT_RUNPATH of libcusparse.so.12")


# --- a: not found ----------------------------------------------------------------------------


def test_a_missing_wheel_is_not_found_and_names_the_declared_distribution(tmp_path: Path, libs: Libs) -> None:
    site = tree(tmp_path / "site", libs, omit=["nvidia-cublas"])
    found = failures(findings(site))
    assert set(found) == {"linkage[torch>libcublas.so.13]"}
    finding = found["linkage[torch>libcublas.so.13]"]
    assert finding.message == ("libcublas.so.13 is not found: loading torch fails with "
                               "`OSError: libcublas.so.13: cannot open shared object file: No such file or directory`")
    text = finding.text()
    assert "needed by: torch/lib/libtorch_global_deps.so" in text
    assert "declared: torch 2.14.1 > cuda-toolkit[cublas] 13.0.3.0 > nvidia-cublas" in text
    assert "nvidia-cublas is not installed" in text
    assert f"DT_RPATH of libtorch_global_deps.so ({site / 'nvidia/cudnn/lib'}, {site / CU13_LIB}" in text
    assert finding.fix.startswith("pip install 'nvidia-cublas")


def test_a_missing_library_that_nothing_declares_says_so(tmp_path: Path, libs: Libs) -> None:
    site = tree(tmp_path / "site", libs, omit=["nvidia-cublas"], torch_requires=())
    finding = findings(site)["linkage[torch>libcublas.so.13]"]
    assert finding.outcome is Outcome.FAIL
    assert "cannot open shared object file" in finding.message
    text = finding.text()
    assert "libcublas.so.13 is needed but no requirement of torch 2.14.1 declares a distribution that provides it" in text
    assert "nvidia-cublas" in text
    assert finding.fix == "pip install 'cuda-toolkit[cublas]==13.0.*'"


# --- b: found outside the declaring distribution ---------------------------------------------


def test_b_a_shadowing_copy_in_ld_library_path_wins_for_a_runpath_user(tmp_path: Path, libs: Libs) -> None:
    site = tree(tmp_path / "site", libs)
    shadow = tmp_path / "conda" / "lib"
    put(tmp_path, "conda/lib/libnvJitLink.so.13", libs.nvjitlink, None)
    found = failures(findings(site, ld_library_path=str(shadow)))
    assert set(found) == {"linkage[torch>libnvJitLink.so.13]"}  # torch's own DT_RPATH users are not fooled
    finding = found["linkage[torch>libnvJitLink.so.13]"]
    assert finding.message.startswith(f"libnvJitLink.so.13 resolves to {shadow / 'libnvJitLink.so.13'} "
                                      "(via LD_LIBRARY_PATH, owned by no installed distribution)")
    assert f"nvidia-nvjitlink 13.5.37's copy: {site / CU13_LIB / 'libnvJitLink.so.13'}" in finding.details
    assert finding.fix == f"remove {shadow} from LD_LIBRARY_PATH"


def test_b_a_copy_in_ld_library_path_does_not_shadow_torchs_rpath(tmp_path: Path, libs: Libs) -> None:
    site = tree(tmp_path / "site", libs)
    put(tmp_path, "fake/libcudart.so.13", libs.cudart_unversioned, None)
    found = findings(site, ld_library_path=str(tmp_path / "fake"))
    assert found["linkage[torch>libcudart.so.13]"].outcome is Outcome.PASS  # FACTS e: RPATH wins


def test_b_the_system_cuda_through_ld_so_cache_when_the_wheel_is_gone(tmp_path: Path, libs: Libs) -> None:
    if SYSTEM_CUDART not in read_ld_so_cache().get("libcudart.so.13", ()):
        pytest.skip(f"no system CUDA 13 libcudart in /etc/ld.so.cache ({SYSTEM_CUDART})")
    site = tree(tmp_path / "site", libs, omit=["nvidia-cuda-runtime"])
    finding = findings(site, use_ld_cache=True)["linkage[torch>libcudart.so.13]"]
    assert finding.outcome is Outcome.FAIL
    assert finding.message == (
        f"libcudart.so.13 resolves to {SYSTEM_CUDART} (via ld.so.cache, owned by no installed distribution), "
        "not to the copy of nvidia-cuda-runtime (not installed), which torch declares: "
        "the import may work by accident with a foreign library")
    assert finding.fix == "pip install 'nvidia-cuda-runtime==13.0.96.*'"
    # without the cache (a clean container) the same tree is finding a
    assert "cannot open shared object file" in findings(site)["linkage[torch>libcudart.so.13]"].message


# --- c: the metadata declares no provider ----------------------------------------------------


def test_c_binaries_need_cudart_but_the_metadata_names_no_provider(tmp_path: Path, libs: Libs) -> None:
    site = tree(tmp_path / "site", libs, torch_requires=("filelock", "sympy>=1.13.3"))
    found = findings(site)
    finding = found["linkage[torch>libcudart.so.13]"]
    assert finding.outcome is Outcome.FAIL
    assert finding.message.startswith(
        "libcudart.so.13 is needed but no requirement of torch 2.14.1 declares a distribution that provides it")
    assert "nvidia-cuda-runtime" in finding.message
    assert "the installed metadata does not match the binaries" in finding.message
    assert finding.fix == "pip install 'cuda-toolkit[cudart]==13.0.*'"
    assert set(failures(found)) == {f"linkage[torch>{s}]" for s in
                                    ("libcudart.so.13", "libcublas.so.13", "libcusparse.so.12", "libnvJitLink.so.13")}


# --- d: ownership and bytes ------------------------------------------------------------------


def test_d_one_file_in_two_records_names_both_and_whose_bytes_are_on_disk(tmp_path: Path, libs: Libs) -> None:
    site = tree(tmp_path / "site", libs)
    sb.write_dist(site, sb.Dist("nvidia-cuda-runtime-cu12", "12.9.79"))
    with open(dist_info(site, "nvidia-cuda-runtime-cu12") / "RECORD", "a", encoding="utf-8") as record:
        record.write(record_line(f"{CU13_LIB}/libcudart.so.13", b"the cu12 wheel's bytes"))
    finding = findings(site)["linkage[torch>libcudart.so.13]"]
    assert finding.outcome is Outcome.FAIL
    assert finding.message == (
        f"{site / CU13_LIB / 'libcudart.so.13'} is claimed by 2 RECORDs: nvidia-cuda-runtime 13.0.96, "
        "nvidia-cuda-runtime-cu12 12.9.79; the bytes on disk are nvidia-cuda-runtime 13.0.96")
    assert finding.fix == "pip install --force-reinstall --no-deps 'nvidia-cuda-runtime==13.0.96'"


def test_d_a_size_that_differs_from_the_record(tmp_path: Path, libs: Libs) -> None:
    site = tree(tmp_path / "site", libs, real_runtime_record=True)  # the real wheel's RECORD, our small file
    path = site / CU13_LIB / "libcudart.so.13"
    listed = next(line for line in (sb.DATA / "nvidia_cuda_runtime-13.0.96.RECORD").read_text().splitlines()
                  if line.startswith(f"{CU13_LIB}/libcudart.so.13,"))
    finding = findings(site)["linkage[torch>libcudart.so.13]"]
    assert finding.outcome is Outcome.FAIL
    assert finding.message == (f"{path} is {path.stat().st_size} bytes but nvidia-cuda-runtime 13.0.96's RECORD "
                               f"says {listed.rsplit(',', 1)[1]}: another package overwrote it")


# --- e: versions and nvJitLink symbols -------------------------------------------------------


def real_load(library: Path) -> subprocess.CompletedProcess[str]:
    """dlopen ``library`` in a child, as torch's import does, and see what the real ld.so says."""
    code = "import ctypes, sys; ctypes.CDLL(sys.argv[1], mode=ctypes.RTLD_GLOBAL); print('loaded')"
    return subprocess.run([sys.executable, "-c", code, str(library)], capture_output=True, text=True, timeout=60)


def test_e_a_library_without_symbol_versions_aborts_the_loader(tmp_path: Path, libs: Libs) -> None:
    """Same soname, same symbols, no version node: ld.so warns, then aborts on the versioned lookup."""
    site = tree(tmp_path / "site", libs, cudart=libs.cudart_unversioned)
    cudart, user = site / CU13_LIB / "libcudart.so.13", site / "torch/lib/libtorch_global_deps.so"
    finding = failures(findings(site))["linkage[torch>libcudart.so.13]"]
    assert finding.message == (
        f"libcudart.so.13 at {cudart} lacks what its users need: {cudart} has no symbol versions but {user} asks "
        f"for version `libcudart.so.13': loading it aborts the process with `Inconsistency detected by ld.so: "
        f"dl-lookup.c: check_match: Assertion ... failed!` (exit status 127; at program start ld.so first warns "
        f"`no version information available`)")
    # the wheel is installed: pip install would keep its broken file, so the fix reinstalls it
    assert finding.fix == "pip install --force-reinstall --no-deps 'nvidia-cuda-runtime==13.0.96.*'"
    real = real_load(user)  # what the prediction is about
    assert real.returncode == 127
    assert "loaded" not in real.stdout
    assert "Inconsistency detected by ld.so: dl-lookup.c:" in real.stderr
    assert "check_match" in real.stderr


def test_e_a_version_the_resolved_library_does_not_define(gcc: str, tmp_path: Path, libs: Libs) -> None:
    """A CUDA 12 libcudart renamed to .so.13 (FACTS e7): its version node is `libcudart.so.12'."""
    other = tmp_path / "cu12"
    other.mkdir()
    renamed = versioned(gcc, other, "libcudart.so.12", "int cudaGetDeviceCount(int *n) { *n = 0; return 35; }\n",
                         ["cudaGetDeviceCount"])
    site = tree(tmp_path / "site", libs, cudart=renamed)
    cudart, user = site / CU13_LIB / "libcudart.so.13", site / "torch/lib/libtorch_global_deps.so"
    finding = failures(findings(site))["linkage[torch>libcudart.so.13]"]
    assert finding.message == (f"libcudart.so.13 at {cudart} lacks what its users need: "
                               f"version `libcudart.so.13' not found (required by {user})")
    assert f"version `libcudart.so.13' not found (required by {site / 'torch/_C.so'})" in finding.details
    assert finding.fix == "pip install --force-reinstall --no-deps 'nvidia-cuda-runtime==13.0.96.*'"
    real = real_load(user)
    assert real.returncode != 0
    # ld.so names the file by the RPATH it came through: .../torch/lib/../../nvidia/cu13/lib/libcudart.so.13
    assert f"libcudart.so.13: version `libcudart.so.13' not found (required by {user})" in real.stderr


def test_b_a_preloaded_cudart_without_the_symbols_torch_needs(gcc: str, tmp_path: Path, libs: Libs) -> None:
    """FACTS e4: LD_PRELOAD of a libcudart.so.13 with the right soname and version node but no CUDA symbols."""
    (tmp_path / "fake").mkdir()
    fake = versioned(gcc, tmp_path / "fake", "libcudart.so.13", "int unrelated(void) { return 1; }\n", ["unrelated"])
    site = tree(tmp_path / "site", libs)
    user = site / "torch/lib/libtorch_global_deps.so"
    finding = failures(findings(site, ld_preload=str(fake)))["linkage[torch>libcudart.so.13]"]
    assert finding.message == (
        f"libcudart.so.13 resolves to {fake} (via LD_PRELOAD, owned by no installed distribution), not to the copy "
        f"of nvidia-cuda-runtime 13.0.96, which torch declares: the import may work by accident with a foreign library")
    assert f"undefined symbol: cudaGetDeviceCount, version libcudart.so.13 (needed by {user})" in finding.details
    assert finding.fix == f"remove {fake} from LD_PRELOAD"
    real = subprocess.run([sys.executable, "-c", "import ctypes, sys; ctypes.CDLL(sys.argv[1])", str(user)],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "LD_PRELOAD": str(fake)})
    assert real.returncode != 0
    assert f"{user}: undefined symbol: cudaGetDeviceCount, version libcudart.so.13" in real.stderr


def test_e_an_nvjitlink_older_than_cusparse_needs(tmp_path: Path, libs: Libs) -> None:
    site = tree(tmp_path / "site", libs, nvjitlink=libs.nvjitlink_old)
    found = failures(findings(site))
    assert set(found) == {"linkage[torch>libnvJitLink.so.13]"}
    path = site / CU13_LIB / "libnvJitLink.so.13"
    assert found["linkage[torch>libnvJitLink.so.13]"].message == (
        f"libnvJitLink.so.13 at {path} lacks what its users need: undefined symbol: __nvJitLinkComplete_13_1 "
        f"(needed by {site / CU13_LIB / 'libcusparse.so.12'}; {path} is older than it needs)")


# --- editable CUDA wheels: the libraries where Python and the loader find them, and no reinstall from an index ---


def editable_cublas(site: Path, source: Path, kind: str) -> Path:
    """nvidia-cublas installed editable from ``source`` (its libcublas.so.13 in source/nvidia/cu13/lib, on sys.path
    through a .pth path line): PEP 660 (dist-info with direct_url.json in site-packages) or a legacy
    `setup.py develop` (egg-info in the source, easy-install.pth and an .egg-link in site-packages)."""
    import json
    import shutil

    (site / "torch/__init__.py").write_text(trimmed_init(*TREE_STRICT), encoding="utf-8")
    (source / CU13_LIB).mkdir(parents=True)
    lib = source / CU13_LIB / "libcublas.so.13"
    shutil.move(str(site / CU13_LIB / "libcublas.so.13"), str(lib))
    info = dist_info(site, "nvidia-cublas")
    if kind == "pep660":
        (info / "direct_url.json").write_text(json.dumps({"url": source.as_uri(), "dir_info": {"editable": True}}))
        pth = "__editable__.nvidia_cublas-13.1.1.3.pth"
        (info / "RECORD").write_text(f"{info.name}/METADATA,,\n{pth},,\n", encoding="utf-8")  # no library listed
        (site / pth).write_text(f"{source}\n", encoding="utf-8")
    else:
        egg = source / "nvidia_cublas.egg-info"
        egg.mkdir()
        shutil.copyfile(info / "METADATA", egg / "PKG-INFO")
        shutil.rmtree(info)
        (site / "easy-install.pth").write_text(f"import sys\n# develop\n{source}\n", encoding="utf-8")
        (site / "nvidia-cublas.egg-link").write_text(f"{source}\n.\n", encoding="utf-8")
    return lib


def torch_findings(site: Path) -> dict[str, Finding]:
    """:func:`findings` of a CUDA 13.0 torch (its preload looks in nvidia/cu13/lib of each path entry)."""
    env = scan([site])
    root = env.get("torch")
    assert root is not None
    linkage = analyze(env, root, use_ld_cache=False, ld_library_path="", ld_preload="", cuda="13.0")
    return {f.name: f for f in linkage_findings(env, linkage, closure(env, root), "13.0")}


@pytest.mark.parametrize("kind", ["pep660", "egg-link"])
def test_an_editable_cuda_wheel_is_found_in_its_source_and_owns_its_library(tmp_path: Path, libs: Libs,
                                                                            kind: str) -> None:
    """Before: the .pth line was not read (the library was "not found", fix `pip install --force-reinstall
    'nvidia-cublas==13.1.1.3.*'`, which replaces the developer's build), and with the folder on the path the
    library was "owned by no installed distribution"."""
    site = tree(tmp_path / "site", libs)
    lib = editable_cublas(site, tmp_path / "my src" / "cublas", kind)
    found = torch_findings(site)
    assert failures(found) == {}
    assert found["linkage[torch>libcublas.so.13]"].message == (
        f"libcublas.so.13 -> {lib} (nvidia-cublas 13.1.1.3, via the preload in torch/__init__.py (_load_global_deps()))")


@pytest.mark.parametrize("kind", ["pep660", "egg-link"])
def test_an_editable_cuda_wheel_whose_library_is_not_built_is_rebuilt_from_its_source(tmp_path: Path, libs: Libs,
                                                                                      kind: str) -> None:
    site = tree(tmp_path / "site", libs)
    source = tmp_path / "my src" / "cublas"
    editable_cublas(site, source, kind).unlink()  # the developer has not built it yet
    bad = failures(torch_findings(site))["linkage[torch>libcublas.so.13]"]
    assert bad.message.startswith("libcublas.so.13 is not found")
    assert bad.fix == f"cd '{source}' && pip install --no-build-isolation --no-deps -e ."
    assert "--force-reinstall" not in bad.fix
