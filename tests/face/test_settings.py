"""Options are checked when pytest configures: a bad one is a usage error (exit status 4) with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_cudadeps.core.settings import MAX_TIMEOUT, parse_timeout
from tests.support import sitebuilder as sb


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_inprocess("-W", "ignore::pytest.PytestAssertRewriteWarning", "--cuda-deps-no-probes",
                                        "-p", "no:cacheprovider", *args)


@pytest.mark.parametrize(("make", "problem"), [
    (lambda p: None, "does not exist"),
    (lambda p: p.write_text("x"), "is not a folder (it is a regular file)"),
], ids=["missing", "a-file"])
def test_a_bad_path_is_a_usage_error(pytester: pytest.Pytester, make: object, problem: str) -> None:
    target = pytester.path / "site"
    make(target)  # type: ignore[operator]
    result = run(pytester, "--cuda-deps-only", f"--cuda-deps-path={target}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --cuda-deps-path: {str(target)!r} {problem}"])


def test_a_relative_path_is_taken_from_the_working_directory(pytester: pytest.Pytester,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makeini("[pytest]\n")  # the rootdir is pytester.path; the run starts in work/
    sb.build(pytester.path / "work" / "site", [sb.Dist("filelock", "4.2.11")])
    monkeypatch.chdir(pytester.path / "work")
    result = run(pytester, "--cuda-deps-only", "--cuda-deps-path=site", "-v")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*installed-once?all? PASSED  each of the 1 distributions is installed once*"])


def test_a_relative_path_in_the_ini_file_is_taken_from_its_folder(pytester: pytest.Pytester,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makeini("[pytest]\ncuda_deps_path = site\n")
    sb.build(pytester.path / "site", [sb.Dist("filelock", "4.2.11")])
    (pytester.path / "work").mkdir()
    monkeypatch.chdir(pytester.path / "work")
    result = run(pytester, "--cuda-deps-only", "-v")  # the ini file is found in the parent folder
    assert result.ret == pytest.ExitCode.OK, result.stderr.str()
    result.stdout.fnmatch_lines(["*each of the 1 distributions is installed once*"])


def test_options_are_not_checked_when_the_plugin_is_off(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ncuda_deps_path = nowhere\ncuda_deps_timeout = inf\n")
    pytester.makepyfile(test_user="def test_user():\n    pass\n")
    assert run(pytester).ret == pytest.ExitCode.OK


@pytest.mark.parametrize("text", ["inf", "-inf", "nan", "-1", "0", "1e300", "3600.5", "abc"])
def test_a_bad_timeout_is_a_usage_error(pytester: pytest.Pytester, text: str) -> None:
    site = sb.build(pytester.path / "site", [sb.Dist("filelock", "4.2.11")])
    result = run(pytester, "--cuda-deps-only", f"--cuda-deps-path={site}", f"--cuda-deps-timeout={text}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --cuda-deps-timeout / cuda_deps_timeout must be a number of seconds above 0 "
                                 f"and at most 3600, not {text!r}"])


@pytest.mark.parametrize(("text", "seconds"), [(None, 60.0), ("", 60.0), ("0.5", 0.5), ("3600", MAX_TIMEOUT)])
def test_good_timeouts(text: str | None, seconds: float) -> None:
    assert parse_timeout(text) == seconds


def test_an_unlistable_path_is_a_usage_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.support import nobody

    with nobody.shared_dir() as shared:
        locked = shared / "site"
        locked.mkdir(mode=0o711)  # nobody may enter it but not list it
        result = subprocess.run(
            nobody.command([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--cuda-deps-only",
                            "--cuda-deps-no-probes", f"--cuda-deps-path={locked}"]),
            capture_output=True, text=True, cwd=shared, timeout=120)
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert f"--cuda-deps-path: {str(locked)!r} cannot be listed: Permission denied" in result.stderr
