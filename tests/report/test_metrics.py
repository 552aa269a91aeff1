"""The Prometheus textfile: the series of a real report, label values escaped, read back by a parser of the text
exposition format; written atomically (the option itself is tested in tests/face/test_cli.py)."""

from __future__ import annotations

import copy
import json
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import pytest

from pytest_cudadeps.core.report_format import ReportDoc
from pytest_cudadeps.report import metrics

REPORT = Path(__file__).resolve().parents[1] / "data" / "report-torch-2.14.1.json"
# the exposition format: name, optional {label="value",...} with \\, \" and \n escaped, then the value
SAMPLE = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*)\})? (\S+)')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')


def parse(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of a textfile; any line that is neither a sample nor a HELP/TYPE comment fails the test."""
    assert text.endswith("\n")
    samples = []
    for line in text.splitlines():
        if line.startswith("# "):
            assert re.fullmatch(r"# (HELP|TYPE) [a-z_]+ .+", line), line
            continue
        match = SAMPLE.fullmatch(line)
        assert match, line
        labels = {name: re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), value)
                  for name, value in LABEL.findall(match.group(2) or "")}
        samples.append((match.group(1), labels, float(match.group(3))))
    return samples


def broken(causes: list[dict[str, Any]]) -> ReportDoc:
    data: dict[str, Any] = copy.deepcopy(json.loads(REPORT.read_text()))
    data["verdict"] = "failed"
    data["summary"].update(failed=7, causes=len(causes))
    data["causes"] = causes
    return cast("ReportDoc", data)


def test_every_root_cause_is_a_series_with_its_labels_escaped() -> None:
    odd = 'requires[torch>we\\ird "name"\nnext]'
    report = broken([{"id": "requires[torch>nvidia-cublas]", "title": "nvidia-cublas is not installed", "details": [],
                      "fix": "", "findings": ["a", "b", "c", "d", "e"]},
                     {"id": odd, "title": "x" * 500, "details": [], "fix": "", "findings": ["f", "g"]}])
    samples = parse(metrics.prometheus_text(report))
    assert samples == [
        ("cudadeps_healthy", {}, 0.0),
        ("cudadeps_checks", {"outcome": "failed"}, 7.0),
        ("cudadeps_checks", {"outcome": "passed"}, float(report["summary"]["passed"])),
        ("cudadeps_checks", {"outcome": "skipped"}, float(report["summary"]["skipped"])),
        ("cudadeps_root_causes", {}, 2.0),
        ("cudadeps_root_cause", {"cause": "requires[torch>nvidia-cublas]", "title": "nvidia-cublas is not installed"}, 5.0),
        ("cudadeps_root_cause", {"cause": odd, "title": "x" * metrics.TITLE_LIMIT}, 2.0),
        ("cudadeps_last_run_timestamp_seconds", {}, datetime.fromisoformat(report["created"]).timestamp()),
    ]


def test_a_healthy_run_has_no_root_cause_series() -> None:
    report = cast("ReportDoc", json.loads(REPORT.read_text()))
    samples = parse(metrics.prometheus_text(report))
    assert ("cudadeps_healthy", {}, 1.0) in samples
    assert [s for s in samples if s[0].startswith("cudadeps_root_cause")] == [("cudadeps_root_causes", {}, 0.0)]


def test_the_file_is_replaced_whole_and_readable_by_the_collector(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "textfiles" / "cudadeps.prom"
    report = cast("ReportDoc", json.loads(REPORT.read_text()))
    metrics.write_prometheus(target, report)
    first = target.stat().st_ino
    assert target.stat().st_mode & 0o777 == 0o644
    metrics.write_prometheus(target, broken([]))
    assert target.stat().st_ino != first  # a new file renamed over the old one, never written in place
    assert [p.name for p in target.parent.iterdir()] == ["cudadeps.prom"]

    def fail(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="No space left"):
        metrics.write_prometheus(target, report)
    assert [p.name for p in target.parent.iterdir()] == ["cudadeps.prom"]  # no temporary file left behind
    assert "cudadeps_healthy 0" in target.read_text()
