"""The session's side of the plugin, registered only when the checks are on: the ``cudadeps`` collector,
one item per finding, and the hooks that attach root causes, print the summary and write the report."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

from pytest_cudadeps.options import COLLECTOR_NAME, MARKER, USER_MARKER

if TYPE_CHECKING:
    from pytest_cudadeps.checks.findings import Finding, Pending
    from pytest_cudadeps.core.report_format import DriverDoc, Payload
    from pytest_cudadeps.core.settings import Settings
    from pytest_cudadeps.engine.snapshot import Snapshot
    from pytest_cudadeps.fixture import CudaEnv
    from pytest_cudadeps.plan import Plan
    from pytest_cudadeps.probes.runner import ChildGroup
    from pytest_cudadeps.report.causes import Cause, Causes
    from pytest_cudadeps.report.results import Results

BLOCKED = pytest.StashKey[bool]()  # a `cuda` test this plugin skipped or failed at setup
# pytest's category (its key in the terminal's stats) of a failing check that follows from a root cause another
# check shows: counted on the final line ("1 failed, 35 consequences"), not printed as a failure of its own
CONSEQUENCES = "consequences"


class CudaDepsPlugin:
    """Registered only when the checks are asked for; otherwise pytest runs as if we were absent.

    Each process (the controller and every xdist worker) plans the same items from the same files; each
    item's finding, with its root cause, travels to the controller in its report (``report.cudadeps``,
    plain JSON), where the summary, the JSON report and the CI annotations are made once.
    """

    def __init__(self, settings: Settings, config: pytest.Config) -> None:
        self.settings = settings
        self.config = config
        self.in_summary = False  # the -v progress line shows what a check found; the short summary does not
        self._plan: Plan | None = None
        self._causes: Causes | None = None
        self.children: ChildGroup | None = None  # the probes' children, stopped when the session ends
        self._release_signals: Callable[[], None] = lambda: None
        self.payloads: list[Payload] = []
        self.causes_sent: set[str] = set()  # a cause travels with the first item of this process that it explains
        self.report_path: Path | None = None
        self.report_error = ""
        self._heads: dict[str, str] | None = None

    # --- the plan of this process -------------------------------------------------------------------

    def plan(self) -> tuple[Plan, Causes]:
        """The snapshot, the items and the causes: made once per process, on first need."""
        if self._plan is None or self._causes is None:
            from pytest_cudadeps.plan import plan_checks

            if self.settings.probes:
                from pytest_cudadeps.probes.runner import ChildGroup, stop_on_signals

                self.children = ChildGroup()
                self._release_signals = stop_on_signals(self.children)  # a SIGTERM'd run leaves no child
            # xdist workers share the items out: each starts a child when an item first needs it;
            # a single process starts them all now, to run beside the static checks
            ahead = not self.is_worker and not self.config.option.collectonly
            self._plan = plan = plan_checks(self.settings, start_probes=ahead, group=self.children)
            if self.settings.compare_path:
                plan = self._plan = _with_drift(plan, self.settings.compare_path)
            from pytest_cudadeps.report.causes import DRIVER_ITEMS, Causes

            items = plan.items  # the driver items' findings: the causes take a driver's fault from them (rule 7)
            self._causes = Causes(plan.snapshot, plan.static,
                                  driver=lambda: [items[name]() for name in DRIVER_ITEMS if name in items])
        return self._plan, self._causes

    def heads(self, session: pytest.Session) -> dict[str, str]:
        """Each root cause's head: the selected item that shows it in full (the same in every xdist worker)."""
        if self._heads is None:
            _, causes = self.plan()
            self._heads = causes.heads(item.name for item in session.items if isinstance(item, CudaDepsItem))
        return self._heads

    def cuda_env(self) -> CudaEnv:
        from pytest_cudadeps.fixture import cuda_env

        plan, causes = self.plan()
        return cuda_env(plan, causes)

    @property
    def is_worker(self) -> bool:
        return hasattr(self.config, "workerinput")

    @pytest.hookimpl(tryfirst=True)
    def pytest_ignore_collect(self, collection_path: Path) -> bool | None:
        return True if self.settings.only else None

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(
        self, collector: pytest.Collector
    ) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
        report = yield
        if isinstance(collector, pytest.Session) and report.passed:
            report.result.insert(0, CudaDepsCollector.from_parent(
                collector, name=COLLECTOR_NAME, nodeid=COLLECTOR_NAME, plugin=self))
        return report

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        if isinstance(item, CudaDepsItem) or item.get_closest_marker(USER_MARKER) is None:
            return
        from pytest_cudadeps.fixture import blocking_cause

        plan, causes = self.plan()
        blocked = blocking_cause(plan, causes)
        if blocked is None:
            return
        reason = f"cudadeps: {blocked.id}: {blocked.title}" + (f"; fix: {blocked.fix}" if blocked.fix else "")
        item.stash[BLOCKED] = True
        if self.settings.require_gpu:
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)

    def pytest_report_header(self) -> str:
        return f"cudadeps: {self.settings.describe()}"

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if isinstance(item, CudaDepsItem) and report.skipped and isinstance(report.longrepr, tuple):
            # name the check, not the plugin line that raised the skip: "SKIPPED [1] cudadeps::x: reason"
            report.longrepr = (item.nodeid, None, report.longrepr[2])  # type: ignore[assignment]
        if report.when == "setup" and report.skipped and item.stash.get(BLOCKED, False) \
                and isinstance(report.longrepr, tuple):
            # the user's test, not this plugin's line, is where the skip is: "SKIPPED [1] test_x.py:4: cudadeps: ..."
            line = item.location[1]
            report.longrepr = (item.location[0], line + 1 if line is not None else None,  # type: ignore[assignment]
                               report.longrepr[2])
        if isinstance(item, CudaDepsItem) and report.when == "call" and item.finding is not None:
            self._attach(item, item.finding, report)
        return report

    def _attach(self, item: CudaDepsItem, finding: Finding, report: pytest.TestReport) -> None:
        """The item's finding, its cause and its role, as attributes of plain JSON: xdist sends a report's
        ``__dict__`` to the controller as it is."""
        from pytest_cudadeps.report.results import payload

        # each cause once per process, not with each of its items: one cause of 20,000 items lists 20,000
        # missing wheels, and a copy per item was 3 GB
        cause = item.cause if item.cause is not None and item.cause.id not in self.causes_sent else None
        if cause is not None:
            self.causes_sent.add(cause.id)
        report.cudadeps = payload(finding, cause)  # type: ignore[attr-defined]
        if report.failed and item.consequence_of:
            report.cudadeps_consequence = item.consequence_of  # type: ignore[attr-defined]

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        found = getattr(report, "cudadeps", None)
        if report.when == "call" and isinstance(found, dict):
            self.payloads.append(cast("Payload", found))  # made by payload() in this process or an xdist worker

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Stop the children nobody waited for; write the JSON report before the summary that names it."""
        if self.children is not None:  # started ahead, their items deselected, -x, Ctrl-C: none outlives the run
            self.children.stop()
            self._release_signals()
        if self.is_worker or not (self.settings.json_path or self.settings.prometheus_path):
            return
        from pytest_cudadeps.report.document import document, write_json
        from pytest_cudadeps.report.metrics import write_prometheus

        report, where = document(self.snapshot(), self.results()), ""
        try:
            if self.settings.json_path:
                where = self.settings.json_path
                self.report_path = write_json(where, report)
            if self.settings.prometheus_path:
                where = self.settings.prometheus_path
                write_prometheus(where, report)
        except OSError as exc:
            self.report_error = f"cudadeps: cannot write {where}: {exc.strerror or exc}"
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> Generator[None, None, None]:
        # outermost wrapper: the cudadeps summary comes after pytest's short summary, so that the root
        # causes and their fixes are the last lines before the final count
        self.in_summary = True
        result = yield
        stats = terminalreporter.stats
        if len(stats.get(CONSEQUENCES, ())) == 1:  # pytest pluralizes only its own nouns: "1 consequence"
            stats[CONSEQUENCES[:-1]] = stats.pop(CONSEQUENCES)
        if not self.is_worker:
            self._print_summary(terminalreporter)
        return result

    def _print_summary(self, terminal: pytest.TerminalReporter) -> None:
        from pytest_cudadeps.report.summary import summary_lines

        results = self.results()
        if not results.findings:
            return
        terminal.write_sep("=", "cudadeps summary")
        # the report's path first: the root causes and their fixes are the last lines
        if self.report_path is not None:
            terminal.write_line(f"report: {self.report_path}")
        if self.report_error:
            terminal.write_line(self.report_error, red=True)
        verbose = self.config.getoption("verbose") > 0
        # the causes' details are in the FAILURES section, with the item that shows each cause; not under --tb=no
        details = self.config.getoption("tbstyle") == "no"
        for text, markup in summary_lines(self.snapshot(), results, verbose=verbose, details=details):
            terminal.write_line(text, **markup)
        self._github(terminal, results)

    def _github(self, terminal: pytest.TerminalReporter, results: Results) -> None:
        import os

        from pytest_cudadeps.report import github

        if not github.active(os.environ):
            return
        for line in github.error_annotations(results):
            terminal.write_line(line)
        summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary_file:
            try:
                github.append_step_summary(summary_file, results)
            except OSError as exc:
                terminal.write_line(f"cudadeps: cannot append to GITHUB_STEP_SUMMARY {summary_file}: {exc}", red=True)

    def snapshot(self) -> Snapshot:
        """The snapshot of this process: the collector's, or (on the xdist controller) one taken now."""
        if self._plan is not None:
            return self._plan.snapshot
        from pytest_cudadeps.engine.snapshot import take_snapshot

        return take_snapshot(self.settings)

    def results(self) -> Results:
        from pytest_cudadeps.report.results import results_from_payloads

        return results_from_payloads(self.payloads)

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(self, report: pytest.TestReport) -> tuple[str, str, Any] | None:
        consequence = getattr(report, "cudadeps_consequence", None)
        if report.when == "call" and report.failed and consequence and self.config.getoption("verbose") < 2:
            if self.in_summary:
                return CONSEQUENCES, "c", "CONSEQUENCE"
            found = getattr(report, "cudadeps", None)
            message = found["finding"]["message"] if isinstance(found, dict) else ""
            return CONSEQUENCES, "c", (f"CONSEQUENCE of {consequence}: {message}", {"yellow": True})
        if report.when != "call" or not report.passed or not report.nodeid.startswith(f"{COLLECTOR_NAME}::"):
            return None
        if self.in_summary:
            # the short summary takes a plain word: pytest < 8.3 prints a (word, markup) pair as its repr there
            return "passed", ".", "PASSED"
        summary = dict(report.user_properties).get("summary")
        return "passed", ".", (f"PASSED  {summary}" if summary else "PASSED", {"green": True})


def _with_drift(plan: Plan, baseline: str) -> Plan:
    """The plan with the ``drift[...]`` items of --cuda-deps-compare (their list from files only)."""
    from dataclasses import replace

    from pytest_cudadeps.checks.drift import drift_items
    from pytest_cudadeps.report.document import driver, environment

    def driver_now() -> DriverDoc:
        return driver({name: plan.items[name]() for name in ("driver[libcuda]", "driver[nvml]") if name in plan.items})

    return replace(plan, items={**plan.items, **drift_items(baseline, environment(plan.snapshot, {}), driver_now)})


class CudaDepsCollector(pytest.Collector):
    """The node ``cudadeps``: its items are the checks, sorted by name, the same in every process."""

    def __init__(self, *, plugin: CudaDepsPlugin, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plugin = plugin

    def collect(self) -> Iterable[pytest.Item]:
        plan, causes = self.plugin.plan()
        for name, run in sorted(plan.items.items()):
            # The node id is given as text so that pytest parses ``requires[torch>x]`` into name and
            # params, exactly as it parses the ids stored by --lf; a derived id keeps the brackets in
            # the name and never equals a stored one.
            item = CudaDepsItem.from_parent(self, name=name, nodeid=f"{self.nodeid}::{name}", run=run, causes=causes)
            item.add_marker(MARKER)
            yield item

    def reportinfo(self) -> tuple[Path, None, str]:
        return self.path, None, COLLECTOR_NAME


class CudaDepsFailure(Exception):
    """Raised by an item whose finding failed; shown as the finding's text, not a traceback.

    A root cause shows its whole text.  The head of a cause that is not itself (the first of the
    missing wheels) shows its message, then the cause's whole text.  A consequence of another cause
    shows one line naming it (its whole text under ``-v``); the terminal counts it apart and prints
    it only under ``-vv``, but JUnit XML and the JSON report record it as failed with this text.
    """

    def __init__(self, finding: Finding, *, cause: Cause | None = None, verbose: bool = False) -> None:
        consequence = bool(finding.cause) and finding.cause != finding.name
        if consequence and cause is not None:  # the head: what it found (whole under -v), then its cause
            own = [line for line in finding.text().splitlines() if not line.startswith("  fix: ")] if verbose \
                else [finding.message]
            text = "\n".join([*own, f"root cause {cause.id}: {cause.text()}"])
        elif consequence and not verbose:
            text = f"{finding.message} [root cause: {finding.cause}; its fix is in the cudadeps summary]"
        elif consequence:  # -v: the whole text, the cause named before the fix line
            lines = finding.text().splitlines()
            at = len(lines) - 1 if finding.fix else len(lines)
            text = "\n".join([*lines[:at], f"  root cause: {finding.cause}", *lines[at:]])
        else:
            text = finding.text()
        super().__init__(text)
        self.finding = finding


class CudaDepsItem(pytest.Item):
    """One check: runs its pending finding, attaches the finding's root cause, and shows it."""

    def __init__(self, *, run: Pending, causes: Causes, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._run = run
        self._causes = causes
        self.finding: Finding | None = None
        self.cause: Cause | None = None
        self.consequence_of = ""  # the cause this item follows from, when another item shows it

    def runtest(self) -> None:
        from dataclasses import replace

        from pytest_cudadeps.checks.findings import Outcome

        finding = self._run()
        self.cause = self._causes.cause_of(finding)
        self.finding = finding = replace(finding, cause=self.cause.id) if self.cause is not None else finding
        self.user_properties.extend(finding.facts)
        if finding.outcome is Outcome.SKIP:
            pytest.skip(finding.message)
        if finding.outcome is Outcome.FAIL:
            raise self._failure(finding)

    def _failure(self, finding: Finding) -> CudaDepsFailure:
        verbose = self.config.getoption("verbose") > 0
        if self.cause is None or self.cause.id == finding.name:
            return CudaDepsFailure(finding, verbose=verbose)
        head = self.parent.plugin.heads(self.session).get(self.cause.id) if isinstance(self.parent, CudaDepsCollector) \
            else None
        if head == self.name:
            return CudaDepsFailure(finding, cause=self.cause, verbose=verbose)
        # a cause with no head (a probe's, as no-driver) leaves each of its items a failure of its own
        self.consequence_of = self.cause.id if head is not None else ""
        return CudaDepsFailure(finding, verbose=verbose)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, CudaDepsFailure):
            return str(excinfo.value)
        return f"pytest-cudadeps could not run this check ({excinfo.typename}: {excinfo.value}); please report it\n" + str(
            super().repr_failure(excinfo, style=style)
        )

    def reportinfo(self) -> tuple[Path, None, str]:
        return self.path, None, f"{COLLECTOR_NAME}::{self.name}"
