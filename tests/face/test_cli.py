"""``python -m pytest_cudadeps``: exit statuses and the verdict first; ``compare`` across reports; drift items;
GitHub Actions annotations and step summary. Run as a user would: in a subprocess, on fake trees."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import pytest_cudadeps
from tests.support import sitebuilder as sb
from tests.support.plugin import RUNTIME_CHAIN, cuda_site, expected_items_2_14_1, failure_section, run_only


def cli(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH: this checkout's package, not the one an editable install of another checkout points at
    return subprocess.run([sys.executable, "-m", "pytest_cudadeps", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(Path(pytest_cudadeps.__file__).parents[1]),
                               **(env or {})}, timeout=300)


def report(pytester: pytest.Pytester, site: Path, name: str, *args: str) -> Path:
    result = cli(pytester.path, f"--cuda-deps-path={site}", "--cuda-deps-no-probes", f"--cuda-deps-json={name}", *args)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    return pytester.path / name


# --- python -m pytest_cudadeps ----------------------------------------------------------------------


def test_healthy_is_status_0_with_the_verdict_first(pytester: pytest.Pytester) -> None:
    result = cli(pytester.path, f"--cuda-deps-path={cuda_site(pytester)}", "--cuda-deps-no-probes")
    assert result.returncode == 0, result.stdout
    assert result.stdout.splitlines()[0] == f"cudadeps: healthy: {len(expected_items_2_14_1())} checks passed"
    assert not (pytester.path / ".pytest_cache").exists()


def test_a_failed_check_is_status_1_naming_the_cause_first(pytester: pytest.Pytester) -> None:
    site = cuda_site(pytester, omit=["nvidia-cuda-runtime", "nvidia-cublas"])
    result = cli(pytester.path, f"--cuda-deps-path={site}", "--cuda-deps-no-probes")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0] == "cudadeps: 2 failed checks from 1 root cause: missing[torch]"
    # the verdict, then the cause, its details and its fix: nothing else
    assert lines[1:] == [
        "[1] missing[torch]: 2 failed checks: torch 2.14.1 is installed without 2 of the distributions it requires "
        "(installed with --no-deps, or by a tool that skipped them)",
        "    missing: torch 2.14.1 > cuda-toolkit[cublas] 13.0.3.0 > nvidia-cublas==13.1.1.3.*",
        "    missing: torch 2.14.1 > cuda-toolkit[cudart] 13.0.3.0 > nvidia-cuda-runtime==13.0.96.*",
        "    fix: pip install 'nvidia-cublas==13.1.1.3.*' 'nvidia-cuda-runtime==13.0.96.*'",
    ]


@pytest.mark.parametrize(("args", "reason"), [
    (["--cuda-deps-timeout=x"], "must be a number of seconds above 0 and at most 3600, not 'x'"),
    (["--no-such-option"], "unrecognized arguments: --no-such-option"),
])
def test_could_not_check_is_status_2(pytester: pytest.Pytester, args: list[str], reason: str) -> None:
    result = cli(pytester.path, *args)
    assert result.returncode == 2
    first = result.stdout.splitlines()[0]
    assert first.startswith("cudadeps: could not check: pytest exit status 4 (USAGE_ERROR): ")
    assert first.endswith(reason)


def test_a_projects_ini_does_not_change_the_check(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\naddopts = --no-such-option\ncuda_deps_root = jax\n")
    result = cli(pytester.path, f"--cuda-deps-path={cuda_site(pytester)}", "--cuda-deps-no-probes")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("args", [["--help"], ["check", "--help"], ["compare", "--help"], ["report", "--help"]])
def test_every_command_has_its_own_help(pytester: pytest.Pytester, args: list[str]) -> None:
    result = cli(pytester.path, *args)
    assert result.returncode == 0, result.stderr
    command = " ".join(args[:-1])
    assert result.stdout.startswith(f"usage: cudadeps {command}".rstrip() + " [-h]"), result.stdout
    assert "pytest" not in result.stdout.split("\n", 1)[0]
    assert "cudadeps: could not check" not in result.stdout
    if args[0] == "check":
        assert "--cuda-deps-path DIR" in result.stdout  # the plugin's options, with their help
        assert "(ini: " not in result.stdout  # no ini file is read here


def test_verbose_adds_the_library_table_and_every_item(pytester: pytest.Pytester) -> None:
    site = cuda_site(pytester, omit=["nvidia-cuda-runtime", "nvidia-cublas"])
    result = cli(pytester.path, "check", "-v", f"--cuda-deps-path={site}", "--cuda-deps-no-probes")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[1:3] == ["root torch 2.14.1 (installed by pip): CUDA 13.0 build",
                          "driver: not checked (--cuda-deps-no-probes)"]
    items = [line for line in lines if line.startswith("  ") and "]: " in line and not line.startswith("    ")]
    assert len(items) == len(expected_items_2_14_1())
    assert "  requires[torch>nvidia-cuda-runtime]: failed, a consequence of missing[torch]: nvidia-cuda-runtime is " \
           "not installed" in lines


def test_pytest_options_pass_through(pytester: pytest.Pytester) -> None:
    site = cuda_site(pytester, omit=["nvidia-cuda-runtime", "nvidia-cublas"])
    result = cli(pytester.path, f"--cuda-deps-path={site}", "--cuda-deps-no-probes", "-k", "not cublas",
                 "--cuda-deps-json=r.json")
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == "cudadeps: 1 failed check from 1 root cause: missing[torch]"
    assert json.loads((pytester.path / "r.json").read_text())["summary"]["failed"] == 1


def test_a_usage_error_of_the_command_is_status_2(pytester: pytest.Pytester) -> None:
    result = cli(pytester.path, "check", "--cuda-deps-timeout")
    assert result.returncode == 2
    assert "--cuda-deps-timeout: expected one argument" in result.stderr


def test_the_console_script_is_the_same_main() -> None:
    import re

    from pytest_cudadeps import cli as module

    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    scripts = re.search(r"^\[project\.scripts\]\n(.*?)\n\n", pyproject, re.M | re.S)
    assert scripts is not None
    assert scripts.group(1).splitlines() == ['cudadeps = "pytest_cudadeps.cli:main"',
                                             'cudadeps-slurm-health = "pytest_cudadeps.slurm:main"']
    assert callable(module.main)


# --- drift ------------------------------------------------------------------------------------------


def test_compare_names_the_odd_host_out(pytester: pytest.Pytester) -> None:
    good = report(pytester, cuda_site(pytester), "a.json")
    (pytester.path / "b.json").write_text(good.read_text())
    broken = sb_site(pytester)
    odd = report(pytester, broken, "c.json")
    result = cli(pytester.path, "compare", "a.json", "b.json", str(odd))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [  # the three reports come from one host: named by their files
        "cudadeps compare: 3 reports, 1 key differ",
        "dist:nvidia-cuda-runtime",
        f"  (absent): 1 host: {odd}  <- odd one out",
        "  13.0.96: 2 hosts: a.json, b.json",
        f"odd one out: {odd} (1 of 1 differences)",
    ]
    same = cli(pytester.path, "compare", "a.json", "b.json")
    assert (same.returncode, same.stdout) == (0, "cudadeps compare: 2 reports, 0 keys differ\n")
    (pytester.path / "bad.json").write_text("{}")
    bad = cli(pytester.path, "compare", "a.json", "bad.json")
    assert bad.returncode == 2
    assert "bad.json is not a pytest-cudadeps report of version 1" in bad.stderr


BAD_REPORTS = {
    "fifo": ("", "not a regular file (a FIFO)"),
    "/dev/zero": ("", "cannot read /dev/zero: not a regular file (a character device)"),
    "no-environment": ('{"version": 1}', "environment is null, not an object"),
    "environment-a-list": ('{"version": 1, "environment": []}', "environment is a list, not an object"),
    "version-true": ('{"version": true, "environment": {}}', "not a pytest-cudadeps report of version 1 (version: True)"),
    "nested-100000-deep": ("[" * 100_000 + "]" * 100_000, "nests deeper than 64 levels"),
}


def bad_report(folder: Path, kind: str) -> str:
    if kind == "/dev/zero":
        return kind
    path = folder / f"{kind}.json"
    if kind == "fifo":
        os.mkfifo(path)  # no writer: Path.read_text waited forever
    else:
        path.write_text(BAD_REPORTS[kind][0])
    return str(path)


@pytest.mark.parametrize("kind", sorted(BAD_REPORTS))
def test_compare_of_a_bad_report_is_status_2_with_a_message(pytester: pytest.Pytester, kind: str) -> None:
    good = report(pytester, cuda_site(pytester), "a.json")
    result = cli(pytester.path, "compare", str(good), bad_report(pytester.path, kind))
    assert (result.returncode, result.stdout) == (2, "")  # 1 would say "the hosts differ"
    assert result.stderr.startswith("cudadeps compare: ")
    assert BAD_REPORTS[kind][1] in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("kind", sorted(BAD_REPORTS))
def test_cuda_deps_compare_of_a_bad_baseline_is_one_failing_item(pytester: pytest.Pytester, kind: str) -> None:
    site = cuda_site(pytester)
    result = run_only(pytester, site, f"--cuda-deps-compare={bad_report(pytester.path, kind)}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # not INTERRUPTED: collection goes on
    section = failure_section(result, "cudadeps::drift[baseline]")
    assert BAD_REPORTS[kind][1] in section[0]
    assert section[-1] == "  fix: give --cuda-deps-compare a report written by --cuda-deps-json"
    result.assert_outcomes(passed=len(expected_items_2_14_1()), failed=1)  # no drift[driver] without a baseline


def sb_site(pytester: pytest.Pytester) -> Path:
    return sb.torch_2_14_1(pytester.path / "other-site", omit=["nvidia-cuda-runtime"])


def test_cuda_deps_compare_fails_one_item_per_difference(pytester: pytest.Pytester) -> None:
    baseline = report(pytester, cuda_site(pytester), "baseline.json")
    data: dict[str, Any] = json.loads(baseline.read_text())
    for dist in data["environment"]["distributions"]:
        if dist["name"] == "nvidia-nccl-cu13":
            dist["version"] = "2.28.9"
    baseline.write_text(json.dumps(data))
    site = pytester.path / "site"
    result = run_only(pytester, site, f"--cuda-deps-compare={baseline}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert failure_section(result, "cudadeps::drift[dist:nvidia-nccl-cu13]") == [
        "dist:nvidia-nccl-cu13: 2.28.9 on the baseline, 2.30.7 here",
        f"  baseline: {data['environment']['host']} ({baseline})",
        "  fix: pip install 'nvidia-nccl-cu13==2.28.9'",
    ]
    result.assert_outcomes(passed=len(expected_items_2_14_1()) + 1, failed=1)  # drift[driver] passes: no probes
    intact = run_only(pytester, site, f"--cuda-deps-compare={pytester.path / 'a-missing.json'}")
    intact.stdout.fnmatch_lines(["*cudadeps::drift[[]baseline]*", "cannot read */a-missing.json*"])


# --- GitHub Actions -------------------------------------------------------------------------------


def test_github_annotations_and_step_summary(pytester: pytest.Pytester) -> None:
    site = cuda_site(pytester, omit=["nvidia-cuda-runtime", "nvidia-cublas"])
    summary = pytester.path / "step-summary.md"
    summary.write_text("earlier step\n")
    result = cli(pytester.path, f"--cuda-deps-path={site}", "--cuda-deps-no-probes",
                 env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)})
    assert result.returncode == 1
    errors = [line for line in result.stdout.splitlines() if line.startswith("::error")]
    assert errors == [
        "::error title=cudadeps%3A missing[torch]::torch 2.14.1 is installed without 2 of the distributions it requires "
        "(installed with --no-deps, or by a tool that skipped them)%0A2 failed checks%0Afix: pip install "
        "'nvidia-cublas==13.1.1.3.*' 'nvidia-cuda-runtime==13.0.96.*'"]
    text = summary.read_text()
    assert text.startswith("earlier step\n### cudadeps: 2 failed checks from 1 root cause\n")
    assert ("| 1 | `missing[torch]`: torch 2.14.1 is installed without 2 of the distributions it requires (installed "
            "with --no-deps, or by a tool that skipped them) | 2 | `pip install 'nvidia-cublas==13.1.1.3.*' "
            "'nvidia-cuda-runtime==13.0.96.*'` |") in text


def test_at_most_ten_annotations(pytester: pytest.Pytester) -> None:
    site = cuda_site(pytester)
    for n in range(12):  # twelve broken METADATA files: twelve causes of their own
        meta = site / f"broken{n:02d}-1.0.dist-info" / "METADATA"
        meta.parent.mkdir()
        meta.write_text("Metadata-Version: 2.1\nVersion: 1.0\n")
    result = cli(pytester.path, f"--cuda-deps-path={site}", "--cuda-deps-no-probes", env={"GITHUB_ACTIONS": "true"})
    assert result.stdout.splitlines()[0] == "cudadeps: 12 failed checks from 12 root causes: metadata[broken00-1.0.dist-info], " \
        "metadata[broken01-1.0.dist-info], metadata[broken02-1.0.dist-info], ..."
    assert len([line for line in result.stdout.splitlines() if line.startswith("::error")]) == 10


def test_no_annotations_outside_github(pytester: pytest.Pytester) -> None:
    site = cuda_site(pytester, omit=["nvidia-cuda-runtime"])
    result = cli(pytester.path, f"--cuda-deps-path={site}", "--cuda-deps-no-probes", env={"GITHUB_ACTIONS": ""})
    assert "::error" not in result.stdout
    assert result.stdout.splitlines()[1:] == [
        "[1] requires[torch>nvidia-cuda-runtime]: 1 failed check: nvidia-cuda-runtime is not installed",
        f"    required by: {RUNTIME_CHAIN}",
        "    installed: nothing of that name on the path",
        "    installer: torch was installed by pip",
        "    fix: pip install 'nvidia-cuda-runtime==13.0.96.*'",
    ]


# --- monitoring -------------------------------------------------------------------------------------

README = Path(__file__).resolve().parents[2] / "README.md"


def npd_rule() -> tuple[list[str], int]:
    """The README's node-problem-detector plugin: the rule's command and its max_output_length."""
    text = README.read_text(encoding="utf-8")
    start = text.index("```json\n", text.index("**node-problem-detector custom plugin**")) + len("```json\n")
    config = json.loads(text[start:text.index("```", start)])
    rule = config["rules"][0]
    return [rule["path"], *rule["args"]], config["pluginConfig"].get("max_output_length", 80)


def run_like_npd(command: list[str], limit: int, cwd: Path) -> tuple[int, str]:
    """As node-problem-detector runs a custom plugin: exec'd in its own process group, stdout read (4 KiB at
    most), whitespace trimmed, cut to max_output_length bytes; stderr only goes to its log."""
    done = subprocess.run(command, cwd=cwd, capture_output=True, timeout=180, start_new_session=True)  # own group, as Setpgid
    return done.returncode, done.stdout[:4096].strip()[:limit].decode("utf-8", "replace")


def test_the_node_problem_detector_recipe_reports_the_verdict_and_its_status(pytester: pytest.Pytester) -> None:
    command, limit = npd_rule()
    assert limit == 80
    messages = {}
    for name, omit, status in (("intact", [], 0), ("no-cublas", ["nvidia-cublas"], 1)):
        site = sb.torch_2_14_1(pytester.path / name, omit=omit)
        here = [arg.replace("/usr/local/bin/python", sys.executable)
                   .replace("--cuda-deps-host-root=/host", "--cuda-deps-host-root=/")
                   .replace("--cuda-deps-path=/host/opt/venv/lib/python3.11/site-packages",
                            f"--cuda-deps-path={site} --cuda-deps-no-probes") for arg in command]
        assert here != command
        code, messages[name] = run_like_npd(here, limit, pytester.path)
        assert code == status, messages[name]
    assert messages["intact"] == f"cudadeps: healthy: {len(expected_items_2_14_1())} checks passed"
    assert messages["no-cublas"] == "cudadeps: 1 failed check from 1 root cause: requires[torch>nvidia-cublas]"


def test_the_prometheus_textfile_holds_the_verdict_and_each_root_cause(pytester: pytest.Pytester) -> None:
    site = sb.torch_2_14_1(pytester.path / "site", omit=["nvidia-cublas"])
    result = cli(pytester.path, f"--cuda-deps-path={site}", "--cuda-deps-no-probes",
                 "--cuda-deps-prometheus=textfile/cudadeps.prom")
    assert result.returncode == 1, result.stdout
    textfile = pytester.path / "textfile" / "cudadeps.prom"
    lines = textfile.read_text().splitlines()
    assert "cudadeps_healthy 0" in lines
    assert 'cudadeps_checks{outcome="failed"} 1' in lines
    assert "cudadeps_root_causes 1" in lines
    assert ('cudadeps_root_cause{cause="requires[torch>nvidia-cublas]",title="nvidia-cublas is not installed"} 1'
            in lines)
    assert [p.name for p in textfile.parent.iterdir()] == ["cudadeps.prom"]
    wrong = cli(pytester.path, f"--cuda-deps-path={site}", "--cuda-deps-prometheus=cudadeps.txt")
    assert wrong.returncode == 2
    assert wrong.stdout.splitlines()[0].endswith(
        "--cuda-deps-prometheus / cuda_deps_prometheus must end in .prom (node_exporter's textfile collector reads "
        "only *.prom files), not 'cudadeps.txt'")


def test_a_fifo_as_the_step_summary_is_refused_not_waited_on(pytester: pytest.Pytester) -> None:
    site = cuda_site(pytester, omit=["nvidia-cuda-runtime"])
    os.mkfifo(pytester.path / "step-summary.md")  # nothing reads it: open(path, "a") waited forever
    result = cli(pytester.path, f"--cuda-deps-path={site}", "--cuda-deps-no-probes",
                 env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(pytester.path / "step-summary.md")})
    assert result.returncode == 1  # the verdict stands: the summary is an extra
    assert (f"cudadeps: cannot append to GITHUB_STEP_SUMMARY {pytester.path / 'step-summary.md'}: "
            "not a regular file (a FIFO)") in result.stdout
