"""The declared-dependency check (declared_findings) on site-packages trees built from real METADATA (no pytest plugin)."""

from __future__ import annotations

import platform
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_cudadeps.checks.findings import Finding, Outcome
from pytest_cudadeps.engine.distributions import Environment, scan
from pytest_cudadeps.engine.requirements import closure
from tests.support import sitebuilder as sb
from tests.support.declared import failures, requires_subjects, run
from tests.support.shell import HOSTILE_NAME, assert_inert

RUNTIME_CHAIN = "torch 2.14.1 > cuda-toolkit[cudart] 13.0.3.0 > nvidia-cuda-runtime==13.0.96.*"


# --- closure through extras ------------------------------------------------------------------


def test_intact_torch_2_14_1_passes_and_reaches_every_wheel_through_cuda_toolkit_extras(tmp_path: Path) -> None:
    found = run(sb.torch_2_14_1(tmp_path / "site"))
    assert failures(found) == {}
    subjects = requires_subjects(found)
    assert set(sb.CU13_THROUGH_EXTRAS) <= subjects
    assert {"cuda-toolkit", "nvidia-cudnn-cu13", "nvidia-nccl-cu13", "cuda-pathfinder", "markupsafe"} <= subjects
    runtime = found["requires[torch>nvidia-cuda-runtime]"]
    assert runtime.outcome is Outcome.PASS
    assert dict(runtime.facts)["chain"] == RUNTIME_CHAIN
    assert runtime.message == f"nvidia-cuda-runtime 13.0.96 satisfies ==13.0.96.* ({RUNTIME_CHAIN})"
    assert found["cuda-major[torch]"].outcome is Outcome.PASS


def test_extras_not_asked_for_are_not_followed(tmp_path: Path) -> None:
    subjects = requires_subjects(run(sb.torch_2_14_1(tmp_path / "site")))
    # cuda-toolkit[all], [nvcc], [npp], [nvjpeg]... are not in torch's list of extras
    assert not {"nvidia-npp", "nvidia-cuda-nvcc", "nvidia-nvjpeg", "nvidia-cuda-cccl", "nvidia-nvvm"} & subjects
    assert "optree" not in subjects  # torch's own extras are not asked for either


def test_missing_runtime_fails_naming_the_extras_chain_and_the_fix(tmp_path: Path) -> None:
    site = sb.torch_2_14_1(tmp_path / "site", omit=["nvidia-cuda-runtime"])
    found = run(site)
    assert set(failures(found)) == {"requires[torch>nvidia-cuda-runtime]"}
    assert found["requires[torch>nvidia-cuda-runtime]"].text() == "\n".join([
        "nvidia-cuda-runtime is not installed",
        f"  required by: {RUNTIME_CHAIN}",
        "  installed: nothing of that name on the path",
        "  installer: torch was installed by pip",
        "  fix: pip install 'nvidia-cuda-runtime==13.0.96.*'",
    ])


def test_missing_cuda_toolkit_fails_and_its_wheels_are_no_longer_reached(tmp_path: Path) -> None:
    found = run(sb.torch_2_14_1(tmp_path / "site", omit=["cuda-toolkit"]))
    toolkit = found["requires[torch>cuda-toolkit]"]
    assert toolkit.outcome is Outcome.FAIL
    assert toolkit.message == "cuda-toolkit is not installed"
    assert "fix: pip install 'cuda-toolkit[cublas,cudart,cufft,cufile,cupti,curand,cusolver,cusparse,nvjitlink," \
           "nvrtc,nvtx]==13.0.3'" in toolkit.text()
    # nvidia-cuda-runtime is only reached through cuda-toolkit's extras
    assert "nvidia-cuda-runtime" not in requires_subjects(found)


# --- markers ---------------------------------------------------------------------------------


def test_markers_are_evaluated_for_the_running_interpreter(tmp_path: Path) -> None:
    app = sb.Dist("app", "1.0", (
        'never; python_version < "3"',
        'always; python_version >= "3"',
        f'this-platform; sys_platform == "{sys.platform}"',
        'other-platform; sys_platform == "win32"',
        'optional; extra == "gpu"',
    ), ("gpu",))
    site = sb.build(tmp_path / "site", [app, sb.Dist("always", "1"), sb.Dist("this-platform", "1")])
    found = run(site, roots=["app"])
    assert requires_subjects(found, "app") == {"always", "this-platform"}
    assert failures(found) == {}


def test_triton_asks_for_importlib_metadata_only_below_python_3_10(tmp_path: Path) -> None:
    subjects = requires_subjects(run(sb.torch_2_14_1(tmp_path / "site")))
    assert ("importlib-metadata" in subjects) is (sys.version_info < (3, 10))


@pytest.mark.parametrize("which", ["2.7.1-x86_64", "2.7.1-aarch64", "2.6.0-x86_64"])
def test_cu12_pins_apply_only_on_x86_64_linux(tmp_path: Path, which: str) -> None:
    found = run(sb.torch_cu12(tmp_path / "site", which))
    on_x86_linux = sys.platform == "linux" and platform.machine() == "x86_64"
    assert ("nvidia-cuda-runtime-cu12" in requires_subjects(found)) is on_x86_linux
    assert failures(found) == {}
    assert found["cuda-major[torch]"].outcome is Outcome.PASS


@pytest.mark.skipif(platform.machine() != "x86_64" or sys.platform != "linux", reason="the pins are x86_64 Linux only")
def test_old_style_pins_of_torch_2_4_1_are_parsed_and_checked(tmp_path: Path) -> None:
    site = sb.torch_cu12(tmp_path / "site", "2.4.1-x86_64", versions={"nvidia-cudnn-cu12": "9.1.0.69"})
    found = run(site)
    assert set(failures(found)) == {"requires[torch>nvidia-cudnn-cu12]"}
    cudnn = found["requires[torch>nvidia-cudnn-cu12]"]
    assert cudnn.message == "nvidia-cudnn-cu12 9.1.0.69 does not satisfy ==9.1.0.70"
    assert cudnn.details[0] == "required by: torch 2.4.1 > nvidia-cudnn-cu12==9.1.0.70"
    assert cudnn.fix.startswith("pip install 'nvidia-cudnn-cu12==9.1.0.70'")
    # nvjitlink is not pinned by torch 2.4.1: it is reached through the cu12 wheels
    assert dict(found["requires[torch>nvidia-nvjitlink-cu12]"].facts)["chain"].startswith("torch 2.4.1 > nvidia-")


# --- cycles, duplicates, versions, extras ----------------------------------------------------


def test_a_cycle_through_an_extra_ends(tmp_path: Path) -> None:
    a = sb.Dist("a", "1.0", ("b", 'a; extra == "x"', 'c>=2; extra == "x"'), ("x",))
    b = sb.Dist("b", "1.0", ("a[x]",))
    site = sb.build(tmp_path / "site", [a, b, sb.Dist("c", "1.5")])
    env = scan([site])
    a_dist = env.get("a")
    assert a_dist is not None
    demands = {d.describe() for d in closure(env, a_dist).demands}
    assert demands == {
        "a 1.0 > b", "a 1.0 > b 1.0 > a[x]", "a 1.0 > b 1.0 > a[x] 1.0 > a", "a 1.0 > b 1.0 > a[x] 1.0 > c>=2",
    }
    found = run(site, roots=["a"])
    assert set(failures(found)) == {"requires[a>c]"}
    assert found["requires[a>c]"].message == "c 1.5 does not satisfy >=2"


def test_every_chain_to_one_distribution_is_merged_into_one_item(tmp_path: Path) -> None:
    site = sb.torch_2_14_1(tmp_path / "site", versions={"nvidia-nvjitlink": "12.9.86"})
    found = run(site)
    assert [n for n in found if n.startswith("requires[torch>nvidia-nvjitlink")] == ["requires[torch>nvidia-nvjitlink]"]
    nvjitlink = found["requires[torch>nvidia-nvjitlink]"]
    assert set(failures(found)) == {"requires[torch>nvidia-nvjitlink]"}
    assert nvjitlink.message == "nvidia-nvjitlink 12.9.86 does not satisfy <14,>=13.0.88"
    # 4 extras of cuda-toolkit ask for it; only the first 3 chains are printed
    assert nvjitlink.details[:4] == (
        "required by: torch 2.14.1 > cuda-toolkit[cufft] 13.0.3.0 > nvidia-nvjitlink<14,>=13.0.88",
        "required by: torch 2.14.1 > cuda-toolkit[cusolver] 13.0.3.0 > nvidia-nvjitlink<14,>=13.0.88",
        "required by: torch 2.14.1 > cuda-toolkit[cusparse] 13.0.3.0 > nvidia-nvjitlink<14,>=13.0.88",
        "(and 1 more chains)",
    )
    assert nvjitlink.fix.startswith("pip install 'nvidia-nvjitlink<14,>=13.0.88'")


def test_merged_specifiers_must_all_hold(tmp_path: Path) -> None:
    app = sb.Dist("app", "1.0", ("lib>=1", "helper"))
    helper = sb.Dist("helper", "1.0", ("lib<2",))
    site = sb.build(tmp_path / "site", [app, helper, sb.Dist("lib", "2.5")])
    found = run(site, roots=["app"])
    lib = found["requires[app>lib]"]
    assert lib.outcome is Outcome.FAIL
    assert lib.message == "lib 2.5 does not satisfy <2"
    assert lib.details[0] == "required by: app 1.0 > helper 1.0 > lib<2"
    assert lib.fix.startswith("pip install 'lib<2,>=1'")


def test_wrong_version_says_what_is_installed_and_where(tmp_path: Path) -> None:
    site = sb.torch_2_14_1(tmp_path / "site", versions={"nvidia-cuda-runtime": "13.0.48"})
    runtime = run(site)["requires[torch>nvidia-cuda-runtime]"]
    assert runtime.text() == "\n".join([
        "nvidia-cuda-runtime 13.0.48 does not satisfy ==13.0.96.*",
        f"  required by: {RUNTIME_CHAIN}",
        f"  installed: nvidia-cuda-runtime 13.0.48 in {site} (nvidia_cuda_runtime-13.0.48.dist-info)",
        "  installer: torch was installed by pip",
        "  fix: pip install 'nvidia-cuda-runtime==13.0.96.*'",
    ])


def test_an_extra_the_target_does_not_provide_fails(tmp_path: Path) -> None:
    real = (sb.DATA / "cuda_toolkit-13.0.3.0.METADATA").read_text(encoding="utf-8").splitlines()
    without_cudart = [line for line in real if "cudart" not in line]
    assert len(without_cudart) == len(real) - 2
    older = tmp_path / "cuda_toolkit.METADATA"
    older.write_text("\n".join(without_cudart) + "\n", encoding="utf-8")
    toolkit = sb.Dist("cuda-toolkit", "13.0.3.0", metadata_file=older)
    found = run(sb.torch_2_14_1(tmp_path / "site", omit=["cuda-toolkit"], extra=[toolkit]))
    assert set(failures(found)) == {"requires[torch>cuda-toolkit]"}
    finding = found["requires[torch>cuda-toolkit]"]
    assert finding.message == "cuda-toolkit 13.0.3.0 does not provide the extra cudart"
    assert finding.details[1].startswith("installed: cuda-toolkit 13.0.3.0 in ")
    assert "its METADATA lists extras: all, cccl, crt, cublas, cufft," in finding.details[1]
    assert "nvidia-cuda-runtime" not in requires_subjects(found)


# --- roots -----------------------------------------------------------------------------------


def test_without_torch_a_cuda_user_is_a_root(tmp_path: Path) -> None:
    site = sb.build(tmp_path / "site", [sb.Dist("cupy-cuda13x", "14.0.0", ("nvidia-cuda-runtime==13.*",))])
    found = run(site)
    assert "cuda-major[torch]" not in found
    missing = found["requires[cupy-cuda13x>nvidia-cuda-runtime]"]
    assert missing.text().splitlines()[:2] == [
        "nvidia-cuda-runtime is not installed",
        "  required by: cupy-cuda13x 14.0.0 > nvidia-cuda-runtime==13.*",
    ]


def test_named_roots_replace_the_default_and_must_be_installed(tmp_path: Path) -> None:
    site = sb.torch_2_14_1(tmp_path / "site")
    found = run(site, roots=["nvidia-cusolver", "not-installed"])
    assert requires_subjects(found, "nvidia-cusolver") == {"nvidia-cublas", "nvidia-cusparse", "nvidia-nvjitlink",
                                                          "nvidia-cuda-nvrtc"}
    assert requires_subjects(found) == set()
    missing = found["root[not-installed]"]
    assert missing.outcome is Outcome.FAIL
    assert missing.message == "not-installed was given as a root (--cuda-deps-root) but is not installed"
    assert missing.details == (f"searched: {site}",)


def test_no_roots_is_a_skip_with_a_reason(tmp_path: Path) -> None:
    site = sb.build(tmp_path / "site", [sb.Dist("filelock", "4.2.11"), sb.Dist("jinja2", "3.1.6", ("MarkupSafe",))])
    found = run(site)
    assert found["root[none]"].outcome is Outcome.SKIP
    assert found["root[none]"].message == (
        "no torch and no other distribution that requires an nvidia-* or cuda-* distribution is installed")
    assert sorted(found) == ["installed-once[all]", "root[none]"]


# --- installers ------------------------------------------------------------------------------


@pytest.mark.parametrize(("installer", "fix", "note"), [
    ("pip", "pip install 'nvidia-cuda-runtime==13.0.96.*'", "installer: torch was installed by pip"),
    ("uv", "uv pip install 'nvidia-cuda-runtime==13.0.96.*'",
     "installer: torch was installed by uv; in a uv project, add it to pyproject.toml's dependencies instead and run "
     "`uv sync`, which would undo a `uv pip install`"),
    ("poetry", "poetry add 'nvidia-cuda-runtime==13.0.96.*'", "installer: torch was installed by poetry"),
])
def test_the_fix_is_for_the_installer_that_installed_the_root(tmp_path: Path, installer: str, fix: str,
                                                              note: str) -> None:
    """The fix is one command, pasteable as printed; what the installer's user should know is a detail."""
    site = sb.torch_2_14_1(tmp_path / "site", omit=["nvidia-cuda-runtime"], installer=installer)
    finding = run(site)["requires[torch>nvidia-cuda-runtime]"]
    assert finding.fix == fix
    assert finding.details[-1] == note
    assert shlex.split(finding.fix)[-1] == "nvidia-cuda-runtime==13.0.96.*"  # one command, its last word the spec


def test_the_installer_is_read_from_the_roots_dist_info(tmp_path: Path) -> None:
    site = sb.torch_2_14_1(tmp_path / "site", omit=["nvidia-cuda-runtime"], installer="pip")
    (site / sb.dist_info_name("torch", "2.14.1") / "INSTALLER").write_text("uv\n", encoding="utf-8")
    assert run(site)["requires[torch>nvidia-cuda-runtime]"].fix.startswith("uv pip install ")


# --- installed once --------------------------------------------------------------------------


def test_the_same_distribution_on_two_path_entries(tmp_path: Path) -> None:
    first = sb.torch_2_14_1(tmp_path / "site")
    second = sb.build(tmp_path / "user-site", [sb.Dist("nvidia-cuda-runtime", "13.0.48")])
    found = run(first, second)
    assert set(failures(found)) == {"installed-once[nvidia-cuda-runtime]"}
    assert found["installed-once[nvidia-cuda-runtime]"].details == (
        f"used: nvidia-cuda-runtime 13.0.96 in {first} (nvidia_cuda_runtime-13.0.96.dist-info)",
        f"hidden: nvidia-cuda-runtime 13.0.48 in {second} (nvidia_cuda_runtime-13.0.48.dist-info)",
    )
    assert found["installed-once[nvidia-cuda-runtime]"].message == (
        "nvidia-cuda-runtime is installed 2 times on the path")
    # the other order: the wrong copy is the one Python uses
    reversed_order = run(second, first)
    assert set(failures(reversed_order)) == {
        "installed-once[nvidia-cuda-runtime]", "requires[torch>nvidia-cuda-runtime]"}
    assert reversed_order["requires[torch>nvidia-cuda-runtime]"].message == (
        "nvidia-cuda-runtime 13.0.48 does not satisfy ==13.0.96.*")


def _stale_torch_egg_info(site: Path) -> Path:
    """torch 2.4.1's egg-info (its real requires.txt) left beside the installed torch's dist-info."""
    egg = site / "torch-2.4.1-py3.11.egg-info"
    egg.mkdir()
    (egg / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: torch\nVersion: 2.4.1\n\n", encoding="utf-8")
    (egg / "requires.txt").write_bytes((sb.DATA / "torch-2.4.1-x86_64.requires.txt").read_bytes())
    return egg


def test_a_stale_egg_info_beside_the_dist_info_is_a_note_not_a_second_copy(tmp_path: Path) -> None:
    """Before: ``installed-once[torch]`` failed ("torch is installed 2 times") with `pip uninstall -y torch`
    until pip finds nothing: pip and importlib.metadata see only the dist-info, and the advice removed torch."""
    import importlib.metadata

    site = sb.torch_2_14_1(tmp_path / "site")
    egg = _stale_torch_egg_info(site)
    assert next(d.version for d in importlib.metadata.distributions(path=[str(site)])
            if d.metadata["Name"] == "torch") == "2.14.1"  # what Python itself takes
    found = run(site)
    assert failures(found) == {}
    mark = found["installed-once[all]"]
    assert mark.message == (f"each of the {1 + len(sb.COMMON) + len(sb.CU13)} distributions is installed once; "
                            "1 stale egg-info folder beside the dist-info (a note, not a failure)")
    assert dict(mark.facts)["note"] == (
        f"torch-2.4.1-py3.11.egg-info in {site} is left from an older install of torch: importlib.metadata "
        f"(and so pip) reads torch-2.14.1.dist-info beside it; remove the stale metadata: rm -r '{egg}'")
    # --cuda-deps-strict-notes: the note fails its item, and its fix, pasted, removes the egg-info alone
    from pytest_cudadeps.checks.requires import declared_findings
    from pytest_cudadeps.core.settings import Settings
    from pytest_cudadeps.engine.snapshot import take_snapshot

    strict = {f.name: f for f in declared_findings(take_snapshot(Settings(paths=(str(site),), strict_notes=True),
                                                                 with_linkage=False))}
    assert set(failures(strict)) == {"installed-once[all]"}
    command = strict["installed-once[all]"].fix.partition(": ")[2]
    assert shlex.split(command) == ["rm", "-r", str(egg)]
    subprocess.run(["bash", "-c", command], check=True, timeout=30)  # run as printed
    assert not egg.exists()
    assert (site / "torch-2.14.1.dist-info").is_dir()
    assert run(site)["installed-once[all]"].facts == (
        ("summary", f"each of the {1 + len(sb.COMMON) + len(sb.CU13)} distributions is installed once"),)


def test_an_egg_info_on_another_path_entry_is_still_a_second_copy(tmp_path: Path) -> None:
    first = sb.torch_2_14_1(tmp_path / "site")
    other = tmp_path / "user-site"
    other.mkdir()
    _stale_torch_egg_info(other)
    found = run(first, other)
    assert "installed-once[torch]" in failures(found)
    assert found["installed-once[torch]"].details[1] == f"hidden: torch 2.4.1 in {other} (torch-2.4.1-py3.11.egg-info)"


def test_installed_once_passes_with_a_count(tmp_path: Path) -> None:
    found = run(sb.torch_2_14_1(tmp_path / "site"))
    count = 1 + len(sb.COMMON) + len(sb.CU13)
    assert found["installed-once[all]"].message == f"each of the {count} distributions is installed once"


# --- bad input -------------------------------------------------------------------------------


def _env_with_bad(
    tmp_path: Path, folder: str, write: Callable[[Path], object]
) -> tuple[Environment, dict[str, Finding]]:
    site = sb.torch_2_14_1(tmp_path / "site")
    info = site / folder
    info.mkdir()
    write(info / "METADATA")
    return scan([site]), run(site)


@pytest.mark.parametrize(("content", "problem"), [
    (b"Name: broken\nVersion: 1\nSummary: \xff\xfe\n",
     "cannot be read: not UTF-8 text (invalid start byte at byte 33)"),
    (b"Metadata-Version: 2.1\nName: broken\nthis line is not a header\nVersion: 1\n",
     "garbled headers: line 3 is not a 'Name: value' header ('this line is not a header')"),
    (b"Metadata-Version: 2.1\nVersion: 1\n", "has no Name field"),
    (b"Metadata-Version: 2.1\nName: broken\n", "has no Version field"),
], ids=["not-utf8", "garbled-headers", "no-name", "no-version"])
def test_bad_metadata_becomes_a_failing_finding(tmp_path: Path, content: bytes, problem: str) -> None:
    env, found = _env_with_bad(tmp_path, "broken-1.dist-info", lambda p: p.write_bytes(content))
    meta = tmp_path / "site" / "broken-1.dist-info" / "METADATA"
    assert [(p.path, p.problem) for p in env.problems] == [(meta, problem)]
    assert found["metadata[broken-1.dist-info]"].message == f"{meta}: {problem}"
    assert set(failures(found)) == {"metadata[broken-1.dist-info]"}


def test_metadata_that_is_a_folder_becomes_a_failing_finding(tmp_path: Path) -> None:
    _, found = _env_with_bad(tmp_path, "broken-1.dist-info", lambda p: p.mkdir())
    assert found["metadata[broken-1.dist-info]"].outcome is Outcome.FAIL
    assert "cannot be read: not a regular file (a directory)" in found["metadata[broken-1.dist-info]"].message


@pytest.mark.parametrize(("line", "problem"), [
    ("nvidia-cuda-runtime (>=13", "is not a valid requirement: Expected matching RIGHT_PARENTHESIS"),
    ('nvidia-cuda-runtime; bogus_var == "1"', "is not a valid requirement: Expected a marker variable"),
    ('nvidia-cuda-runtime; platform_machine ~= "x86"', "has a marker that cannot be evaluated: Undefined"),
], ids=["invalid-requirement", "invalid-marker", "marker-not-evaluable"])
def test_a_bad_requirement_line_names_its_file_and_keeps_the_rest(tmp_path: Path, line: str, problem: str) -> None:
    app = sb.Dist("app", "1.0", (line, "filelock"))
    site = sb.build(tmp_path / "site", [app, sb.Dist("filelock", "4.2.11")])
    found = run(site, roots=["app"])
    bad = found["metadata[app-1.0.dist-info]"]
    assert bad.outcome is Outcome.FAIL
    assert bad.message.startswith(f"{site / 'app-1.0.dist-info' / 'METADATA'}: Requires-Dist {line!r} {problem}")
    assert bad.fix == "reinstall app 1.0: pip install --force-reinstall --no-deps 'app==1.0'"
    assert found["requires[app>filelock]"].outcome is Outcome.PASS


def test_egg_info_requires_txt_sections_become_markers(tmp_path: Path) -> None:
    site = tmp_path / "site"
    egg = site / "legacy_app.egg-info"
    egg.mkdir(parents=True)
    (egg / "PKG-INFO").write_text("Metadata-Version: 1.1\nName: legacy-app\nVersion: 0.1\n", encoding="utf-8")
    (egg / "requires.txt").write_text(
        "nvidia-cuda-runtime-cu12==12.6.77\n\n[:sys_platform == \"win32\"]\nnever-here\n\n[docs]\nsphinx\n",
        encoding="utf-8")
    found = run(site)
    assert requires_subjects(found, "legacy-app") == {"nvidia-cuda-runtime-cu12"}
    assert found["requires[legacy-app>nvidia-cuda-runtime-cu12]"].message == "nvidia-cuda-runtime-cu12 is not installed"


# --- the fixes built from names: each through the one quoting function -----------------------------


def test_the_installed_once_fix_is_inert_when_pasted(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from pytest_cudadeps.checks.requires import duplicate_findings

    copies = [SimpleNamespace(name=HOSTILE_NAME, installer="pip", location=tmp_path / where, meta_dir=tmp_path / where)
              for where in ("a", "b")]
    (finding,) = duplicate_findings(SimpleNamespace(by_key={"x": copies}))  # type: ignore[arg-type]
    assert finding.fix.startswith("run `pip uninstall -y 'x$(touch PWNED)'")
    assert_inert(finding.fix, tmp_path)


def test_the_fix_for_a_root_given_on_the_command_line_is_inert_when_pasted(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from pytest_cudadeps.checks.requires import _unknown_root

    finding = _unknown_root(HOSTILE_NAME, SimpleNamespace(env=SimpleNamespace(paths=[tmp_path])))  # type: ignore[arg-type]
    assert finding.fix.endswith(", or drop it from --cuda-deps-root / cuda_deps_root")
    assert_inert(finding.fix, tmp_path)


def test_a_wheel_only_the_roots_own_extra_declares_is_installed_through_that_extra(tmp_path: Path) -> None:
    # plain `pip install cupy-cuda13x`: cupy-cuda13x[ctk] declares cuda-toolkit, CuPy's documented cure is the extra
    from pytest_cudadeps.checks.requires import declared_findings
    from pytest_cudadeps.core.settings import Settings
    from pytest_cudadeps.engine.snapshot import take_snapshot

    cupy = sb.Dist("cupy-cuda13x", "14.2.0", (
        "numpy<2.6,>=2.0", "cuda-pathfinder==1.*,>=1.3.4",
        'cuda-toolkit[cublas,cudart,cufft,curand,cusolver,cusparse,nvrtc]==13.*; extra == "ctk"'), ("ctk", "all"))
    site = sb.build(tmp_path / "site", [cupy, sb.Dist("numpy", "2.3.0"), sb.Dist("cuda-pathfinder", "1.9.1")])
    snapshot = take_snapshot(Settings(paths=(str(site),), roots=("cupy-cuda13x[ctk]",)), with_linkage=False)
    toolkit = next(f for f in declared_findings(snapshot) if f.name == "requires[cupy-cuda13x>cuda-toolkit]")
    assert (toolkit.outcome, toolkit.fix) == (Outcome.FAIL, "pip install 'cupy-cuda13x[ctk]'")


# --- metadata[...]: the fix names the real distribution ------------------------------------------------


@pytest.mark.parametrize(("installer", "command"), [
    ("pip", "pip install --force-reinstall --no-deps 'nvidia-cublas==13.1.1.3'"),
    ("uv", "uv pip install --reinstall --no-deps 'nvidia-cublas==13.1.1.3'"),
])
def test_a_broken_record_is_reinstalled_by_its_distributions_name_and_version(tmp_path: Path, installer: str,
                                                                              command: str) -> None:
    """Before: ``metadata[RECORD]`` (every broken RECORD of the path under one name) with the placeholder
    ``pip install --force-reinstall --no-deps 'NAME==VERSION'``."""
    cublas = sb.Dist("nvidia-cublas", "13.1.1.3", metadata_file=sb.DATA / "nvidia_cublas-13.1.1.3.METADATA",
                     installer=installer)
    site = sb.build(tmp_path / "site", [cublas, sb.Dist("filelock", "4.2.11")])
    info = site / "nvidia_cublas-13.1.1.3.dist-info"
    (info / "RECORD").unlink()
    (info / "RECORD").mkdir()  # what a half-finished copy leaves
    (site / "filelock-4.2.11.dist-info" / "RECORD").write_bytes(b"filelock/a.py,,\n" + b"x" * (130 << 10) + b",,\n")
    found = run(site, roots=["filelock"])
    bad = found["metadata[nvidia_cublas-13.1.1.3.dist-info/RECORD]"]
    assert bad.message == f"{info / 'RECORD'}: cannot be read: not a regular file (a directory)"
    assert bad.fix == f"reinstall nvidia-cublas 13.1.1.3: {command}"
    assert shlex.split(bad.fix.partition(": ")[2])[-1] == "nvidia-cublas==13.1.1.3"
    # one item per broken file: the other distribution's RECORD is an item of its own
    assert found["metadata[filelock-4.2.11.dist-info/RECORD]"].fix == (
        "reinstall filelock 4.2.11: pip install --force-reinstall --no-deps 'filelock==4.2.11'")
    assert not [name for name in found if "NAME==VERSION" in found[name].fix]


def test_an_unreadable_metadata_is_reinstalled_by_its_folders_name_and_version(tmp_path: Path) -> None:
    _, found = _env_with_bad(tmp_path, "my_cuda_app-1.0.post2.dist-info", lambda p: p.write_bytes(b"\xff\xfe"))
    assert found["metadata[my_cuda_app-1.0.post2.dist-info]"].fix == (
        "reinstall my_cuda_app 1.0.post2: pip install --force-reinstall --no-deps 'my_cuda_app==1.0.post2'")
    _, found = _env_with_bad(tmp_path / "egg", "legacy_app-0.3-py3.11.egg-info", lambda p: None)
    assert found["metadata[legacy_app-0.3-py3.11.egg-info]"].fix == (
        "reinstall legacy_app 0.3: pip install --force-reinstall --no-deps 'legacy_app==0.3'")


def test_a_folder_that_names_no_distribution_is_removed_by_a_fix_that_is_inert_when_pasted(tmp_path: Path) -> None:
    folder = f"{HOSTILE_NAME}.dist-info"
    _, found = _env_with_bad(tmp_path, folder, lambda p: p.write_bytes(b"Metadata-Version: 2.1\n"))
    fix = found[f"metadata[{folder}]"].fix
    assert fix.startswith("remove the metadata folder that names no distribution (`rm -r '")
    # the command is run as printed (rm stubbed too): nothing it names runs
    empty = tmp_path / "paste"
    empty.mkdir()
    assert_inert(fix.replace("`rm -r ", "`pip ", 1), empty)


def test_an_editable_install_with_a_broken_record_is_rebuilt_from_its_source(tmp_path: Path) -> None:
    site = sb.build(tmp_path / "site", [sb.Dist("my-ext", "0.1.dev0"), sb.Dist("filelock", "4.2.11")])
    info = site / "my_ext-0.1.dev0.dist-info"
    source = tmp_path / "src dir" / "my-ext"
    (info / "direct_url.json").write_text(
        f'{{"url": "{source.as_uri()}", "dir_info": {{"editable": true}}}}', encoding="utf-8")
    (info / "RECORD").unlink()
    (info / "RECORD").mkdir()
    found = run(site, roots=["filelock"])
    fix = found["metadata[my_ext-0.1.dev0.dist-info/RECORD]"].fix
    assert fix == f"rebuild the editable install from its source: cd '{source}' && pip install --no-build-isolation " \
                  "--no-deps -e ."
    assert "--force-reinstall" not in fix
