"""Root causes, the summary section, the JSON report and the ``cuda`` marker, through ``pytester`` on fake trees."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast
from xml.etree import ElementTree

import jsonschema
import pytest

from pytest_cudadeps.engine.snapshot import Root, Snapshot
from pytest_cudadeps.report.causes import install_all, merge_specs
from pytest_cudadeps.report.document import Library, schema
from pytest_cudadeps.report.summary import _library_counts, _library_lines, _root_lines
from tests.support import sitebuilder as sb
from tests.support.plugin import RUNTIME, cuda_site, expected_items_2_14_1, failure_section, inner, run_only

CUBLAS = "cudadeps::requires[torch>nvidia-cublas]"
FIX_BOTH = "pip install 'nvidia-cublas==13.1.1.3.*' 'nvidia-cuda-runtime==13.0.96.*'"


def summary(result: pytest.RunResult) -> list[str]:
    """The lines of the ``cudadeps summary`` section, up to pytest's final count."""
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if line.startswith("=") and " cudadeps summary " in line)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("="))
    return lines[start + 1:end]


def load_report(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.validate(data, schema())
    return data


# --- the causes' pieces ----------------------------------------------------------------------------


def test_merge_specs_unites_extras_and_joins_specifiers() -> None:
    assert merge_specs(["cuda-toolkit[cudart]==13.0.*", "nvidia-nccl-cu13", "cuda-toolkit[cublas]==13.0.*",
                        "nvidia-nccl-cu13>=2"]) == ["cuda-toolkit[cublas,cudart]==13.0.*", "nvidia-nccl-cu13>=2"]


@pytest.mark.parametrize(("installer", "command"), [
    ("pip", "pip install 'a==1' 'b[x]>=2'"),
    ("uv", "uv pip install 'a==1' 'b[x]>=2'"),
    ("", "pip install 'a==1' 'b[x]>=2'"),
])
def test_one_install_command_for_all_specs(installer: str, command: str) -> None:
    assert install_all(installer, ["a==1", "b[x]>=2"]) == command


# --- root causes and the summary -------------------------------------------------------------------


def test_two_missing_wheels_are_one_root_cause_with_one_fix(pytester: pytest.Pytester) -> None:
    site = cuda_site(pytester, omit=["nvidia-cuda-runtime", "nvidia-cublas"])
    result = run_only(pytester, site)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    # the first item of the cause shows it whole; the other is counted as its consequence, not printed
    assert failure_section(result, CUBLAS) == [
        "nvidia-cublas is not installed",
        "root cause missing[torch]: torch 2.14.1 is installed without 2 of the distributions it requires "
        "(installed with --no-deps, or by a tool that skipped them)",
        "  missing: torch 2.14.1 > cuda-toolkit[cublas] 13.0.3.0 > nvidia-cublas==13.1.1.3.*",
        "  missing: torch 2.14.1 > cuda-toolkit[cudart] 13.0.3.0 > nvidia-cuda-runtime==13.0.96.*",
        f"  fix: {FIX_BOTH}",
    ]
    assert f"_ {RUNTIME} _" not in result.stdout.str()
    # the short summary holds the head alone (pytest 8.0 leaves out the " - message" part)
    assert [line.split(" - ")[0] for line in result.outlines if line.startswith("FAILED ")] == [f"FAILED {CUBLAS}"]
    lines = summary(result)
    assert lines[-3:] == [  # the cause's details are in its item's text: not printed twice
        "cudadeps: 2 failed checks from 1 root cause",
        "[1] missing[torch]: 2 failed checks: torch 2.14.1 is installed without 2 of the distributions it "
        "requires (installed with --no-deps, or by a tool that skipped them)",
        f"    fix: {FIX_BOTH}",
    ]
    assert result.outlines[-1].startswith("=")
    assert f"1 failed, {len(expected_items_2_14_1()) - 2} passed, 1 consequence in" in result.outlines[-1]


def test_under_tb_no_the_summary_holds_the_causes_details(pytester: pytest.Pytester) -> None:
    result = run_only(pytester, cuda_site(pytester, omit=["nvidia-cuda-runtime", "nvidia-cublas"]), "--tb=no")
    assert summary(result)[-3:-1] == [
        "    missing: torch 2.14.1 > cuda-toolkit[cublas] 13.0.3.0 > nvidia-cublas==13.1.1.3.*",
        "    missing: torch 2.14.1 > cuda-toolkit[cudart] 13.0.3.0 > nvidia-cuda-runtime==13.0.96.*",
    ]


def test_consequences_are_failures_for_junit_and_the_exit_status(pytester: pytest.Pytester) -> None:
    site = cuda_site(pytester, omit=["nvidia-cuda-runtime", "nvidia-cublas", "nvidia-cufft"])
    result = run_only(pytester, site, "--junitxml=junit.xml", "-v")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    suite = ElementTree.parse(pytester.path / "junit.xml").getroot()[0]
    assert suite.attrib["failures"] == "3"
    failures = {case.attrib["name"]: case.find("failure") for case in suite.iter("testcase")}
    assert [name for name, failure in failures.items() if failure is not None] == [
        "requires[torch>nvidia-cublas]", "requires[torch>nvidia-cuda-runtime]", "requires[torch>nvidia-cufft]"]
    # -v lists every item: a consequence with its cause and what it found
    result.stdout.fnmatch_lines([
        "cudadeps::requires[[]torch>nvidia-cuda-runtime[]] CONSEQUENCE of missing[[]torch[]]: nvidia-cuda-runtime is not "
        "installed*",
        "cudadeps::requires[[]torch>nvidia-cufft[]] CONSEQUENCE of missing[[]torch[]]: nvidia-cufft is not installed*",
    ])
    assert "1 failed" in result.outlines[-1]
    assert "2 consequences" in result.outlines[-1]


def test_the_head_is_the_first_selected_item_of_its_cause(pytester: pytest.Pytester) -> None:
    site = cuda_site(pytester, omit=["nvidia-cuda-runtime", "nvidia-cublas", "nvidia-cufft"])
    result = run_only(pytester, site, "-k", "not cublas")
    assert failure_section(result, RUNTIME)[0] == "nvidia-cuda-runtime is not installed"
    assert "1 failed" in result.outlines[-1]
    assert "1 consequence " in result.outlines[-1]


def test_under_xdist_the_head_is_the_same_in_every_worker(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    site = cuda_site(pytester, omit=["nvidia-cuda-runtime", "nvidia-cublas", "nvidia-cufft"])
    result = pytester.runpytest_subprocess("--cuda-deps-only", "--cuda-deps-no-probes", f"--cuda-deps-path={site}",
                                           "-n", "2", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    # the short summary holds the head alone (pytest 8.0 leaves out the " - message" part)
    assert [line.split(" - ")[0] for line in result.outlines if line.startswith("FAILED ")] == [f"FAILED {CUBLAS}"]
    assert "1 failed" in result.outlines[-1]
    assert "2 consequences" in result.outlines[-1]


def test_the_cause_of_many_missing_wheels_is_made_once(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """Made once per root, not once per missing wheel: 20,000 missing took 20,000 x 20,000 steps."""
    from pytest_cudadeps.report import causes as causes_module

    calls: list[int] = []
    merge = causes_module.merge_specs

    def counted(specs: Any) -> list[str]:
        calls.append(1)
        return merge(specs)

    monkeypatch.setattr(causes_module, "merge_specs", counted)
    run_only(pytester, cuda_site(pytester, omit=["nvidia-cuda-runtime", "nvidia-cublas", "nvidia-cufft"]))
    assert len(calls) == 1


RECORD_CAUSES = """
import json
import os
import stat
seen = []

def pytest_runtest_logreport(report):
    data = getattr(report, "cudadeps", None)
    if report.when == "call" and data and data["finding"]["outcome"] == "fail":
        seen.append(data["cause"]["id"] if data["cause"] else None)

def pytest_unconfigure(config):
    with open("causes.json", "w") as out:
        json.dump(seen, out)
"""


def test_a_cause_travels_once_with_the_first_item_it_explains(pytester: pytest.Pytester) -> None:
    """A root without 20,000 wheels is one cause of 20,000 items: a copy of it in every item's report was 3 GB."""
    pytester.makeconftest(RECORD_CAUSES)
    result = run_only(pytester, cuda_site(pytester, omit=["nvidia-cuda-runtime", "nvidia-cublas"]))
    assert json.loads((pytester.path / "causes.json").read_text()) == ["missing[torch]", None]
    assert summary(result)[-2].startswith("[1] missing[torch]: 2 failed checks: ")  # the summary has it still


def test_under_xdist_each_worker_sends_the_causes_its_items_meet(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    site = cuda_site(pytester, omit=["nvidia-cuda-runtime", "nvidia-cublas"])
    result = pytester.runpytest_subprocess("--cuda-deps-only", "--cuda-deps-no-probes", f"--cuda-deps-path={site}",
                                           "-n", "2", "-p", "no:cacheprovider", "--dist=each")
    # --dist=each: both workers run both items, and each sends the cause with its first
    assert "[1] missing[torch]: 4 failed checks: torch 2.14.1 is installed without 2 of the distributions" \
        in result.stdout.str()
    assert summary(result)[-1] == f"    fix: {FIX_BOTH}"


def test_a_single_cause_prints_its_whole_text_and_its_fix_last(pytester: pytest.Pytester) -> None:
    site = cuda_site(pytester, omit=["nvidia-cuda-runtime"])
    result = run_only(pytester, site, "--cuda-deps-root=torch", "--cuda-deps-root=nvidia-cusolver")
    assert failure_section(result, RUNTIME)[0] == "nvidia-cuda-runtime is not installed"  # the cause itself: whole
    lines = summary(result)
    assert lines[0] == "root torch 2.14.1 (installed by pip): CUDA 13.0 build"
    assert lines[1] == "also checked, as CUDA wheels that require others: nvidia-cusolver 12.0.4.66"
    assert lines[2] == "driver: not checked (--cuda-deps-no-probes)"
    assert lines[-3:] == [
        "cudadeps: 1 failed check from 1 root cause",
        "[1] requires[torch>nvidia-cuda-runtime]: 1 failed check: nvidia-cuda-runtime is not installed",
        "    fix: pip install 'nvidia-cuda-runtime==13.0.96.*'",
    ]
    assert all(len(line) <= 80 for line in lines[:-2]), lines


def test_the_library_table_names_only_the_folders_its_libraries_lie_under(tmp_path: Path) -> None:
    """Run without --cuda-deps-path, the search path holds the standard library's folders too: they hold no library."""
    site = tmp_path / "site-packages"
    paths = (tmp_path / "python3.11", tmp_path / "lib-dynload", site, tmp_path / "work")
    snapshot = cast(Snapshot, SimpleNamespace(env=SimpleNamespace(paths=paths)))
    found = [Library("torch", "libcudart.so.13", str(site / "nvidia/cu13/lib/libcudart.so.13"), "nvidia-cuda-runtime 13.0.96",
                     "DT_RPATH of libtorch_cuda.so", "ok"),
             Library("torch", "libcuda.so.1", "/usr/lib/x86_64-linux-gnu/libcuda.so.1", None, "ld.so.cache", "ok")]
    lines = [text for text, _ in _library_lines(snapshot, found, 120)]
    assert lines[0] == "CUDA libraries (folders under site-packages/ or absolute):"
    assert lines[1].split()[-1] == "nvidia/cu13/lib"
    assert lines[2].split()[-1] == "/usr/lib/x86_64-linux-gnu"


def test_the_library_table_of_absolute_folders_only_says_so(tmp_path: Path) -> None:
    """The seed's state: no library lies under site-packages; the header once read "folders under // or absolute"."""
    snapshot = cast(Snapshot, SimpleNamespace(env=SimpleNamespace(paths=(tmp_path / "site-packages",))))
    found = [Library("torch", "libcudart.so.13", "/usr/local/cuda-13.0/lib/libcudart.so.13", None, "ld.so.cache",
                     "failed"),
             Library("torch", "libcublas.so.13", None, None, "not found", "not found")]
    lines = [text for text, _ in _library_lines(snapshot, found, 80)]
    assert lines == ["CUDA libraries:",
                     "  libcudart.so.13 failed    - /usr/local/cuda-13.0/lib",
                     "  libcublas.so.13 not found - -"]


def test_the_library_table_names_the_root_when_several_roots_need_libraries(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    snapshot = cast(Snapshot, SimpleNamespace(env=SimpleNamespace(paths=(site,))))
    found = [Library("cupy-cuda13x", "libcufft.so.12", None, None, "not found", "not found"),
             Library("nvidia-cufft", "libcufft.so.12", str(site / "nvidia/cu13/lib/libcufft.so.12"),
                     "nvidia-cufft 12.5.0.14", "DT_RUNPATH", "ok")]
    assert [text for text, _ in _library_lines(snapshot, found, 80)] == [
        "CUDA libraries (folders under site-packages/ or absolute):",
        "  cupy-cuda13x:",
        "    libcufft.so.12 not found -                      -",
        "  nvidia-cufft:",
        "    libcufft.so.12 ok        nvidia-cufft 12.5.0.14 nvidia/cu13/lib",
    ]


def test_cuda_wheels_that_are_roots_share_a_line_after_the_frameworks() -> None:
    def root(key: str, version: str) -> Root:
        return cast(Root, SimpleNamespace(key=key, cuda=None, build=None, dist=_Dist(key, version)))

    lines = _root_lines([root("cuda-toolkit", "13.5.0"), root("cupy-cuda13x", "14.2.0"), root("nvidia-cufft", "12.5.0.14")])
    assert lines == ["root cupy-cuda13x 14.2.0 (installed by pip)",
                     "also checked, as CUDA wheels that require others: cuda-toolkit 13.5.0,",
                     "  nvidia-cufft 12.5.0.14"]  # within 80 columns
    assert _root_lines([root("nvidia-cufft", "12.5.0.14")]) == ["root nvidia-cufft 12.5.0.14 (installed by pip)"]


class _Dist:
    def __init__(self, name: str, version: str) -> None:
        self.name, self.version, self.installer = name, version, "pip"

    def __str__(self) -> str:
        return f"{self.name} {self.version}"


def test_the_default_summary_counts_the_libraries(pytester: pytest.Pytester) -> None:
    result = run_only(pytester, cuda_site(pytester), "--cuda-deps-root=torch")
    assert "CUDA libraries" not in "\n".join(summary(result))  # the fake tree's torch has no ELF files
    counted = _library_counts([Library("torch", "libcudart.so.13", None, None, "not found", "not found"),
                               Library("torch", "libcublas.so.13", "/x/libcublas.so.13", "o", "v", "ok"),
                               Library("torch", "libcuda.so.1", None, None, "not found", "skipped")])
    assert [text for text, _ in counted] == ["CUDA libraries: 1 not found, 1 ok, 1 skipped (-v lists each)"]


def test_an_intact_tree_is_healthy(pytester: pytest.Pytester) -> None:
    result = run_only(pytester, cuda_site(pytester))
    assert result.ret == pytest.ExitCode.OK
    assert summary(result)[-1] == f"cudadeps: healthy: {len(expected_items_2_14_1())} checks passed"


def test_very_verbose_prints_a_consequence_whole_with_its_cause(pytester: pytest.Pytester) -> None:
    site = cuda_site(pytester, omit=["nvidia-cuda-runtime", "nvidia-cublas"])
    result = run_only(pytester, site, "-vv")
    assert "2 failed" in result.outlines[-1]
    assert failure_section(result, RUNTIME)[-2:] == [
        "  root cause: missing[torch]",
        "  fix: pip install 'nvidia-cuda-runtime==13.0.96.*'",
    ]


def test_without_the_checks_there_is_no_summary(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user="def test_user():\n    pass\n")
    result = inner(pytester)
    assert "cudadeps" not in result.stdout.str().replace("cudadeps-0", "")


# --- the JSON report --------------------------------------------------------------------------------


def test_json_report_is_valid_and_holds_every_finding(pytester: pytest.Pytester) -> None:
    site = cuda_site(pytester, omit=["nvidia-cuda-runtime", "nvidia-cublas"])
    result = run_only(pytester, site, "--cuda-deps-json=out/report.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    data = load_report(pytester.path / "out" / "report.json")
    assert data["version"] == 1
    assert data["verdict"] == "failed"
    assert data["summary"] == {"passed": len(expected_items_2_14_1()) - 2, "failed": 2, "skipped": 0, "causes": 1,
                               "line": "cudadeps: 2 failed checks from 1 root cause"}
    assert [c["id"] for c in data["causes"]] == ["missing[torch]"]
    assert data["causes"][0]["fix"] == FIX_BOTH
    assert data["causes"][0]["findings"] == ["requires[torch>nvidia-cublas]", "requires[torch>nvidia-cuda-runtime]"]
    runtime = next(f for f in data["findings"] if f["id"] == "requires[torch>nvidia-cuda-runtime]")
    assert runtime["outcome"] == "fail"
    assert runtime["cause"] == "missing[torch]"
    assert runtime["fix"] == "pip install 'nvidia-cuda-runtime==13.0.96.*'"
    env = data["environment"]
    assert env["roots"][0]["name"] == "torch"
    assert env["roots"][0]["cuda"] == "13.0"
    assert env["torch_cuda"] == "13.0"
    assert env["driver"]["checked"] is False
    assert {"name": "torch", "version": "2.14.1", "installer": "pip", "location": str(site)} in env["distributions"]
    assert f"report: {pytester.path / 'out' / 'report.json'}" in result.stdout.str()
    assert [p.name for p in (pytester.path / "out").iterdir()] == ["report.json"]  # no temporary file left


def test_json_report_under_xdist_is_written_once_by_the_controller(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(test_user="def test_user():\n    pass\n")
    site = cuda_site(pytester, omit=["nvidia-cuda-runtime"])
    result = pytester.runpytest_subprocess("--cuda-deps", "--cuda-deps-no-probes", f"--cuda-deps-path={site}",
                                           "-n", "2", "-p", "no:cacheprovider", "--cuda-deps-json=report.json")
    result.assert_outcomes(passed=len(expected_items_2_14_1()), failed=1)
    data = load_report(pytester.path / "report.json")
    # the findings of both workers, each once; the user's test is not a finding
    assert sorted(f"cudadeps::{f['id']}" for f in data["findings"]) == expected_items_2_14_1()
    assert data["summary"]["line"] == "cudadeps: 1 failed check from 1 root cause"
    assert result.stdout.str().count("cudadeps summary") == 1
    assert summary(result)[-2] == "[1] requires[torch>nvidia-cuda-runtime]: 1 failed check: nvidia-cuda-runtime is not installed"


def test_a_report_that_cannot_be_written_is_an_error(pytester: pytest.Pytester) -> None:
    (pytester.path / "file").write_text("")
    result = run_only(pytester, cuda_site(pytester), "--cuda-deps-json=file/report.json")
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    assert f"cudadeps: cannot write {pytester.path / 'file' / 'report.json'}" in result.stdout.str()


def test_a_report_to_a_device_or_a_fifo_nobody_reads_leaves_it_in_place(pytester: pytest.Pytester) -> None:
    (pytester.path / "null").symlink_to("/dev/null")
    site = cuda_site(pytester)
    written = run_only(pytester, site, f"--cuda-deps-json={pytester.path / 'null'}")
    assert written.ret == pytest.ExitCode.OK
    assert os.readlink(pytester.path / "null") == "/dev/null"
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)  # before: a rename over the link made a regular file of it
    os.mkfifo(pytester.path / "fifo")
    refused = run_only(pytester, site, f"--cuda-deps-json={pytester.path / 'fifo'}")
    assert refused.ret == pytest.ExitCode.INTERNAL_ERROR
    assert f"cudadeps: cannot write {pytester.path / 'fifo'}: is a FIFO that nothing reads" in refused.stdout.str()
    assert stat.S_ISFIFO(os.lstat(pytester.path / "fifo").st_mode)


def test_the_schema_refuses_what_it_should() -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"version": 2}, schema())


# --- the user's own tests ---------------------------------------------------------------------------

USER_TESTS = """
import pytest

@pytest.mark.cuda
def test_on_the_gpu():
    pass

def test_elsewhere():
    pass

def test_env(cuda_env):
    print("torch_cuda", cuda_env.torch_cuda, "healthy", cuda_env.healthy)
    print("libcudart", cuda_env.libraries.get("libcudart.so.13"))
"""


def test_a_cuda_test_is_skipped_with_the_root_cause(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    site = cuda_site(pytester, omit=["nvidia-cuda-runtime"])
    result = inner(pytester, "--cuda-deps", f"--cuda-deps-path={site}", "-rs", "-s", "-k", "not cudadeps")
    result.assert_outcomes(passed=2, skipped=1, deselected=len(expected_items_2_14_1()))
    result.stdout.fnmatch_lines([
        "*torch_cuda 13.0 healthy False",
        "SKIPPED [[]1] test_user.py:*: cudadeps: requires[[]torch>nvidia-cuda-runtime]: nvidia-cuda-runtime is not "
        "installed; fix: pip install 'nvidia-cuda-runtime==13.0.96.*'",
    ])


def test_a_cuda_test_fails_under_require_gpu(pytester: pytest.Pytester) -> None:
    """An error at setup, so that none of the test's own fixtures (a model moved to the GPU) runs."""
    pytester.makepyfile(test_user=USER_TESTS)
    site = cuda_site(pytester, omit=["nvidia-cuda-runtime"])
    result = inner(pytester, "--cuda-deps", "--cuda-deps-require-gpu", f"--cuda-deps-path={site}", "-k", "on_the_gpu")
    result.assert_outcomes(errors=1, deselected=len(expected_items_2_14_1()) + 2)
    result.stdout.fnmatch_lines(["*ERROR at setup of test_on_the_gpu*",
                                 "cudadeps: requires[[]torch>nvidia-cuda-runtime]: nvidia-cuda-runtime is not installed; *"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_a_cuda_test_runs_where_the_environment_is_intact(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    site = cuda_site(pytester)
    result = inner(pytester, "--cuda-deps", f"--cuda-deps-path={site}", "-s", "-k", "not cudadeps")
    result.assert_outcomes(passed=3, deselected=len(expected_items_2_14_1()))
    result.stdout.fnmatch_lines(["*torch_cuda 13.0 healthy True"])


def test_the_cuda_marker_is_registered_without_the_checks(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user="import pytest\n\n@pytest.mark.cuda\ndef test_gpu():\n    pass\n")
    result = inner(pytester, "--strict-markers")
    result.assert_outcomes(passed=1)


def test_the_cpu_tree_skips_cuda_tests_with_nothing_to_blame(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    site = sb.torch_cpu(pytester.path / "site")
    result = inner(pytester, "--cuda-deps", f"--cuda-deps-path={site}", "-k", "on_the_gpu")
    # static checks only, and a CPU build fails nothing: the test runs (the smoke probe would skip it)
    result.assert_outcomes(passed=1, deselected=17)  # 12 checks, 4 security checks, the other user test
