"""The JSON report's shape (``"version": 1``, ``report.schema.json`` in :mod:`pytest_cudadeps.report`) as types,
and the reader that checks a saved report before anything trusts it.

The report layer writes these documents; a baseline (``--cuda-deps-compare``) and a fleet's reports
(``cudadeps compare``) are read back with :func:`read_report`: through the project's safe reader (a
regular file, never a FIFO or a device, at most :data:`REPORT_LIMIT` bytes), with JSON nesting
bounded, and with every field that is read checked for its type, so that a report of the wrong shape is
a :class:`ReportError` naming the file and the field, never a ``KeyError`` or a ``TypeError``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import TypedDict

from pytest_cudadeps.core.safe_io import read_regular

VERSION = 1
REPORT_LIMIT = 256 << 20  # a report of a host with 20,000 findings is about 20 MB
MAX_NESTING = 64  # the report nests 5 deep; json.loads recurses once per level, up to the recursion limit


class FindingDoc(TypedDict):
    id: str
    check: str
    subject: str
    outcome: str  # pass, fail, skip
    message: str
    details: list[str]
    fix: str
    cause: str
    facts: dict[str, str]


class CauseDoc(TypedDict):
    id: str
    title: str
    details: list[str]
    fix: str


class ReportedCauseDoc(CauseDoc):
    findings: list[str]


class Payload(TypedDict):
    """One item's finding and, the first time this process names it, its cause (the xdist channel)."""

    finding: FindingDoc
    cause: CauseDoc | None


class GpuDoc(TypedDict):
    index: int
    name: str
    arch: str
    mig: str


class DriverDoc(TypedDict):
    checked: bool
    version: str | None
    cuda: str | None
    status: str
    message: str
    gpus: list[GpuDoc]


class PythonDoc(TypedDict):
    version: str
    implementation: str
    executable: str


class PlatformDoc(TypedDict):
    system: str
    machine: str
    release: str
    libc: str


class RootDoc(TypedDict):
    name: str
    version: str
    installer: str | None
    cuda: str | None
    build_source: str
    location: str


class DistributionDoc(TypedDict):
    name: str
    version: str
    installer: str | None
    location: str


class LibraryDoc(TypedDict):
    root: str
    soname: str
    path: str | None
    owner: str | None
    via: str
    status: str


class EnvironmentDoc(TypedDict):
    host: str
    python: PythonDoc
    platform: PlatformDoc
    paths: list[str]
    roots: list[RootDoc]
    torch_cuda: str | None
    driver: DriverDoc
    distributions: list[DistributionDoc]
    libraries: list[LibraryDoc]


class ToolDoc(TypedDict):
    name: str
    version: str


class SummaryDoc(TypedDict):
    passed: int
    failed: int
    skipped: int
    causes: int
    line: str


class ReportDoc(TypedDict):
    version: int
    tool: ToolDoc
    created: str
    verdict: str
    summary: SummaryDoc
    environment: EnvironmentDoc
    causes: list[ReportedCauseDoc]
    findings: list[FindingDoc]


class ReportError(Exception):
    """A report that cannot be read, or is not a pytest-cudadeps report of version 1 of the right shape."""


def _depth_of(value: object) -> int:
    """How deep the lists and objects of a parsed JSON value nest: level by level, never a recursion."""
    level, depth = ([value] if isinstance(value, (dict, list)) else []), 0
    while level:
        depth += 1
        level = [child for item in level for child in (item.values() if type(item) is dict else item)
                 if type(child) is dict or type(child) is list]
    return depth


def parse_report(text: str, where: str) -> ReportDoc:
    """A report's text checked for the shape of every field a baseline or a fleet comparison reads."""
    too_deep = ReportError(f"{where} nests deeper than {MAX_NESTING} levels: not a pytest-cudadeps report")
    try:
        data: object = json.loads(text)
    except RecursionError:  # the C decoder counts its recursion and stops at the interpreter's limit
        raise too_deep from None
    except ValueError as exc:
        raise ReportError(f"{where} is not JSON: {exc}") from None
    if _depth_of(data) > MAX_NESTING:
        raise too_deep
    document = _object(data, where, "the document")
    version = document.get("version")
    if type(version) is not int or version != VERSION:  # not True, which equals 1
        raise ReportError(f"{where} is not a pytest-cudadeps report of version {VERSION} (version: {version!r})")
    _check_environment(_object(document.get("environment"), where, "environment"), where)
    return document  # type: ignore[return-value]  # checked field by field above


def read_report(path: str | os.PathLike[str]) -> ReportDoc:
    """Read and check a saved report (see the module docstring); :class:`ReportError` says what is wrong."""
    try:
        data = read_regular(path, REPORT_LIMIT, "a report")
    except OSError as exc:
        raise ReportError(f"cannot read {os.fspath(path)}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReportError(f"{os.fspath(path)} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return parse_report(text, os.fspath(path))


def _object(value: object, where: str, field: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise ReportError(f"{where}: {field} is {_kind(value)}, not an object")
    return value


def _kind(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "true or false", type(None): "null"}
    return names.get(type(value), "a number")


def _fields(value: Mapping[str, object], where: str, field: str, expected: Mapping[str, tuple[type, ...]]) -> None:
    for name, types in expected.items():
        if name not in value:
            raise ReportError(f"{where}: {field} has no {name!r}")
        found = value[name]
        if not isinstance(found, types) or (isinstance(found, bool) and bool not in types):
            raise ReportError(f"{where}: {field}.{name} is {_kind(found)}")


def _items(value: object, where: str, field: str, expected: Mapping[str, tuple[type, ...]]) -> None:
    if not isinstance(value, list):
        raise ReportError(f"{where}: {field} is {_kind(value)}, not a list")
    for index, item in enumerate(value):
        _fields(_object(item, where, f"{field}[{index}]"), where, f"{field}[{index}]", expected)


_TEXT, _MAYBE_TEXT = (str,), (str, type(None))


def _check_environment(environment: Mapping[str, object], where: str) -> None:
    """The fields :func:`pytest_cudadeps.engine.baseline.keys` reads, each of its type."""
    _fields(environment, where, "environment", {"host": _TEXT, "python": (dict,), "paths": (list,),
                                                 "torch_cuda": _MAYBE_TEXT, "driver": (dict,)})
    python = environment["python"]
    assert isinstance(python, dict)
    _fields(python, where, "environment.python", {"version": _TEXT})
    paths = environment["paths"]
    if not all(isinstance(path, str) for path in paths):  # type: ignore[attr-defined]  # a list, checked above
        raise ReportError(f"{where}: environment.paths holds something other than strings")
    _items(environment.get("distributions"), where, "environment.distributions", {"name": _TEXT, "version": _TEXT})
    _items(environment.get("libraries"), where, "environment.libraries",
           {"soname": _TEXT, "path": _MAYBE_TEXT, "owner": _MAYBE_TEXT})
    driver = environment["driver"]
    assert isinstance(driver, dict)
    _fields(driver, where, "environment.driver", {"version": _MAYBE_TEXT, "cuda": _MAYBE_TEXT})
    _items(driver.get("gpus"), where, "environment.driver.gpus", {"index": (int,), "name": _TEXT, "arch": _TEXT,
                                                                   "mig": _TEXT})
