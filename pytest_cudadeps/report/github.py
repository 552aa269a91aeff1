"""GitHub Actions: one ``::error`` annotation per root cause and a markdown table in the step summary.

Only under ``GITHUB_ACTIONS=true``.  GitHub shows at most 10 error annotations per step, so the
10 causes that explain most findings get one each; the step summary (``$GITHUB_STEP_SUMMARY``,
capped at 1 MiB per step) gets one table row per cause, each cell cut to a few hundred
characters, so that even a fleet of causes stays far below the cap.
"""

from __future__ import annotations

from collections.abc import Mapping

from pytest_cudadeps.core.safe_io import append_output
from pytest_cudadeps.report.results import Results

MAX_ANNOTATIONS = 10  # GitHub displays no more error annotations per step
MAX_ROWS = 50
MAX_CELL = 400


def active(environ: Mapping[str, str]) -> bool:
    return environ.get("GITHUB_ACTIONS") == "true"


def _data(text: str) -> str:
    """A workflow command's message, escaped as the runner's toolkit does (``%``, CR, LF)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def error_annotations(results: Results) -> list[str]:
    """``::error title=...::message`` per root cause, the causes that explain most first, at most 10."""
    lines = []
    for rc in results.root_causes()[:MAX_ANNOTATIONS]:
        count = len(rc.findings)
        message = f"{rc.cause.title}\n{count} failed check{'s' if count > 1 else ''}" + (
            f"\nfix: {rc.cause.fix}" if rc.cause.fix else "")
        lines.append(f"::error title={_property(f'cudadeps: {rc.cause.id}')}::{_data(message)}")
    return lines


def _cell(text: str) -> str:
    text = text if len(text) <= MAX_CELL else text[: MAX_CELL - 3] + "..."
    return text.replace("|", "\\|").replace("\n", "<br>")


def step_summary(results: Results) -> str:
    """The markdown appended to ``$GITHUB_STEP_SUMMARY``: the verdict, then one row per root cause."""
    lines = [f"### {results.verdict()}", ""]
    causes = results.root_causes()
    if causes:
        lines += ["| # | root cause | failed checks | fix |", "|---|---|---|---|"]
        for number, rc in enumerate(causes[:MAX_ROWS], 1):
            fix = f"`{_cell(rc.cause.fix)}`" if rc.cause.fix else ""
            lines.append(f"| {number} | `{_cell(rc.cause.id)}`: {_cell(rc.cause.title)} | {len(rc.findings)} | {fix} |")
        if len(causes) > MAX_ROWS:
            lines.append(f"\n{len(causes) - MAX_ROWS} more root causes: see the job's log")
    return "\n".join(lines) + "\n\n"


def append_step_summary(path: str, results: Results) -> None:
    """Append to the file GitHub names (a regular file; a FIFO or a device there is refused, never waited on)."""
    append_output(path, step_summary(results))
