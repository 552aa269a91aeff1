"""The run as a whole: the findings of every item, their root causes, the summary section and the JSON report.

Every face reads the same objects: the items' :class:`~pytest_cudadeps.checks.findings.Finding` (with
their cause's id), the :class:`~pytest_cudadeps.report.causes.Cause` they name, and the snapshot of
the environment.  Under pytest-xdist the findings travel from the workers as plain JSON
(:func:`finding_json`) and the controller takes its own snapshot (files only, cheap) for the
environment; the summary and the JSON file are made once, there.

The JSON document (``"version": 1``) is described by ``report.schema.json`` in this package.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from pytest_cudadeps import __version__
from pytest_cudadeps.checks.findings import Finding, Outcome, printable
from pytest_cudadeps.engine.snapshot import Snapshot
from pytest_cudadeps.report.causes import Cause

VERSION = 1
SCHEMA_FILE = "report.schema.json"
WIDTH = 80
Markup = Mapping[str, bool]


# --- findings and causes as JSON ------------------------------------------------------------------


def finding_json(finding: Finding) -> dict[str, Any]:
    return {
        "id": finding.name, "check": finding.check, "subject": finding.subject, "outcome": finding.outcome.value,
        "message": finding.message, "details": list(finding.details), "fix": finding.fix, "cause": finding.cause,
        "facts": dict(finding.facts),
    }


def finding_from_json(data: Mapping[str, Any]) -> Finding:
    return Finding(data["check"], data["subject"], Outcome(data["outcome"]), data["message"], tuple(data["details"]),
                   data["fix"], tuple((str(k), str(v)) for k, v in data["facts"].items()), data["cause"])


def cause_json(cause: Cause) -> dict[str, Any]:
    return {"id": cause.id, "title": cause.title, "details": list(cause.details), "fix": cause.fix}


def cause_from_json(data: Mapping[str, Any]) -> Cause:
    return Cause(data["id"], data["title"], tuple(data["details"]), data["fix"])


# --- the run ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RootCause:
    """A cause with the failing findings that follow from it."""

    cause: Cause
    findings: tuple[Finding, ...]

    @property
    def own(self) -> bool:
        """The cause is one of its findings (its full text was printed with that item)."""
        return any(f.name == self.cause.id for f in self.findings)


@dataclass(frozen=True)
class Results:
    """Every finding of a run (one per item that ran) and the causes they name."""

    findings: tuple[Finding, ...]
    causes: Mapping[str, Cause]

    def failed(self) -> list[Finding]:
        return [f for f in self.findings if f.outcome is Outcome.FAIL]

    def count(self, outcome: Outcome) -> int:
        return sum(f.outcome is outcome for f in self.findings)

    def root_causes(self) -> list[RootCause]:
        """Each cause with its findings: the cause explaining most first, then by id."""
        grouped: dict[str, list[Finding]] = {}
        for finding in self.failed():
            grouped.setdefault(finding.cause or finding.name, []).append(finding)
        found = [RootCause(self.causes.get(key) or Cause.of(members[0]), tuple(members))
                 for key, members in grouped.items()]
        return sorted(found, key=lambda rc: (-len(rc.findings), rc.cause.id))

    def by_name(self) -> dict[str, Finding]:
        return {f.name: f for f in self.findings}

    def verdict(self) -> str:
        """One line: healthy, or how many checks failed from how many causes."""
        failed = self.failed()
        if not failed:
            skipped = self.count(Outcome.SKIP)
            return (f"cudadeps: healthy: {self.count(Outcome.PASS)} checks passed"
                    + (f", {skipped} skipped" if skipped else ""))
        causes = self.root_causes()
        plural = "s" if len(causes) > 1 else ""
        return f"cudadeps: {len(failed)} failed check{'s' if len(failed) > 1 else ''} from {len(causes)} root cause{plural}"


# --- the environment --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Library:
    """One CUDA library a root needs: where the loader finds it, whose it is, and how its items ended."""

    root: str
    soname: str
    path: str | None
    owner: str | None
    via: str
    status: str  # ok, not found, failed, load failed, skipped


def short_path(path: str | Path, snapshot: Snapshot) -> str:
    """``site-packages/nvidia/cu13/lib/libcublas.so.13``: relative to the scanned folder that holds it."""
    path = Path(path)
    location = _location(path.parent, snapshot)
    return f"{location.name}/{path.relative_to(location)}" if location is not None else str(path)


def libraries(snapshot: Snapshot, found: Mapping[str, Finding]) -> list[Library]:
    out = []
    for root in snapshot.roots:
        for lib in root.linkage.cuda_libraries() if root.linkage is not None else ():
            owned = snapshot.owners.of(lib.path) if lib.path is not None else []
            linkage, load = found.get(f"linkage[{root.key}>{lib.soname}]"), found.get(f"load[{lib.soname}]")
            out.append(Library(root.key, lib.soname, str(lib.path) if lib.path else None,
                               str(owned[0][0]) if owned else None, str(lib.via), _status(lib.path, linkage, load)))
    return out


def _status(path: Path | None, linkage: Finding | None, load: Finding | None) -> str:
    if linkage is not None and linkage.outcome is Outcome.FAIL:
        return "not found" if path is None else "failed"
    if load is not None and load.outcome is Outcome.FAIL:
        return "load failed"
    if linkage is not None and linkage.outcome is Outcome.SKIP:
        return "skipped"
    return "ok" if linkage is not None else "not checked"


def driver(found: Mapping[str, Finding]) -> dict[str, Any]:
    """The driver and GPUs as the driver items saw them (nothing when the probes did not run)."""
    nvml, libcuda = found.get("driver[nvml]"), found.get("driver[libcuda]")
    facts = {**dict(libcuda.facts if libcuda else ()), **dict(nvml.facts if nvml else ())}
    gpus = []
    for key in sorted((k for k in facts if k.startswith("gpu") and k[3:].isdigit()), key=lambda k: int(k[3:])):
        name, _, rest = facts[key].partition(", ")
        arch, _, mig = rest.partition(", MIG ")
        gpus.append({"index": int(key[3:]), "name": name, "arch": arch, "mig": mig})
    checked = nvml is not None
    return {
        "checked": checked,
        "version": facts.get("driver") or None,
        "cuda": facts.get("cuda") or None,
        "status": nvml.outcome.value if nvml else "not checked",
        "message": nvml.message if nvml and nvml.outcome is not Outcome.PASS else "",
        "gpus": gpus,
    }


def environment(snapshot: Snapshot, found: Mapping[str, Finding]) -> dict[str, Any]:
    env = snapshot.env
    libc = platform.libc_ver()
    return {
        "host": socket.gethostname(),
        "python": {"version": platform.python_version(), "implementation": platform.python_implementation(),
                   "executable": sys.executable},
        "platform": {"system": platform.system(), "machine": platform.machine(), "release": platform.release(),
                     "libc": " ".join(part for part in libc if part)},
        "paths": [str(p) for p in env.paths],
        "roots": [{"name": r.dist.name, "version": r.dist.version, "installer": r.dist.installer or None,
                   "cuda": r.cuda, "build_source": r.build_source, "location": str(r.dist.location)}
                  for r in snapshot.roots],
        "torch_cuda": snapshot.torch.cuda if snapshot.torch is not None else None,
        "driver": driver(found),
        "distributions": [{"name": d.name, "version": d.version, "installer": d.installer or None,
                           "location": str(d.location)}
                          for d in sorted(env.distributions, key=lambda d: (d.key, str(d.location)))],
        "libraries": [vars(lib) for lib in libraries(snapshot, found)],
    }


# --- the JSON document ------------------------------------------------------------------------------


def document(snapshot: Snapshot, results: Results) -> dict[str, Any]:
    """The report of version 1 (``report.schema.json``)."""
    roots = results.root_causes()
    return {
        "version": VERSION,
        "tool": {"name": "pytest-cudadeps", "version": __version__},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "verdict": "failed" if roots else "healthy",
        "summary": {"passed": results.count(Outcome.PASS), "failed": results.count(Outcome.FAIL),
                    "skipped": results.count(Outcome.SKIP), "causes": len(roots), "line": results.verdict()},
        "environment": environment(snapshot, results.by_name()),
        "causes": [{**cause_json(rc.cause), "findings": [f.name for f in rc.findings]} for rc in roots],
        "findings": [finding_json(f) for f in sorted(results.findings, key=lambda f: f.name)],
    }


def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(resources.files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8"))
    return loaded


def write_json(path: str | os.PathLike[str], data: Mapping[str, Any]) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``: a reader
    sees the old file or the whole new one, never half of it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            json.dump(data, stream, indent=2, sort_keys=False)
            stream.write("\n")
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


# --- the summary section ----------------------------------------------------------------------------


def summary_lines(snapshot: Snapshot, results: Results, *, width: int = WIDTH) -> list[tuple[str, Markup]]:
    """The terminal's ``cudadeps summary``: roots, driver and GPUs, one line per CUDA library, then the
    verdict and one line and one fix per root cause (its further lines when no item printed them)."""
    found = results.by_name()
    plain: Markup = {}
    lines: list[tuple[str, Markup]] = [(_root_line(root), plain) for root in snapshot.roots]
    lines += _driver_lines(driver(found))
    lines += _library_lines(snapshot, libraries(snapshot, found), width)
    lines.append((results.verdict(), {"red": True, "bold": True} if results.failed() else {"green": True}))
    for number, rc in enumerate(results.root_causes(), 1):
        count = len(rc.findings)
        lines.append((f"[{number}] {rc.cause.id}: {count} failed check{'s' if count > 1 else ''}: {rc.cause.title}",
                      {"red": True}))
        if not rc.own:
            lines += [(f"    {detail}", plain) for detail in rc.cause.details]
        lines.append((f"    fix: {rc.cause.fix or 'see the item above'}", {"bold": True}))
    # names, versions and installers come from files: no terminal control sequence reaches the screen
    return [(printable(text), markup) for text, markup in lines]


def _library_lines(snapshot: Snapshot, found: Sequence[Library], width: int) -> list[tuple[str, Markup]]:
    """``  libcublas.so.13  ok  nvidia-cublas 13.1.1.3  nvidia/cu13/lib`` (the folder, under site-packages), the
    columns as wide as their longest entry and the path cut in the middle to keep the line within ``width``."""
    if not found:
        return []
    soname_width = max(len(lib.soname) for lib in found)
    status_width = max(len(lib.status) for lib in found)
    owner_width = max(len(lib.owner or "-") for lib in found)
    # the search path's folders the listed libraries lie under (not every sys.path entry: the standard library's
    # folders hold none, and naming them says nothing)
    inside = {location.name for lib in found if lib.path
              for location in [_location(Path(lib.path).parent, snapshot)] if location is not None}
    lines: list[tuple[str, Markup]] = [(f"CUDA libraries (folders under {', '.join(sorted(inside)) or '/'}/ or absolute):", {})]
    for lib in found:
        head = f"  {lib.soname:<{soname_width}} {lib.status:<{status_width}} {lib.owner or '-':<{owner_width}} "
        where = _folder(Path(lib.path).parent, snapshot) if lib.path else "-"
        room = max(width - len(head), 12)
        if len(where) > room:
            keep = room - 3
            where = where[: keep // 2] + "..." + where[len(where) - (keep - keep // 2):]
        lines.append((head + where, _colour(lib.status)))
    return lines


def _location(folder: Path, snapshot: Snapshot) -> Path | None:
    """The search path's folder that ``folder`` lies in, if any."""
    return next((location for location in snapshot.env.paths if folder == location or location in folder.parents),
                None)


def _folder(folder: Path, snapshot: Snapshot) -> str:
    location = _location(folder, snapshot)
    return str(folder.relative_to(location)) or "." if location is not None else str(folder)


def _root_line(root: Any) -> str:
    build = f"CUDA {root.cuda} build" if root.cuda else ("CPU-only build" if root.key == "torch" and root.build else "")
    installer = f" (installed by {root.dist.installer})" if root.dist.installer else ""
    return f"root {root.dist}{installer}" + (f": {build}" if build else "")


def _driver_lines(info: Mapping[str, Any]) -> list[tuple[str, Markup]]:
    if not info["checked"]:
        return [("driver: not checked (--cuda-deps-no-probes)", {"yellow": True})]
    if not info["version"]:
        reason = info["message"].split(":")[0] if info["message"] else info["status"]
        return [(_clip(f"driver: none ({reason})"), {"yellow": True})]
    head = f"driver {info['version']}" + (f", CUDA {info['cuda']}" if info["cuda"] else "")
    lines: list[tuple[str, Markup]] = [(f"{head}, {len(info['gpus'])} GPU(s)", {})]
    lines += [(f"  GPU {g['index']}: {g['name']}, {g['arch']}, MIG {g['mig']}", {}) for g in info["gpus"]]
    return lines


def _colour(status: str) -> Markup:
    return {"ok": {"green": True}, "skipped": {"yellow": True}, "not checked": {}}.get(status, {"red": True})


def _clip(text: str, width: int = WIDTH) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def results_from_payloads(payloads: Iterable[Mapping[str, Any]]) -> Results:
    """The controller's view: the items' payloads (``{"finding": ..., "cause": ...}``) as findings and causes."""
    findings: list[Finding] = []
    causes: dict[str, Cause] = {}
    for payload in payloads:
        findings.append(finding_from_json(payload["finding"]))
        if payload.get("cause"):
            cause = cause_from_json(payload["cause"])
            causes.setdefault(cause.id, cause)
    return Results(tuple(findings), causes)


def payload(finding: Finding, cause: Cause | None) -> dict[str, Any]:
    return {"finding": finding_json(finding), "cause": cause_json(cause) if cause is not None else None}
