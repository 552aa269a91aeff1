"""The pytest face: options, the ``cudadeps`` collector, and one item per finding.

Importing this module costs nothing beyond pytest and the standard library: the
engine (packaging, pyelftools, nvidia-ml-py) is imported only once ``--cuda-deps``
or ``--cuda-deps-only`` turns the plugin on.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .children import ChildGroup
    from .findings import Finding, Pending
    from .settings import Settings

COLLECTOR_NAME = "cudadeps"
MARKER = "cudadeps"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cudadeps", "CUDA environment checks (pytest-cudadeps)")

    def option(flag: str, ini: str, help: str, ini_type: Any, **kwargs: Any) -> None:
        group.addoption(flag, dest=ini, help=f"{help} (ini: {ini})", **kwargs)
        parser.addini(ini, help=help, type=ini_type, default=kwargs.get("default"))

    option("--cuda-deps", "cuda_deps", "add the CUDA environment checks to this run, beside your tests",
           "bool", action="store_true", default=None)
    option("--cuda-deps-only", "cuda_deps_only",
           "run only the CUDA environment checks; test files are not collected (a container build gate)",
           "bool", action="store_true", default=None)
    option("--cuda-deps-root", "cuda_deps_root",
           "distribution whose CUDA dependencies are checked; repeatable. Default: torch, plus every "
           "distribution that requires an nvidia-* or cuda-* distribution",
           "linelist", action="append", metavar="NAME", default=None)
    option("--cuda-deps-path", "cuda_deps_path",
           "look for installed distributions in this folder instead of sys.path; repeatable "
           "(check another environment's site-packages)",
           "linelist", action="append", metavar="DIR", default=None)
    option("--cuda-deps-no-ld-cache", "cuda_deps_no_ld_cache",
           "resolve libraries as if /etc/ld.so.cache were empty, as a clean container without a "
           "system CUDA sees them", "bool", action="store_true", default=None)
    option("--cuda-deps-no-probes", "cuda_deps_no_probes",
           "static checks only (metadata and ELF files): start no child process, load no library, touch no GPU",
           "bool", action="store_true", default=None)
    option("--cuda-deps-verify-hashes", "cuda_deps_verify_hashes",
           "compare the sha256 of every resolved CUDA library with its RECORD (reads some GiB; by default "
           "only sizes are compared, and hashes only for a file that two RECORDs claim)",
           "bool", action="store_true", default=None)
    option("--cuda-deps-timeout", "cuda_deps_timeout",
           "seconds each child-process probe may take before it counts as hung (default 60)",
           "string", metavar="SECONDS", default=None)
    option("--cuda-deps-host-root", "cuda_deps_host_root",
           "read the host's /proc and /dev under DIR (a container that mounts the host's root, as a "
           "node-problem-detector DaemonSet does at /host; default /)",
           "string", metavar="DIR", default=None)
    option("--cuda-deps-require-gpu", "cuda_deps_require_gpu",
           "fail, instead of skip, the checks that need a GPU and a driver when there is none (GPU runners)",
           "bool", action="store_true", default=None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}: a CUDA environment check of pytest-cudadeps")
    from .settings import Settings

    settings = Settings.from_config(config)
    if settings.enabled:
        config.pluginmanager.register(CudaDepsPlugin(settings), "cudadeps-plugin")


class CudaDepsPlugin:
    """Registered only when the checks are asked for; otherwise pytest runs as if we were absent."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.in_summary = False  # the -v progress line shows what a check found; the short summary does not
        self.children: ChildGroup | None = None  # the probes' children, made when the items are collected

    @pytest.hookimpl(tryfirst=True)
    def pytest_ignore_collect(self, collection_path: Path) -> bool | None:
        return True if self.settings.only else None

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(
        self, collector: pytest.Collector
    ) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
        report = yield
        if isinstance(collector, pytest.Session) and report.passed:
            if self.children is None and self.settings.probes:
                from .children import ChildGroup

                self.children = ChildGroup()
            report.result.insert(0, CudaDepsCollector.from_parent(
                collector, name=COLLECTOR_NAME, nodeid=COLLECTOR_NAME, settings=self.settings, children=self.children))
        return report

    def pytest_sessionfinish(self) -> None:
        # children started ahead whose items never ran (deselected, -x, Ctrl-C) must not outlive the run
        if self.children is not None:
            self.children.stop()

    def pytest_report_header(self) -> str:
        return f"cudadeps: {self.settings.describe()}"

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if isinstance(item, CudaDepsItem) and report.skipped and isinstance(report.longrepr, tuple):
            # name the check, not the plugin line that raised the skip: "SKIPPED [1] cudadeps::x: reason"
            report.longrepr = (item.nodeid, None, report.longrepr[2])  # type: ignore[assignment]
        return report

    def pytest_terminal_summary(self) -> None:
        self.in_summary = True  # runs inside the terminal reporter's wrapper, before its short summary

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(self, report: pytest.TestReport) -> tuple[str, str, Any] | None:
        if report.when != "call" or not report.passed or not report.nodeid.startswith(f"{COLLECTOR_NAME}::"):
            return None
        if self.in_summary:
            # the short summary takes a plain word: pytest < 8.3 prints a (word, markup) pair as its repr there
            return "passed", ".", "PASSED"
        summary = dict(report.user_properties).get("summary")
        return "passed", ".", (f"PASSED  {summary}" if summary else "PASSED", {"green": True})


class CudaDepsCollector(pytest.Collector):
    """The node ``cudadeps``: its items are the checks, sorted by name, the same in every process."""

    def __init__(self, *, settings: Settings, children: ChildGroup | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.children = children

    def collect(self) -> Iterable[pytest.Item]:
        from .checks import collect_checks

        # xdist workers share the items out: each starts a child when an item first needs it;
        # a single process starts them all now, to run beside the static checks
        ahead = not hasattr(self.config, "workerinput") and not self.config.option.collectonly
        checks = collect_checks(self.settings, start_probes=ahead, group=self.children)
        for name, run in sorted(checks.items()):
            # The node id is given as text so that pytest parses ``requires[torch>x]`` into name and
            # params, exactly as it parses the ids stored by --lf; a derived id keeps the brackets in
            # the name and never equals a stored one.
            item = CudaDepsItem.from_parent(self, name=name, nodeid=f"{self.nodeid}::{name}", run=run)
            item.add_marker(MARKER)
            yield item

    def reportinfo(self) -> tuple[Path, None, str]:
        return self.path, None, COLLECTOR_NAME


class CudaDepsFailure(Exception):
    """Raised by an item whose finding failed; shown as the finding's text, not a traceback."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.text())
        self.finding = finding


class CudaDepsItem(pytest.Item):
    def __init__(self, *, run: Pending, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._run = run

    def runtest(self) -> None:
        from .findings import Outcome

        finding = self._run()
        self.user_properties.extend(finding.facts)
        if finding.outcome is Outcome.SKIP:
            pytest.skip(finding.message)
        if finding.outcome is Outcome.FAIL:
            raise CudaDepsFailure(finding)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, CudaDepsFailure):
            return str(excinfo.value)
        return f"pytest-cudadeps could not run this check ({excinfo.typename}: {excinfo.value}); please report it\n" + str(
            super().repr_failure(excinfo, style=style)
        )

    def reportinfo(self) -> tuple[Path, None, str]:
        return self.path, None, f"{COLLECTOR_NAME}::{self.name}"
