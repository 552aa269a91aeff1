"""The JSON report (version 1, ``report.schema.json`` beside this module): the environment as the checks saw it,
the root causes and every finding; written atomically."""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

from pytest_cudadeps._version import __version__
from pytest_cudadeps.checks.findings import Finding, Outcome
from pytest_cudadeps.core.report_format import DriverDoc, EnvironmentDoc, GpuDoc, LibraryDoc, ReportDoc
from pytest_cudadeps.core.safe_io import write_output
from pytest_cudadeps.engine.snapshot import Snapshot
from pytest_cudadeps.report.results import Results, cause_json, finding_json

VERSION = 1


SCHEMA_FILE = "report.schema.json"


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

    def doc(self) -> LibraryDoc:
        return {"root": self.root, "soname": self.soname, "path": self.path, "owner": self.owner, "via": self.via,
                "status": self.status}


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


def driver(found: Mapping[str, Finding]) -> DriverDoc:
    """The driver and GPUs as the driver items saw them (nothing when the probes did not run)."""
    nvml, libcuda = found.get("driver[nvml]"), found.get("driver[libcuda]")
    facts = {**dict(libcuda.facts if libcuda else ()), **dict(nvml.facts if nvml else ())}
    gpus: list[GpuDoc] = []
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


def environment(snapshot: Snapshot, found: Mapping[str, Finding]) -> EnvironmentDoc:
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
        "libraries": [lib.doc() for lib in libraries(snapshot, found)],
    }


def document(snapshot: Snapshot, results: Results) -> ReportDoc:
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


def schema() -> dict[str, object]:
    loaded: dict[str, object] = json.loads(resources.files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8"))
    return loaded


def write_json(path: str | os.PathLike[str], data: ReportDoc) -> Path:
    """Write the report to ``path`` with :func:`pytest_cudadeps.core.safe_io.write_output`: a regular file is
    replaced atomically (a reader sees the old file or the whole new one), a FIFO or a character device is
    written through, never replaced."""
    write_output(path, json.dumps(data, indent=2, sort_keys=False) + "\n")
    return Path(path)
