"""``python -m pytest_cudadeps [options]``: the checks alone, for a person at a shell and for health checks.

The options are the plugin's (``--cuda-deps-no-probes``, ``--cuda-deps-json=PATH``...) and
pytest's; no ini file is read, so a project's ``addopts`` cannot change a health check.  The
first line printed is the verdict, because Docker and node-problem-detector keep only the
beginning of a check's output; pytest's own output follows.  Exit status: 0 healthy, 1 a
check failed, 2 could not check (a usage or internal error), as Docker ``HEALTHCHECK``
(0/1) and node-problem-detector custom plugins (0 OK, 1 problem, else unknown) expect.

``python -m pytest_cudadeps compare A.json B.json ...`` compares reports across hosts
(:mod:`pytest_cudadeps.report.fleet`).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Sequence

import pytest

HEALTHY, FAILED, UNKNOWN = 0, 1, 2


class _Verdict:
    """Picks up the run's verdict from the plugin before pytest tears it down."""

    def __init__(self) -> None:
        self.line = ""

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from pytest_cudadeps.options import PLUGIN_NAME
        from pytest_cudadeps.session import CudaDepsPlugin

        plugin = session.config.pluginmanager.get_plugin(PLUGIN_NAME)
        if isinstance(plugin, CudaDepsPlugin):
            results = plugin.results()
            causes = results.root_causes()
            named = ", ".join(rc.cause.id for rc in causes[:3]) + (", ..." if len(causes) > 3 else "")
            self.line = results.verdict() + (f": {named}" if causes else "")


def check(args: Sequence[str]) -> int:
    verdict = _Verdict()
    out, err = io.StringIO(), io.StringIO()
    command = ["--cuda-deps-only", "-p", "no:cacheprovider", "-c", os.devnull, "--rootdir", os.getcwd(), "-q", *args]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = pytest.main(command, plugins=[verdict])
    status = {pytest.ExitCode.OK: HEALTHY, pytest.ExitCode.TESTS_FAILED: FAILED}.get(pytest.ExitCode(code), UNKNOWN)
    if status == UNKNOWN or not verdict.line:
        # pytest's usage errors end with the line that says what is wrong (after the usage line)
        reason = next((line for line in reversed((err.getvalue() + out.getvalue()).splitlines())
                       if "error" in line.lower()), "")
        first = f"cudadeps: could not check: pytest exit status {int(code)} ({pytest.ExitCode(code).name})"
        first += f": {reason.strip()}" if reason else ""
        status = UNKNOWN
    else:
        first = verdict.line
    print(first)
    sys.stdout.write(out.getvalue())
    sys.stderr.write(err.getvalue())
    return status


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["compare"]:
        from pytest_cudadeps.report.fleet import main as compare

        return compare(args[1:])
    try:
        return check(args)
    except Exception as exc:  # any crash here means "could not check": status 2, never 1
        print(f"cudadeps: could not check: {type(exc).__name__}: {exc}")
        return UNKNOWN

