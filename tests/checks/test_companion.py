"""The companion[...] items: fake torch libraries and extensions built with g++ (tests/support/companions.py), in
trees of real METADATA; extensions that match torch, that were built for an older one (version skew), or with the
other C++ ABI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pytest_cudadeps.checks.companion import companion_findings
from pytest_cudadeps.checks.findings import Finding, Outcome
from pytest_cudadeps.engine.companions import find_companions
from pytest_cudadeps.engine.distributions import scan
from pytest_cudadeps.engine.elf import imported_symbols
from tests.support import sitebuilder as sb
from tests.support.companions import USES_CURRENT, companion, site_with

USES_OLDER = """\
namespace c10 { namespace cuda { int check(int code); } }
int use(void) { return c10::cuda::check(1); }
"""
# The torch an older extension was linked against: it still had c10::cuda::check(int).
OLDER_TORCH_SOURCE = "namespace c10 { namespace cuda { int check(int code) { return code; } } }\n"
USES_WEAK = """\
namespace c10 { namespace cuda { int check(int code, bool warn); int gone(void) __attribute__((weak)); } }
int use(void) { return c10::cuda::check(1, true) + (c10::cuda::gone ? c10::cuda::gone() : 0); }
"""


def findings_of(site: Path) -> list[Finding]:
    """The companion findings of a tree, its companions found as the snapshot finds them."""
    env = scan([site])
    return companion_findings(env, find_companions(env))


def loader_error(site: Path, extension: Path) -> str:
    """What the real loader says when a child opens ``extension`` beside the tree's torch libraries."""
    code = "import ctypes, sys\ntry:\n    ctypes.CDLL(sys.argv[1])\nexcept OSError as e:\n    print(e)\n"
    result = subprocess.run([sys.executable, "-c", code, str(extension)], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "LD_LIBRARY_PATH": str(site / "torch" / "lib")})
    assert "undefined symbol" in result.stdout, result.stdout + result.stderr
    return result.stdout.strip()


def by_name(findings: list[Finding]) -> dict[str, Finding]:
    return {f.name: f for f in findings}


def test_a_matching_extension_passes_all_three(tmp_path: Path, gxx: str) -> None:
    site = site_with(tmp_path, gxx, (companion("torchvision", "0.29.1", "torch>=2.14.0", files={
        "torchvision/version.py": "__version__ = '0.29.1+cu130'\n"}), USES_CURRENT, ()))
    found = by_name(findings_of(site))
    assert sorted(found) == ["companion[torchvision>build]", "companion[torchvision>symbols]",
                             "companion[torchvision>torch-pin]"]
    assert {f.outcome for f in found.values()} == {Outcome.PASS}
    assert "defines all 2 symbols" in found["companion[torchvision>symbols]"].message


def test_version_skew_names_the_undefined_symbol_as_the_loader_prints_it(tmp_path: Path, gxx: str) -> None:
    site = site_with(tmp_path, gxx, (companion("torchvision", "0.28.0", "torch (==2.13.0)"), USES_OLDER, ()),
                     linked_against=OLDER_TORCH_SOURCE)
    found = by_name(findings_of(site))
    pin = found["companion[torchvision>torch-pin]"]
    assert pin.outcome is Outcome.FAIL
    assert pin.message.startswith("torchvision 0.28.0 requires torch==2.13.0, but torch 2.14.1 is installed")
    assert pin.fix == "pip install 'torchvision==0.29.*'"
    symbols = found["companion[torchvision>symbols]"]
    assert symbols.outcome is Outcome.FAIL
    assert f"`{site}/torchvision/_C.so: undefined symbol: _ZN3c104cuda5checkEi`" in symbols.message
    assert loader_error(site, site / "torchvision" / "_C.so") in symbols.message
    assert "built against another torch" in symbols.message
    assert any("operator torchvision::nms does not exist" in line for line in symbols.details)


def test_the_cxx11_abi_flip_is_told_apart_from_version_skew(tmp_path: Path, gxx: str) -> None:
    site = site_with(tmp_path, gxx, (companion("flash-attn", "2.8.3", "torch"), USES_CURRENT,
                                     ("-D_GLIBCXX_USE_CXX11_ABI=0",)))
    symbols = by_name(findings_of(site))["companion[flash-attn>symbols]"]
    assert symbols.outcome is Outcome.FAIL
    assert "undefined symbol: _ZN3c106detail5checkERKSs`" in symbols.message
    assert "_GLIBCXX_USE_CXX11_ABI=0" in symbols.message
    assert loader_error(site, site / "flash_attn" / "_C.so") in symbols.message


def test_a_weak_reference_is_not_a_missing_symbol(tmp_path: Path, gxx: str) -> None:
    site = site_with(tmp_path, gxx, (companion("myext", "1.0", "torch"), USES_WEAK, ()))
    ext = site / "myext" / "_C.so"
    assert "_ZN3c104cuda4goneEv" not in imported_symbols(ext, r"_Z")
    assert by_name(findings_of(site))["companion[myext>symbols]"].outcome is Outcome.PASS


def test_local_tags_of_another_build_fail(tmp_path: Path, gxx: str) -> None:
    site = site_with(tmp_path, gxx, (companion("torchvision", "0.29.1+cpu", "torch>=2.14.0", files={
        "torchvision/version.py": "__version__ = '0.29.1+cpu'\n"}), USES_CURRENT, ()))
    build = by_name(findings_of(site))["companion[torchvision>build]"]
    assert build.outcome is Outcome.FAIL
    assert build.message == ("torchvision 0.29.1+cpu is a CPU-only (+cpu) build, but torch 2.14.1+cu130 is a "
                             "CUDA 13.0 (+cu130) build")
    assert build.fix.endswith("--index-url https://download.pytorch.org/whl/cu130")


def test_xformers_build_record_names_the_torch_it_was_built_for(tmp_path: Path, gxx: str) -> None:
    record = json.dumps({"version": {"torch": "2.13.0+cu130", "cuda": 1300, "python": "3.11.9"}, "env": {}})
    site = site_with(tmp_path, gxx, (companion("xformers", "0.0.34", "torch>=2.13", files={
        "xformers/cpp_lib.json": record}), USES_CURRENT, ()))
    build = by_name(findings_of(site))["companion[xformers>build]"]
    assert build.outcome is Outcome.FAIL
    assert build.message.startswith("xformers 0.0.34 was built for torch 2.13.0+cu130, but torch 2.14.1+cu130")
    assert build.details == (f"recorded in: {site / 'xformers' / 'cpp_lib.json'}",)


def test_no_companion_and_no_torch_library_give_no_items(tmp_path: Path, gxx: str) -> None:
    plain = sb.torch_2_14_1(tmp_path / "plain")
    assert findings_of(plain) == []  # torch without lib/: nothing is read
    site = site_with(tmp_path, gxx)
    assert find_companions(scan([site])) == ()
    assert findings_of(site) == []


def test_a_local_or_git_build_is_rebuilt_from_its_source_not_fetched_from_pytorchs_index(tmp_path: Path,
                                                                                         gxx: str) -> None:
    """PyTorch's index has only its own projects: an extension built from a folder or a git checkout (direct_url.json,
    PEP 610) is rebuilt there against the installed torch, without build isolation so that it sees that torch."""
    site = site_with(tmp_path, gxx, (companion("myext", "0.1+cpu", "torch>=2.14.0", files={
        "myext/version.py": "__version__ = '0.1+cpu'\n"}), USES_CURRENT, ()))
    meta = next(site.glob("myext-*.dist-info"))
    source = tmp_path / "src dir" / "myext"
    (meta / "direct_url.json").write_text(json.dumps({"url": source.as_uri(), "dir_info": {}}))
    build = by_name(findings_of(site))["companion[myext>build]"]
    assert build.fix == (f"cd '{source}' && pip install --no-build-isolation --force-reinstall --no-deps .")
    (meta / "direct_url.json").write_text(json.dumps({"url": source.as_uri(), "dir_info": {"editable": True}}))
    assert by_name(findings_of(site))["companion[myext>build]"].fix.endswith("--no-deps -e .")
    (meta / "direct_url.json").write_text(json.dumps({
        "url": "https://github.com/me/myext", "vcs_info": {"vcs": "git", "commit_id": "0123abc"}}))
    assert by_name(findings_of(site))["companion[myext>build]"].fix == (
        "pip install --no-build-isolation --force-reinstall --no-deps 'git+https://github.com/me/myext@0123abc'")
