"""The run as a Prometheus textfile (``--cuda-deps-prometheus=PATH.prom``) for node_exporter's textfile collector.

node_exporter reads every ``*.prom`` file of its ``--collector.textfile.directory`` at each scrape, so
the file is written the way its documentation asks: to a temporary file in the same folder, whose
name does not end in ``.prom``, then renamed over the target (a scrape sees the old file or the new
one, never half of one), readable by the collector's user (0644).  The series, in the text exposition
format (label values escaped: backslash, double quote, newline)::

    cudadeps_healthy 0                     1 when every check passed
    cudadeps_checks{outcome="failed"} 5    also passed and skipped
    cudadeps_root_causes 1
    cudadeps_root_cause{cause="requires[torch>nvidia-cublas]",title="nvidia-cublas is not installed"} 5
    cudadeps_last_run_timestamp_seconds 1.764745e+09
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from pathlib import Path

from pytest_cudadeps.core.report_format import ReportDoc

TITLE_LIMIT = 200  # a label value that names the cause in words; the report has the whole text


def label(value: str) -> str:
    """A label value escaped as the text exposition format asks."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _metric(name: str, kind: str, text: str, samples: list[str]) -> list[str]:
    return [f"# HELP {name} {text}", f"# TYPE {name} {kind}", *samples]


def prometheus_text(report: ReportDoc) -> str:
    """The textfile of one run, from its report."""
    summary = report["summary"]
    causes = [f'cudadeps_root_cause{{cause="{label(c["id"])}",title="{label(c["title"][:TITLE_LIMIT])}"}} '
              f'{len(c["findings"])}' for c in report["causes"]]
    when = datetime.fromisoformat(report["created"]).timestamp()
    lines = [
        *_metric("cudadeps_healthy", "gauge", "1 when every CUDA environment check passed, 0 when one failed.",
                 [f"cudadeps_healthy {int(report['verdict'] == 'healthy')}"]),
        *_metric("cudadeps_checks", "gauge", "CUDA environment checks of the last run, by outcome.",
                 [f'cudadeps_checks{{outcome="{outcome}"}} {count}' for outcome, count in
                  (("failed", summary["failed"]), ("passed", summary["passed"]), ("skipped", summary["skipped"]))]),
        *_metric("cudadeps_root_causes", "gauge", "Root causes of the failed checks of the last run.",
                 [f"cudadeps_root_causes {summary['causes']}"]),
        *_metric("cudadeps_root_cause", "gauge", "One series per root cause of the last run: its failed checks.",
                 causes),
        *_metric("cudadeps_last_run_timestamp_seconds", "gauge", "When the last run checked (Unix time).",
                 [f"cudadeps_last_run_timestamp_seconds {when:.0f}"]),
    ]
    return "\n".join(lines) + "\n"


def write_prometheus(path: str | os.PathLike[str], report: ReportDoc) -> Path:
    """Write the textfile atomically: a temporary ``.NAME.tmp`` beside it, mode 0644, renamed over ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(prometheus_text(report))
        os.chmod(temporary, 0o644)  # mkstemp makes it 0600; node_exporter usually runs as another user
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target
