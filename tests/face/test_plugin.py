"""The pytest face of the declared-dependency check, run through ``pytester`` on fake site-packages trees."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from tests.support import sitebuilder as sb
from tests.support.plugin import RUNTIME, RUNTIME_CHAIN, SECURITY, cuda_site, expected_items_2_14_1, failure_section, inner, run_only

DISTS_2_14_1 = 1 + len(sb.COMMON) + len(sb.CU13)


def collected(result: pytest.RunResult) -> list[str]:
    """Node ids printed by ``--co -q``."""
    return [line for line in result.outlines if line.startswith("cudadeps::") or ".py::" in line]


def lit(text: str) -> str:
    """``text`` as an fnmatch pattern (``[`` starts a character class there)."""
    return text.replace("[", "[[]")


# --- items, collection, selection ------------------------------------------------------------


def test_items_appear_in_a_directory_without_test_files(pytester: pytest.Pytester) -> None:
    site = cuda_site(pytester)
    result = run_only(pytester, site, "--co", "-q")
    assert result.ret == pytest.ExitCode.OK
    assert collected(result) == expected_items_2_14_1()
    assert RUNTIME in collected(result)


def test_the_item_list_is_sorted_and_the_same_every_time(pytester: pytest.Pytester) -> None:
    site = cuda_site(pytester, omit=["nvidia-cuda-runtime"], extra=[sb.Dist("my-cuda-app", "1.0", ("nvidia-cufft",))])
    first = collected(run_only(pytester, site, "--co", "-q"))
    second = collected(run_only(pytester, site, "--co", "-q"))
    assert first == second == sorted(first)
    assert "cudadeps::requires[my-cuda-app>nvidia-cufft]" in first


def test_cuda_deps_runs_the_checks_beside_the_users_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user="def test_user():\n    pass\n")
    site = cuda_site(pytester, omit=["nvidia-cuda-runtime"])
    result = inner(pytester, "--cuda-deps", f"--cuda-deps-path={site}", "-v")
    result.assert_outcomes(passed=len(expected_items_2_14_1()) - 1 + 1, failed=1)
    result.stdout.fnmatch_lines([f"{lit(RUNTIME)} FAILED*", "test_user.py::test_user PASSED*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_cuda_deps_only_never_imports_the_users_test_files(pytester: pytest.Pytester) -> None:
    marker = pytester.path / "imported"
    pytester.makepyfile(
        test_boom=f"open({str(marker)!r}, 'w').close()\nraise RuntimeError('boom at import')\n",
        test_user="def test_user():\n    pass\n",
    )
    site = cuda_site(pytester)
    result = run_only(pytester, site)
    result.assert_outcomes(passed=len(expected_items_2_14_1()))
    assert result.ret == pytest.ExitCode.OK
    assert not marker.exists()
    assert "boom" not in result.stdout.str()
    assert "test_user" not in result.stdout.str()


def test_without_the_flag_nothing_changes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user="def test_user():\n    pass\n")
    cuda_site(pytester, omit=["nvidia-cuda-runtime"])
    result = inner(pytester, "-v")
    result.assert_outcomes(passed=1)
    assert "cudadeps" not in result.stdout.str().replace("cudadeps-0", "")  # only the plugin list names it
    assert result.ret == pytest.ExitCode.OK


@pytest.mark.parametrize("ini_file", ["pyproject.toml", "pytest.ini"])
def test_ini_twins(pytester: pytest.Pytester, ini_file: str) -> None:
    pytester.makepyfile(test_boom="raise RuntimeError('boom at import')\n")
    cuda_site(pytester)
    section = "[tool.pytest.ini_options]" if ini_file == "pyproject.toml" else "[pytest]"
    quote = '"' if ini_file == "pyproject.toml" else ""
    settings = {"cuda_deps_only": "true", "cuda_deps_path": f"{quote}site{quote}",
                "cuda_deps_root": f"{quote}nvidia-cusolver{quote}"}
    (pytester.path / ini_file).write_text(
        "\n".join([section, *(f"{k} = {v}" for k, v in settings.items())]) + "\n", encoding="utf-8")
    result = inner(pytester, "--co", "-q")
    assert result.ret == pytest.ExitCode.OK
    assert collected(result) == [
        "cudadeps::installed-once[all]",
        "cudadeps::requires[nvidia-cusolver>nvidia-cublas]",
        "cudadeps::requires[nvidia-cusolver>nvidia-cuda-nvrtc]",
        "cudadeps::requires[nvidia-cusolver>nvidia-cusparse]",
        "cudadeps::requires[nvidia-cusolver>nvidia-nvjitlink]",
        *(f"cudadeps::{name}" for name in SECURITY),
        "cudadeps::toolchain[triton-cache]",
    ]


def test_ini_cuda_deps_adds_the_checks(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user="def test_user():\n    pass\n")
    cuda_site(pytester)
    pytester.makeini("[pytest]\ncuda_deps = true\ncuda_deps_path = site\n")
    result = inner(pytester, "--co", "-q")
    assert collected(result) == [*expected_items_2_14_1(), "test_user.py::test_user"]


def test_cuda_deps_root_is_repeatable(pytester: pytest.Pytester) -> None:
    site = cuda_site(pytester)
    result = run_only(pytester, site, "--cuda-deps-root=nvidia-cufft", "--cuda-deps-root=nvidia-cudnn-cu13",
                      "--co", "-q")
    assert collected(result) == [
        "cudadeps::installed-once[all]",
        "cudadeps::requires[nvidia-cudnn-cu13>nvidia-cublas]",
        "cudadeps::requires[nvidia-cudnn-cu13>nvidia-cuda-nvrtc]",
        "cudadeps::requires[nvidia-cufft>nvidia-nvjitlink]",
        *(f"cudadeps::{name}" for name in SECURITY),
        "cudadeps::toolchain[triton-cache]",  # triton is installed, whatever the roots
    ]


def test_a_root_that_is_not_installed_fails(pytester: pytest.Pytester) -> None:
    site = cuda_site(pytester)
    result = run_only(pytester, site, "--cuda-deps-root=jax")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert failure_section(result, "cudadeps::root[jax]") == [
        "jax was given as a root (--cuda-deps-root) but is not installed",
        f"  searched: {site}",
        "  fix: pip install 'jax', or drop it from --cuda-deps-root / cuda_deps_root",
    ]


def test_keyword_selection(pytester: pytest.Pytester) -> None:
    site = cuda_site(pytester, omit=["nvidia-cuda-runtime"])
    result = run_only(pytester, site, "-k", "cuda-runtime or cudnn")
    result.assert_outcomes(passed=1, failed=1, deselected=len(expected_items_2_14_1()) - 2)


def test_marker_selection(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user="def test_user():\n    pass\n")
    site = cuda_site(pytester)
    only_checks = inner(pytester, "--cuda-deps", f"--cuda-deps-path={site}", "-m", "cudadeps")
    only_checks.assert_outcomes(passed=len(expected_items_2_14_1()), deselected=1)
    only_user = inner(pytester, "--cuda-deps", f"--cuda-deps-path={site}", "-m", "not cudadeps")
    only_user.assert_outcomes(passed=1, deselected=len(expected_items_2_14_1()))


def test_last_failed_reruns_only_the_failed_check(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user="def test_user():\n    pass\n")
    site = cuda_site(pytester, omit=["nvidia-cuda-runtime"])
    first = inner(pytester, "--cuda-deps", f"--cuda-deps-path={site}")
    first.assert_outcomes(passed=len(expected_items_2_14_1()), failed=1)
    second = inner(pytester, "--cuda-deps", f"--cuda-deps-path={site}", "--lf", "-v")
    second.assert_outcomes(failed=1, deselected=len(expected_items_2_14_1()))
    second.stdout.fnmatch_lines(["run-last-failure: rerun previous 1 failure", f"{lit(RUNTIME)} FAILED*"])


def test_junitxml_names_every_check_and_keeps_the_summary(pytester: pytest.Pytester) -> None:
    site = cuda_site(pytester, omit=["nvidia-cuda-runtime"])
    result = run_only(pytester, site, "--junitxml=report.xml")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    cases = {case.get("name"): case for case in ET.parse(pytester.path / "report.xml").iter("testcase")}
    assert {f"cudadeps::{name}" for name in cases} == set(expected_items_2_14_1()) | {RUNTIME}
    assert {case.get("classname") for case in cases.values()} == {"cudadeps"}
    failure = cases["requires[torch>nvidia-cuda-runtime]"].find("failure")
    assert failure is not None
    assert failure.get("message", "").startswith("nvidia-cuda-runtime is not installed")
    cublas = cases["requires[torch>nvidia-cublas]"]
    summary = {p.get("name"): p.get("value") for p in cublas.iter("property")}["summary"]
    assert summary == ("nvidia-cublas 13.1.1.3 satisfies ==13.1.1.3.* "
                       "(torch 2.14.1 > cuda-toolkit[cublas] 13.0.3.0 > nvidia-cublas==13.1.1.3.*)")


def test_xdist_workers_collect_the_same_items(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(test_user="def test_user():\n    pass\n")
    site = cuda_site(pytester, omit=["nvidia-cuda-runtime"])
    result = pytester.runpytest_subprocess("--cuda-deps", "--cuda-deps-no-probes", f"--cuda-deps-path={site}", "-n", "2",
                                           "-p", "no:cacheprovider")
    result.assert_outcomes(passed=len(expected_items_2_14_1()), failed=1)
    assert "Different tests were collected" not in result.stdout.str() + result.stderr.str()
    # xdist >= 3.3 announces its workers as "created: 2/2 workers", older ones as "gw0 I / gw1 I"
    result.stdout.re_match_lines([r"(created: 2/2 workers|gw0 I / gw1 I)$", re.escape(f"FAILED {RUNTIME}")])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


# --- reporting -------------------------------------------------------------------------------


def test_a_failure_is_a_few_lines_without_a_traceback(pytester: pytest.Pytester) -> None:
    site = cuda_site(pytester, omit=["nvidia-cuda-runtime"])
    result = run_only(pytester, site)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert failure_section(result, RUNTIME) == [
        "nvidia-cuda-runtime is not installed",
        f"  required by: {RUNTIME_CHAIN}",
        "  installed: nothing of that name on the path",
        "  installer: torch was installed by pip",
        "  fix: pip install 'nvidia-cuda-runtime==13.0.96.*'",
    ]
    text = result.stdout.str()
    assert "Traceback" not in text
    assert "CudaDepsFailure" not in text
    assert ".py:" not in text


def test_verbose_shows_the_summary_beside_passed(pytester: pytest.Pytester) -> None:
    site = cuda_site(pytester)
    result = run_only(pytester, site, "-v")
    result.stdout.fnmatch_lines([
        lit(f"cudadeps::installed-once[all] PASSED  each of the {DISTS_2_14_1} distributions is installed once") + "*",
        lit(f"{RUNTIME} PASSED  nvidia-cuda-runtime 13.0.96 satisfies ==13.0.96.* ({RUNTIME_CHAIN})") + "*",
    ])
    assert result.ret == pytest.ExitCode.OK


def test_short_summary_names_passed_items_plainly(pytester: pytest.Pytester) -> None:
    site = cuda_site(pytester)
    result = run_only(pytester, site, "-rA")
    result.stdout.fnmatch_lines([lit("PASSED cudadeps::installed-once[all]"), lit(f"PASSED {RUNTIME}")])
    assert result.ret == pytest.ExitCode.OK


def test_cpu_torch_is_skipped_with_the_reason(pytester: pytest.Pytester) -> None:
    site = sb.torch_cpu(pytester.path / "site")
    result = run_only(pytester, site, "-rs")
    # 9 requirements (7 of torch, markupsafe, mpmath), installed-once and the 4 security items pass; the build skips
    result.assert_outcomes(passed=14, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED [[]1] *torch 2.13.0+cpu is a CPU-only build*"])
    assert result.ret == pytest.ExitCode.OK


def test_no_roots_is_a_skip_with_the_reason(pytester: pytest.Pytester) -> None:
    site = sb.build(pytester.path / "site", [sb.Dist("filelock", "4.2.11")])
    result = run_only(pytester, site, "-rs")
    result.assert_outcomes(passed=1 + len(SECURITY), skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED [[]1] *no torch and no other distribution that requires an nvidia-* "
                                 "or cuda-* distribution is installed"])
    assert result.ret == pytest.ExitCode.OK


# --- bad input: a failing item, exit status 1, never an INTERNALERROR ----------------------------


BAD_METADATA = {
    "metadata-is-a-folder": (None, "cannot be read: not a regular file (a directory)"),
    "not-utf8": (b"Metadata-Version: 2.1\nName: broken\nVersion: 1.0\nSummary: \xff\n", "cannot be read: not UTF-8 text"),
    "garbled-headers": (b"Metadata-Version: 2.1\nName: broken\nno colon here\nVersion: 1.0\n", "garbled headers"),
    "no-name": (b"Metadata-Version: 2.1\nVersion: 1.0\n", "has no Name field"),
    "no-version": (b"Metadata-Version: 2.1\nName: broken\n", "has no Version field"),
}


@pytest.mark.parametrize("case", sorted(BAD_METADATA))
def test_unusable_metadata_is_a_failing_item(pytester: pytest.Pytester, case: str) -> None:
    content, problem = BAD_METADATA[case]
    site = cuda_site(pytester)
    meta = site / "broken-1.0.dist-info" / "METADATA"
    meta.parent.mkdir()
    if content is None:
        meta.mkdir()
    else:
        meta.write_bytes(content)
    result = run_only(pytester, site)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=len(expected_items_2_14_1()), failed=1)
    section = failure_section(result, "cudadeps::metadata[broken-1.0.dist-info]")
    assert section[0].startswith(f"{meta}: {problem}")
    assert section[-1] == "  fix: reinstall broken 1.0: pip install --force-reinstall --no-deps 'broken==1.0'"
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert "Traceback" not in result.stdout.str()


@pytest.mark.parametrize(("line", "problem"), [
    ("nvidia-cublas (>=13", "is not a valid requirement: Expected matching RIGHT_PARENTHESIS"),
    ('nvidia-cublas; os_name == "posix" and', "is not a valid requirement: Expected a marker variable"),
    ('nvidia-cublas; platform_machine ~= "x86"', "has a marker that cannot be evaluated"),
], ids=["invalid-requirement", "invalid-marker", "marker-not-evaluable"])
def test_a_bad_requirement_is_a_failing_item(pytester: pytest.Pytester, line: str, problem: str) -> None:
    app = sb.Dist("my-cuda-app", "1.0", ("nvidia-cufft", line))
    site = cuda_site(pytester, extra=[app])
    result = run_only(pytester, site, "-rA")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    # + requires[my-cuda-app>nvidia-cufft] and [>nvidia-nvjitlink]; + shared[...] of both: torch asks for them too
    result.assert_outcomes(passed=len(expected_items_2_14_1()) + 4, failed=1)
    result.stdout.fnmatch_lines([lit("PASSED cudadeps::shared[nvidia-cufft]")])
    section = failure_section(result, "cudadeps::metadata[my_cuda_app-1.0.dist-info]")
    meta = site / "my_cuda_app-1.0.dist-info" / "METADATA"
    assert section[0].startswith(f"{meta}: Requires-Dist {line!r} {problem}")
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_an_extra_the_target_lacks_is_a_failing_item(pytester: pytest.Pytester) -> None:
    real = (sb.DATA / "cuda_toolkit-13.0.3.0.METADATA").read_text(encoding="utf-8").splitlines()
    older = pytester.path / "cuda_toolkit.METADATA"
    older.write_text("\n".join(line for line in real if "cudart" not in line) + "\n", encoding="utf-8")
    toolkit = sb.Dist("cuda-toolkit", "13.0.3.0", metadata_file=older)
    site = cuda_site(pytester, omit=["cuda-toolkit"], extra=[toolkit])
    result = run_only(pytester, site)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    section = failure_section(result, "cudadeps::requires[torch>cuda-toolkit]")
    assert section[0] == "cuda-toolkit 13.0.3.0 does not provide the extra cudart"
    assert section[1].startswith("  required by: torch 2.14.1 > cuda-toolkit[cublas,cudart,")
    assert section[2].startswith(f"  installed: cuda-toolkit 13.0.3.0 in {site} (cuda_toolkit-13.0.3.0.dist-info)")
    assert section[3] == "  installer: torch was installed by pip"
    assert section[4].startswith("  fix: pip install 'cuda-toolkit[cublas,cudart,")
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
