"""The Markdown report for a bug tracker (``cudadeps report``): the verdict, each root cause and its fix."""

from __future__ import annotations

from pytest_cudadeps.engine.snapshot import Snapshot
from pytest_cudadeps.report.results import Results


def markdown_report(snapshot: Snapshot, results: Results) -> str:
    lines = [f"**{results.verdict()}**", ""]
    for number, rc in enumerate(results.root_causes(), 1):
        lines += [f"{number}. `{rc.cause.id}`: {rc.cause.title}", "", f"   fix: `{rc.cause.fix}`", ""]
    return "\n".join(lines)
