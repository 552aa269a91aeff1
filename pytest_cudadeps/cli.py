"""The ``cudadeps`` command (also ``python -m pytest_cudadeps``): the checks alone, for a person at a shell and
for health checks, and the tools around their reports.

``cudadeps [check] [options]`` runs the checks (pytest runs them, its output kept back) and prints the verdict,
then each root cause and its one fix, and nothing else unless ``-v`` asks for the roots, the driver, the
library table and every item.  The first line is the verdict, because Docker and node-problem-detector keep
only the beginning of a check's output.  The plugin's options (``--cuda-deps-no-probes``,
``--cuda-deps-json=PATH``...) work as under pytest, and pytest's own (``-k``, ``-n``) pass through; no ini
file is read, so a project's ``addopts`` cannot change a health check.  Exit status: 0 healthy, 1 a check
failed, 2 could not check (a usage or internal error), as Docker ``HEALTHCHECK`` (0/1) and
node-problem-detector custom plugins (0 OK, 1 problem, else unknown) expect.

``cudadeps compare A.json B.json ...`` compares reports across hosts (:mod:`pytest_cudadeps.report.fleet`);
``cudadeps report`` (or ``check --markdown``) writes a Markdown report for a bug tracker
(:mod:`pytest_cudadeps.report.markdown`).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_cudadeps.engine.snapshot import Snapshot
    from pytest_cudadeps.report.results import Results

HEALTHY, FAILED, UNKNOWN = 0, 1, 2
COMMANDS = ("check", "compare", "report")
# the plugin's switches that a check sets itself
_IMPLIED = ("--cuda-deps", "--cuda-deps-only")


@dataclass(frozen=True)
class _Option:
    """One of the plugin's command-line options, as ``plugin.pytest_addoption`` declares it."""

    flag: str
    dest: str
    help: str
    action: str
    metavar: str | None


class _Recorder:
    """Stands in for pytest's parser: records the plugin's options, so that the command offers the same ones."""

    def __init__(self) -> None:
        self.options: list[_Option] = []

    def getgroup(self, *args: Any, **kwargs: Any) -> _Recorder:
        return self

    def addoption(self, flag: str, *, dest: str, help: str, action: str = "store", metavar: str | None = None,
                  **kwargs: Any) -> None:
        if flag not in _IMPLIED:  # no ini file is read here: its name would mislead
            self.options.append(_Option(flag, dest, help.rsplit(" (ini: ", 1)[0], action, metavar))

    def addini(self, *args: Any, **kwargs: Any) -> None:
        pass


def plugin_options() -> list[_Option]:
    from pytest_cudadeps.plugin import pytest_addoption

    recorder = _Recorder()
    pytest_addoption(recorder)  # type: ignore[arg-type]
    return recorder.options


def _add_check_options(parser: argparse.ArgumentParser, options: Sequence[_Option], *, check: bool = True) -> None:
    if check:
        parser.add_argument("-v", "--verbose", action="store_true",
                            help="also print the roots, the driver and GPUs, the CUDA library table and every check")
        parser.add_argument("--markdown", action="store_true",
                            help="print a Markdown report for a bug tracker instead (the `report` command)")
    else:
        parser.set_defaults(verbose=False, markdown=True)
    group = parser.add_argument_group("the plugin's options (as under pytest; pytest's own, such as -k, pass through)")
    for option in options:
        if option.action == "store_true":
            group.add_argument(option.flag, dest=option.dest, action="store_true", help=option.help)
        else:
            group.add_argument(option.flag, dest=option.dest, action=option.action, metavar=option.metavar,
                               help=option.help)


def parser(options: Sequence[_Option]) -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="cudadeps", allow_abbrev=False,
        description="Check that this Python environment can run its CUDA frameworks (torch, JAX, CuPy...): the "
                    "wheels they declare, where the loader finds each CUDA library, the driver and the GPUs.",
        epilog="Without a command, `check` runs. Exit status: 0 healthy, 1 broken, 2 could not check.")
    from pytest_cudadeps._version import __version__

    top.add_argument("--version", action="version", version=f"cudadeps {__version__}")
    commands = top.add_subparsers(dest="command", metavar="{check,compare,report}")
    check = commands.add_parser("check", allow_abbrev=False, help="run the checks: the verdict, each root cause "
                                "and its fix (the default command)",
                                description="Run the checks and print the verdict, then each root cause and its fix.",
                                epilog="Exit status: 0 healthy, 1 broken, 2 could not check.")
    _add_check_options(check, options)
    report = commands.add_parser("report", allow_abbrev=False, help="run the checks and print a Markdown report "
                                 "for a bug tracker", description="Run the checks and print a Markdown report for "
                                 "a bug tracker: verdict, causes and fixes, builds, libraries, driver, GPUs, "
                                 "installers; user name, home folder and host name redacted. torch is never imported.")
    _add_check_options(report, options, check=False)
    compare = commands.add_parser("compare", help="compare reports saved with --cuda-deps-json across hosts",
                                  description="Print the keys that differ across the reports and the host that is "
                                              "the odd one out.",
                                  epilog="Exit status: 0 all alike, 1 they differ, 2 a report cannot be read.")
    compare.add_argument("reports", nargs="+", metavar="REPORT.json")
    return top


def _pytest_args(namespace: argparse.Namespace, options: Sequence[_Option]) -> list[str]:
    """The plugin's options as given, back in pytest's words."""
    args: list[str] = []
    for option in options:
        value = getattr(namespace, option.dest)
        if value is None or value is False:
            continue
        if value is True:
            args.append(option.flag)
        else:
            args += [f"{option.flag}={item}" for item in (value if isinstance(value, list) else [value])]
    return args


class _Run:
    """Picks up the run's results and snapshot from the plugin before pytest tears it down."""

    def __init__(self) -> None:
        self.results: Results | None = None
        self.snapshot: Snapshot | None = None

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from pytest_cudadeps.options import PLUGIN_NAME
        from pytest_cudadeps.session import CudaDepsPlugin

        plugin = session.config.pluginmanager.get_plugin(PLUGIN_NAME)
        if isinstance(plugin, CudaDepsPlugin):
            self.results = plugin.results()
            self.snapshot = plugin.snapshot()


def verdict_line(results: Results) -> str:
    causes = results.root_causes()
    named = ", ".join(rc.cause.id for rc in causes[:3]) + (", ..." if len(causes) > 3 else "")
    return results.verdict() + (f": {named}" if causes else "")


def check(args: Sequence[str], *, verbose: bool = False, markdown: bool = False) -> int:
    """Run the checks with pytest's arguments ``args``; print what the command prints; return its status."""
    run = _Run()
    out, err = io.StringIO(), io.StringIO()
    command = ["--cuda-deps-only", "-p", "no:cacheprovider", "-c", os.devnull, "--rootdir", os.getcwd(), "-q",
               "--tb=no", *args]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = pytest.main(command, plugins=[run])
    status = {pytest.ExitCode.OK: HEALTHY, pytest.ExitCode.TESTS_FAILED: FAILED}.get(pytest.ExitCode(code), UNKNOWN)
    if status == UNKNOWN or run.results is None or run.snapshot is None:
        # pytest's usage errors end with the line that says what is wrong (after the usage line)
        reason = next((line for line in reversed((err.getvalue() + out.getvalue()).splitlines())
                       if "error" in line.lower()), "")
        first = f"cudadeps: could not check: pytest exit status {int(code)} ({pytest.ExitCode(code).name})"
        print(first + (f": {reason.strip()}" if reason else ""))
        sys.stderr.write(out.getvalue() + err.getvalue())
        return UNKNOWN
    if markdown:
        from pytest_cudadeps.report.markdown import markdown_report

        sys.stdout.write(markdown_report(run.snapshot, run.results))
        return status
    print(verdict_line(run.results))
    for line in _lines(run.snapshot, run.results, verbose):
        print(line)
    for line in out.getvalue().splitlines():  # GitHub Actions' workflow commands (::error), the report's path
        if line.startswith(("::", "report: ", "cudadeps: cannot ")):
            print(line)
    return status


def _lines(snapshot: Snapshot, results: Results, verbose: bool) -> list[str]:
    from pytest_cudadeps.report.summary import cause_lines, environment_lines, item_lines

    if not verbose:
        return [text for text, _ in cause_lines(results, details=True)]
    return [text for text, _ in (*environment_lines(snapshot, results, verbose=True), *item_lines(results),
                                 *cause_lines(results, details=True))]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or (args[0] not in COMMANDS and args[0] not in ("-h", "--help", "--version")):
        args = ["check", *args]  # the default command: a bare `cudadeps` is the health check
    try:
        options = plugin_options()
        namespace, rest = parser(options).parse_known_args(args)
    except SystemExit as exc:  # --help, --version (0) or a usage error (2, argparse's own)
        return int(exc.code or 0) if isinstance(exc.code, int) else UNKNOWN
    if namespace.command == "compare":
        from pytest_cudadeps.report.fleet import main as compare

        return compare([*namespace.reports, *rest])
    try:
        return check([*_pytest_args(namespace, options), *rest], verbose=namespace.verbose,
                     markdown=namespace.markdown or namespace.command == "report")
    except Exception as exc:  # any crash here means "could not check": status 2, never 1
        print(f"cudadeps: could not check: {type(exc).__name__}: {exc}")
        return UNKNOWN
