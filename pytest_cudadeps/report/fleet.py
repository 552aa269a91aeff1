"""Drift: what differs between this environment and a known-good host's report, or across a fleet's reports.

A report (``--cuda-deps-json``) is flattened into keys a host can be compared on, each with one
value that does not depend on where the environment lives: ``dist:nvidia-nccl-cu13`` (its
version), ``lib:libcudart.so.13`` (the file the loader picks, relative to site-packages, and its
owner), ``torch:cuda``, ``python``, ``driver``, ``gpu:0``.  ``--cuda-deps-compare=BASELINE.json``
makes one failing ``drift[KEY]`` item per key that differs (the list comes from files, so every
xdist worker makes the same one; the driver and GPUs are compared in ``drift[driver]`` when it
runs).

``python -m pytest_cudadeps compare REPORT|FOLDER ...`` compares a fleet's reports: it reads them one
at a time and keeps only their comparable keys (per key and value, the indexes of the hosts that have
it), so 10,000 reports take tens of MB.  It prints each key that differs with its values, the odd
ones first, how many hosts have each and at most :data:`MAX_NAMES` of their names (the hosts that are
odd most often first), in at most :data:`MAX_LINES` lines of at most :data:`MAX_WIDTH` characters;
``--json`` gives every differing key for dashboards.  Hosts are named by the report's ``host``, or by
the report's path where two reports share a host name.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_cudadeps.engine.baseline import ABSENT, ReportError, keys, load

MAX_NAMES = 5  # names shown per value
MAX_VALUES = 4  # values shown per key (the odd ones first); the rest are counted
MAX_LINES = 40
MAX_WIDTH = 400
MAX_ODD = 3  # hosts named in the closing "odd one out" line

# --- the fleet ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One value of a differing key: the hosts (indexes) that have it, and whether it is a minority's."""

    value: str
    hosts: list[int]
    odd: bool


@dataclass
class Fleet:
    """The comparable keys of a fleet's reports, gathered one report at a time."""

    hosts: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    table: dict[str, dict[str, list[int]]] = field(default_factory=dict)

    def add(self, path: str) -> None:
        report = load(path)
        index = len(self.hosts)  # one int object per host, shared by every key's lists
        self.hosts.append(report["environment"]["host"])
        self.paths.append(path)
        for key, value in keys(report["environment"]).items():
            self.table.setdefault(key, {}).setdefault(value, []).append(index)

    def differing(self) -> list[str]:
        total = len(self.hosts)
        return sorted(key for key, values in self.table.items()
                      if len(values) > 1 or sum(map(len, values.values())) < total)

    def variants(self, key: str) -> list[Variant]:
        """The values of ``key``, the fewest hosts first; a host without the key has :data:`ABSENT`."""
        found = dict(self.table[key])
        present = sum(map(len, found.values()))
        if present < len(self.hosts):
            having = {index for indexes in found.values() for index in indexes}
            found[ABSENT] = [index for index in range(len(self.hosts)) if index not in having]
        counts = sorted(len(indexes) for indexes in found.values())
        unique_majority = len(counts) < 2 or counts[-1] != counts[-2]
        return [Variant(value, indexes, unique_majority and len(indexes) != counts[-1])
                for value, indexes in sorted(found.items(), key=lambda item: (len(item[1]), item[0]))]

    def namer(self) -> Naming:
        return Naming(self.hosts, self.paths, Counter(self.hosts))


@dataclass(frozen=True)
class Naming:
    """A host's name: its report's host name, or the report's path where two reports share that name."""

    hosts: list[str]
    paths: list[str]
    counts: Counter[str]

    def __call__(self, index: int) -> str:
        host = self.hosts[index]
        return host if self.counts[host] == 1 else self.paths[index]


def report_paths(arguments: Sequence[str]) -> Iterator[str]:
    """The reports named, a folder's ``*.json`` files in name order."""
    for argument in arguments:
        if os.path.isdir(argument):
            with os.scandir(argument) as entries:
                names = sorted(entry.name for entry in entries if entry.name.endswith(".json"))
            yield from (os.path.join(argument, name) for name in names)
        else:
            yield argument


@dataclass(frozen=True)
class Drift:
    """What ``compare`` found: every differing key's variants and how often each host was odd."""

    reports: int
    keys: list[tuple[str, list[Variant]]]
    odd: Counter[int]
    name: Naming

    def names(self, variant: Variant) -> list[str]:
        """At most :data:`MAX_NAMES` of a variant's hosts, the most often odd first."""
        chosen = heapq.nsmallest(MAX_NAMES, variant.hosts, key=lambda index: (-self.odd[index], self.name(index)))
        return [self.name(index) for index in chosen]


    def most_odd(self, count: int) -> list[tuple[int, int]]:
        """The hosts odd in the most keys (then by name), with their number of keys."""
        return heapq.nsmallest(count, self.odd.items(), key=lambda item: (-item[1], self.name(item[0])))


def drift(fleet: Fleet) -> Drift:
    found = [(key, fleet.variants(key)) for key in fleet.differing()]
    odd: Counter[int] = Counter()
    for _, variants in found:
        for variant in variants:
            odd.update(variant.hosts if variant.odd else ())
    return Drift(len(fleet.hosts), found, odd, fleet.namer())


# --- what it prints -----------------------------------------------------------------------------------


def _cut(line: str) -> str:
    return line if len(line) <= MAX_WIDTH else line[:MAX_WIDTH - 3] + "..."


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def key_lines(found: Drift, key: str, variants: list[Variant]) -> list[str]:
    lines = [key]
    for variant in variants[:MAX_VALUES]:
        named = found.names(variant)
        more = f", ... ({len(variant.hosts) - len(named)} more)" if len(variant.hosts) > len(named) else ""
        mark = "  <- odd one out" if variant.odd else ""
        lines.append(f"  {variant.value[:200]}: {_plural(len(variant.hosts), 'host')}: {', '.join(named)}{more}{mark}")
    rest = variants[MAX_VALUES:]
    if rest:
        lines.append(f"  ... {_plural(len(rest), 'more value')} on {_plural(sum(len(v.hosts) for v in rest), 'host')}")
    return [_cut(line) for line in lines]


def odd_line(found: Drift) -> list[str]:
    if not found.odd:
        return []
    top = found.most_odd(MAX_ODD)
    named = ", ".join(f"{found.name(index)} ({count} of {len(found.keys)} differences)" for index, count in top)
    more = f", and {_plural(len(found.odd) - len(top), 'more host')}" if len(found.odd) > len(top) else ""
    return [_cut(f"odd one{'s' if len(found.odd) > 1 else ''} out: {named}{more}")]


def text(found: Drift) -> list[str]:
    """At most :data:`MAX_LINES` lines: the heading, the differing keys that fit, the odd hosts."""
    closing = odd_line(found)
    lines = [f"cudadeps compare: {found.reports} reports, {_plural(len(found.keys), 'key')} differ"]
    budget = MAX_LINES - len(lines) - len(closing) - 1  # one for "... more keys"
    shown = 0
    for key, variants in found.keys:
        block = key_lines(found, key, variants)
        if len(block) > budget:
            break
        lines += block
        budget -= len(block)
        shown += 1
    if shown < len(found.keys):
        lines.append(f"... {_plural(len(found.keys) - shown, 'more key')} differ (--json lists every one)")
    return lines + closing


def document(found: Drift) -> dict[str, Any]:
    """The same for dashboards: every differing key with every value (names still at most :data:`MAX_NAMES`)."""
    return {
        "reports": found.reports,
        "keys": [{"key": key, "values": [{"value": v.value, "hosts": len(v.hosts), "names": found.names(v), "odd": v.odd}
                                         for v in variants]} for key, variants in found.keys],
        "odd": [{"name": found.name(index), "differences": count} for index, count in found.most_odd(MAX_NAMES)],
    }


# --- the command --------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pytest_cudadeps compare",
                                     description="What differs across a fleet's reports (--cuda-deps-json).")
    parser.add_argument("reports", nargs="+", metavar="REPORT|FOLDER", help="reports, or folders of *.json reports")
    parser.add_argument("--json", action="store_true", help="print JSON for dashboards")
    return parser


def fleet(paths: Sequence[str]) -> tuple[Drift | None, str]:
    """The drift across the reports, or why there is none to show."""
    gathered = Fleet()
    try:
        for path in report_paths(paths):
            gathered.add(path)
    except ReportError as exc:
        return None, f"cudadeps compare: {exc}"
    if len(gathered.hosts) < 2:
        return None, "cudadeps compare: give two reports or more"
    return drift(gathered), ""


def main(argv: Sequence[str]) -> int:
    """``compare``: exit 0 when the reports agree, 1 when they differ, 2 when one cannot be read or usage is wrong."""
    try:
        options = _parser().parse_args(list(argv))
    except SystemExit as exc:  # argparse printed the usage error
        return int(exc.code or 0)
    found, error = fleet(options.reports)
    if found is None:
        print(error, file=sys.stderr)
        return 2
    print(json.dumps(document(found), indent=1) if options.json else "\n".join(text(found)))
    return 1 if found.keys else 0
