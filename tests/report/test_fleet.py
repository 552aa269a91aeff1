"""``compare`` across a fleet's reports: copies of a real report (tests/data, the torch 2.14.1 venv) with host names
and versions changed.  Bounds are counted (lines, characters, bytes kept per host), never timed."""

from __future__ import annotations

import copy
import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from pytest_cudadeps.report import fleet

REPORT = Path(__file__).resolve().parents[1] / "data" / "report-torch-2.14.1.json"


@pytest.fixture(scope="module")
def real() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(REPORT.read_text())
    return data


def write(folder: Path, report: dict[str, Any], host: str, nccl: str | None = "2.30.7", name: str | None = None) -> Path:
    """A copy of the real report as ``host`` has it, with NCCL ``nccl`` (None: not installed)."""
    data = copy.deepcopy(report)
    environment = data["environment"]
    environment["host"] = host
    for dist in environment["distributions"]:
        if dist["name"] == "nvidia-nccl-cu13":
            dist["version"] = nccl
    environment["distributions"] = [d for d in environment["distributions"] if d["version"] is not None]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name or host}.json"
    path.write_text(json.dumps(data))
    return path


def compare(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    status = fleet.main(list(args))
    return status, capsys.readouterr().out.splitlines()


def test_a_folder_of_reports_names_the_odd_host_first(tmp_path: Path, real: dict[str, Any],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "reports"
    for index in range(12):
        write(folder, real, f"node{index:02d}", "2.29.3" if index == 7 else "2.30.7")
    write(folder, real, "node12", None)
    status, lines = compare(capsys, str(folder))
    assert status == 1
    assert lines == [
        "cudadeps compare: 13 reports, 1 key differ",
        "dist:nvidia-nccl-cu13",
        "  (absent): 1 host: node12  <- odd one out",
        "  2.29.3: 1 host: node07  <- odd one out",
        "  2.30.7: 11 hosts: node00, node01, node02, node03, node04, ... (6 more)",
        "odd ones out: node07 (1 of 1 differences), node12 (1 of 1 differences)",
    ]
    assert compare(capsys, str(folder / "node00.json"), str(folder / "node01.json")) == (
        0, ["cudadeps compare: 2 reports, 0 keys differ"])


def test_hosts_that_share_a_name_are_named_by_their_reports(tmp_path: Path, real: dict[str, Any],
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    a, b = write(tmp_path, real, "vm", name="a"), write(tmp_path, real, "vm", "2.29.3", name="b")
    c = write(tmp_path, real, "gpu7", name="c")
    status, lines = compare(capsys, str(a), str(b), str(c))
    assert status == 1
    assert lines[2:4] == [f"  2.29.3: 1 host: {b}  <- odd one out", f"  2.30.7: 2 hosts: {a}, gpu7"]


def test_many_differences_fit_in_40_lines_of_400_characters_and_json_has_them_all(
        tmp_path: Path, real: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "reports"
    for index in range(30):
        report = copy.deepcopy(real)
        for dist in report["environment"]["distributions"]:  # every wheel at another version on every host
            dist["version"] = f"{dist['version']}.post{index % 6}"
        write(folder, report, "h" * 120 + f"{index:02d}")
    status, lines = compare(capsys, str(folder))
    assert status == 1
    differing = int(lines[0].split(", ")[1].split()[0])
    assert differing >= 20
    assert fleet.MAX_LINES - 6 < len(lines) <= fleet.MAX_LINES  # a key of 4 values and a "more" line takes 6
    assert max(map(len, lines)) <= fleet.MAX_WIDTH
    shown = [line for line in lines if not line.startswith(" ")][1:-1]
    assert lines[-1].startswith(f"... {differing - len(shown)} more keys differ (--json lists every one)")
    assert any(line.startswith("  ... 2 more values on 10 hosts") for line in lines)  # 6 values, 4 shown
    status, out = fleet.main(["--json", str(folder)]), json.loads(capsys.readouterr().out)
    assert status == 1
    assert len(out["keys"]) == differing
    assert all(len(key["values"]) == 6 and sum(v["hosts"] for v in key["values"]) == 30 for key in out["keys"])
    assert all(len(value["names"]) == 5 for key in out["keys"] for value in key["values"])


def test_reports_are_read_one_at_a_time(tmp_path: Path, real: dict[str, Any]) -> None:
    """The memory kept grows by far less per host than one report holds: only the comparable keys stay."""
    folder = tmp_path / "reports"
    paths = [str(write(folder, real, f"node{index:03d}")) for index in range(240)]
    peaks = []
    for count in (80, 240):
        tracemalloc.start()
        found, error = fleet.fleet(paths[:count])
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert found is not None, error
    per_host = (peaks[1] - peaks[0]) / 160
    assert per_host < 2_000, per_host  # a report is 93 KB of text and about 1 MB of parsed objects


def test_an_unreadable_report_or_too_few_is_status_2(tmp_path: Path, real: dict[str, Any],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, real, "node1")
    (tmp_path / "bad.json").write_text("{}")
    assert fleet.main([str(good), str(tmp_path / "bad.json")]) == 2
    assert "bad.json is not a pytest-cudadeps report of version 1" in capsys.readouterr().err
    assert fleet.main([str(good)]) == 2
    assert capsys.readouterr().err == "cudadeps compare: give two reports or more\n"
    assert fleet.main([]) == 2
    assert "the following arguments are required: REPORT|FOLDER" in capsys.readouterr().err
