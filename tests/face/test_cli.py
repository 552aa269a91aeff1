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

from tests.support import sitebuilder as sb
from tests.support.plugin import RUNTIME_CHAIN, cuda_site, expected_items_2_14_1, failure_section, run_only


def cli(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest_cudadeps", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


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
    assert scripts.group(1) == 'cudadeps = "pytest_cudadeps.cli:main"'
    assert callable(module.main)


# --- drift ------------------------------------------------------------------------------------------


def test_compare_names_the_odd_host_out(pytester: pytest.Pytester) -> None:
    good = report(pytester, cuda_site(pytester), "a.json")
    (pytester.path / "b.json").write_text(good.read_text())
    broken = sb_site(pytester)
    odd = report(pytester, broken, "c.json")
    result = cli(pytester.path, "compare", "a.json", "b.json", str(odd))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "cudadeps compare: 3 reports, 1 key differ",
        "dist:nvidia-cuda-runtime",
        "  13.0.96: a.json, b.json",
        f"  (absent): {odd}  <- odd one out",
        f"odd one out: {odd} (1 of 1 differences)",
    ]
    same = cli(pytester.path, "compare", "a.json", "b.json")
    assert (same.returncode, same.stdout) == (0, "cudadeps compare: 2 reports, 0 keys differ\n")
    (pytester.path / "bad.json").write_text("{}")
    bad = cli(pytester.path, "compare", "a.json", "bad.json")
    assert bad.returncode == 2
    assert "bad.json is not a pytest-cudadeps report of version 1" in bad.stderr


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
