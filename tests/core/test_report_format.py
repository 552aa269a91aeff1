"""Reading a saved report back: the safe reader (a FIFO or /dev/zero is refused at once), nesting bounded,
every field read checked for its type; each bad report a ReportError naming the file and the field."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from pytest_cudadeps.core.report_format import MAX_NESTING, ReportError, parse_report, read_report
from tests.support.bounds import counted_io, watchdog


def minimal() -> dict[str, Any]:
    """The smallest document read_report accepts."""
    driver: dict[str, Any] = {"version": None, "cuda": None, "gpus": []}
    environment: dict[str, Any] = {"host": "h", "python": {"version": "3.12.3"}, "paths": [], "torch_cuda": None, "driver": driver,
                   "distributions": [], "libraries": []}
    return {"version": 1, "environment": environment}


def test_a_well_formed_report_is_read(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text(json.dumps(minimal()))
    assert read_report(tmp_path / "r.json")["environment"]["host"] == "h"


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "baseline.json")
    with watchdog(), pytest.raises(ReportError, match=r"^cannot read .*/baseline.json: not a regular file \(a FIFO\)$"):
        read_report(tmp_path / "baseline.json")


def test_dev_zero_is_refused_without_reading_it() -> None:
    with counted_io() as io, pytest.raises(ReportError, match=r"^cannot read /dev/zero: not a regular file "
                                                                r"\(a character device\)$"):
        read_report("/dev/zero")
    assert io.bytes == 0  # Path.read_text read /dev/zero until memory ran out


def wrong(change: str) -> dict[str, Any]:
    document = minimal()
    environment = document["environment"]
    if change == "no-environment":
        del document["environment"]
    elif change == "environment-a-list":
        document["environment"] = [environment]
    elif change == "version-true":
        document["version"] = True
    elif change == "version-string":
        document["version"] = "1"
    elif change == "distributions-an-object":
        environment["distributions"] = {"name": "torch"}
    elif change == "gpu-index-a-string":
        environment["driver"]["gpus"] = [{"index": "0", "name": "H200", "arch": "sm_90", "mig": "off"}]
    elif change == "paths-of-numbers":
        environment["paths"] = [1]
    elif change == "python-no-version":
        environment["python"] = {}
    return document


@pytest.mark.parametrize(("change", "message"), [
    ("no-environment", "environment is null, not an object"),
    ("environment-a-list", "environment is a list, not an object"),
    ("version-true", "is not a pytest-cudadeps report of version 1 (version: True)"),
    ("version-string", "is not a pytest-cudadeps report of version 1 (version: '1')"),
    ("distributions-an-object", "environment.distributions is an object, not a list"),
    ("gpu-index-a-string", "environment.driver.gpus[0].index is a string"),
    ("paths-of-numbers", "environment.paths holds something other than strings"),
    ("python-no-version", "environment.python has no 'version'"),
])
def test_a_report_of_the_wrong_shape_names_the_field(tmp_path: Path, change: str, message: str) -> None:
    (tmp_path / "r.json").write_text(json.dumps(wrong(change)))
    with pytest.raises(ReportError) as caught:
        read_report(tmp_path / "r.json")
    assert str(caught.value).endswith(message)
    assert str(caught.value).startswith(str(tmp_path / "r.json"))


@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 1_000_000])
def test_deep_nesting_of_a_file_is_refused(tmp_path: Path, depth: int) -> None:
    (tmp_path / "r.json").write_text("[" * depth + "]" * depth)
    with pytest.raises(ReportError, match=f"nests deeper than {MAX_NESTING} levels"):
        read_report(tmp_path / "r.json")


def test_not_json_and_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("{")
    (tmp_path / "b.json").write_bytes(b'{"version": "\xff"}')
    with pytest.raises(ReportError, match=r"a\.json is not JSON: "):
        read_report(tmp_path / "a.json")
    with pytest.raises(ReportError, match=r"b\.json is not UTF-8 text \(invalid start byte at byte 13\)"):
        read_report(tmp_path / "b.json")


@pytest.mark.parametrize("levels", [MAX_NESTING + 1, 100_000])
def test_a_report_nesting_deeper_than_the_limit_is_refused(levels: int) -> None:
    text = '{"version": 1, "environment": ' + "[" * (levels - 1) + "]" * (levels - 1) + "}"
    with pytest.raises(ReportError, match=f"^r.json nests deeper than {MAX_NESTING} levels"):
        parse_report(text, "r.json")


def test_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps({"version": 1, "environment": "[" * 1000 + "{"})
    with pytest.raises(ReportError, match="environment is a string, not an object"):  # the next check, not nesting
        parse_report(text, "r.json")
    exactly = '{"version": 1, "environment": ' + "[" * (MAX_NESTING - 1) + "]" * (MAX_NESTING - 1) + "}"
    with pytest.raises(ReportError, match="environment is a list, not an object"):
        parse_report(exactly, "r.json")
