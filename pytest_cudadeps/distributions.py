"""The installed distributions, read from their metadata files and never imported.

:func:`scan` walks the given ``sys.path`` entries in order, the way
``importlib.metadata`` does, and parses each ``*.dist-info`` (``METADATA``) and
``*.egg-info`` (``PKG-INFO`` plus ``requires.txt``).  A file that cannot be read
or parsed becomes a :class:`MetadataProblem` instead of an exception, so that a
garbled install turns into a failing item rather than an INTERNALERROR.
"""

from __future__ import annotations

import ast
import csv
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

from packaging.utils import canonicalize_name


@dataclass(frozen=True)
class MetadataProblem:
    """A metadata file that could not be used: which file, and what is wrong with it."""

    path: Path
    problem: str


class RecordEntry(NamedTuple):
    """One line of a RECORD file: a path relative to the distribution's location."""

    path: str
    hash: str
    size: str


@dataclass(frozen=True, eq=False)
class Distribution:
    """One installed distribution as its metadata describes it.

    ``location`` is the ``sys.path`` entry holding it, ``meta_dir`` its
    ``.dist-info``/``.egg-info`` folder.  ``requires`` are the raw ``Requires-Dist``
    strings (parsed later, so that one bad line names its file and does not hide the rest).
    """

    name: str
    version: str
    location: Path
    meta_dir: Path
    requires: tuple[str, ...]
    provides_extras: frozenset[str]
    installer: str

    @property
    def key(self) -> str:
        return canonicalize_name(self.name)

    def __str__(self) -> str:
        return f"{self.name} {self.version}"

    @cached_property
    def record(self) -> tuple[RecordEntry, ...]:
        """The RECORD entries (empty when there is no RECORD, as for egg-info)."""
        return self.record_entries()

    def record_entries(self, containing: str = "") -> tuple[RecordEntry, ...]:
        """RECORD entries whose line contains ``containing`` (torch's RECORD has 20,000 lines)."""
        try:
            text = (self.meta_dir / "RECORD").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ()
        lines = [line for line in text.splitlines() if containing in line] if containing else text.splitlines()
        return tuple(
            RecordEntry(row[0], row[1] if len(row) > 1 else "", row[2] if len(row) > 2 else "")
            for row in csv.reader(lines) if row and row[0]
        )

    def files(self) -> Iterator[tuple[Path, RecordEntry]]:
        """Absolute paths (not resolved through links) of the files its RECORD lists."""
        for entry in self.record:
            yield Path(os.path.normpath(self.location / entry.path)), entry


@dataclass(frozen=True)
class Environment:
    """Every distribution found on the scanned path, in ``sys.path`` order."""

    paths: tuple[Path, ...]
    distributions: tuple[Distribution, ...]
    problems: tuple[MetadataProblem, ...] = ()
    by_key: dict[str, tuple[Distribution, ...]] = field(default_factory=dict, compare=False)

    def get(self, name: str) -> Distribution | None:
        """The copy Python would use: the first one on the path."""
        found = self.by_key.get(canonicalize_name(name))
        return found[0] if found else None

    def package_dir(self, dist: Distribution, package: str) -> Path | None:
        """The folder of an import package of ``dist`` (``torch``), without importing it."""
        candidate = dist.location / package
        return candidate if candidate.is_dir() else None


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _egg_requires(text: str) -> list[str]:
    """Turn a setuptools ``requires.txt`` (``[extra:marker]`` sections) into Requires-Dist lines."""
    out: list[str] = []
    section_marker = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            extra, _, marker = line[1:-1].partition(":")
            parts = []
            if extra:
                parts.append(f'extra == "{extra}"')
            if marker:
                parts.append(f"({marker})")
            section_marker = " and ".join(parts)
            continue
        out.append(f"{line}; {section_marker}" if section_marker else line)
    return out


def parse_headers(text: str) -> dict[str, list[str]] | str:
    """The header fields of a METADATA/PKG-INFO file (core metadata is RFC 822 style), by lower-case name.

    Continuation lines (starting with a space or tab) are joined to their field; the first
    empty line ends the headers.  A line that is neither ends parsing with a message, as
    the email package would record a defect.  (email.parser costs more to import than the
    whole scan takes.)
    """
    fields: dict[str, list[str]] = {}
    last: tuple[str, int] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            break
        if line[0] in " \t":
            if last is None:
                return f"line {number} continues a header, but no header came before it"
            key, index = last
            fields[key][index] += " " + line.strip()
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip() or " " in name.strip():
            return f"line {number} is not a 'Name: value' header ({line[:60]!r})"
        key = name.strip().lower()
        fields.setdefault(key, []).append(value.strip())
        last = (key, len(fields[key]) - 1)
    return fields


def read_distribution(location: Path, meta_dir: Path) -> Distribution | MetadataProblem:
    """Parse one metadata folder; anything wrong with it becomes a :class:`MetadataProblem`."""
    is_egg = meta_dir.name.endswith(".egg-info")
    meta_file = meta_dir / ("PKG-INFO" if is_egg else "METADATA")
    if is_egg and meta_dir.is_file():  # an old single-file egg-info
        meta_file = meta_dir
    try:
        text = _read_text(meta_file)
    except FileNotFoundError:
        return MetadataProblem(meta_file, "the file is missing")
    except (OSError, ValueError) as exc:
        return MetadataProblem(meta_file, f"cannot be read: {exc}")
    headers = parse_headers(text)
    if isinstance(headers, str):
        return MetadataProblem(meta_file, f"garbled headers: {headers}")
    name = (headers.get("name") or [""])[0]
    version = (headers.get("version") or [""])[0]
    missing = [field for field, value in (("Name", name), ("Version", version)) if not value]
    if missing:
        return MetadataProblem(meta_file, f"has no {' and no '.join(missing)} field")
    requires = headers.get("requires-dist", [])
    if is_egg and meta_dir.is_dir():
        try:
            requires += _egg_requires(_read_text(meta_dir / "requires.txt"))
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            return MetadataProblem(meta_dir / "requires.txt", f"cannot be read: {exc}")
    extras = frozenset(canonicalize_name(e) for e in headers.get("provides-extra", []))
    try:
        installer = (meta_dir / "INSTALLER").read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        installer = ""
    return Distribution(name, version, location, meta_dir, tuple(requires), extras, installer)


def _metadata_dirs(location: Path) -> list[Path]:
    try:
        names = sorted(os.listdir(location))
    except OSError:
        return []
    return [location / n for n in names if n.endswith((".dist-info", ".egg-info"))]


def scan(paths: Iterable[str | os.PathLike[str]] | None = None) -> Environment:
    """Read every distribution on ``paths`` (default: ``sys.path``), first entry first."""
    entries: list[Path] = []
    for raw in sys.path if paths is None else paths:
        path = Path(os.path.abspath(raw or os.curdir))
        if path not in entries and path.is_dir():
            entries.append(path)
    dists: list[Distribution] = []
    problems: list[MetadataProblem] = []
    for location in entries:
        for meta_dir in _metadata_dirs(location):
            found = read_distribution(location, meta_dir)
            (dists if isinstance(found, Distribution) else problems).append(found)  # type: ignore[arg-type]
    by_key: dict[str, list[Distribution]] = {}
    for dist in dists:
        by_key.setdefault(dist.key, []).append(dist)
    return Environment(
        tuple(entries), tuple(dists), tuple(problems), {k: tuple(v) for k, v in by_key.items()}
    )


def read_version_module(package_dir: Path) -> dict[str, str | None]:
    """The literal assignments of ``<package>/version.py``, read as text, never imported.

    torch writes ``cuda: Optional[str] = '13.0'`` (or ``= None`` for a CPU build).
    """
    source = _read_text(package_dir / "version.py")
    values: dict[str, str | None] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if (isinstance(target, ast.Name) and isinstance(value, ast.Constant)
                and (value.value is None or isinstance(value.value, str))):
            values[target.id] = value.value
    return values
