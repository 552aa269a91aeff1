"""The Markdown report for a bug tracker (``cudadeps report``, ``cudadeps check --markdown``).

What an upstream maintainer asks for when ``import torch`` fails: the verdict, each root cause and its
fix, the builds of torch and the other frameworks, the CUDA library table, the driver and GPUs,
Python and the platform, and which installer put the distributions there.  It is made from the JSON
report's document (files and the probes' children only: torch is never imported here, so the report
is readable exactly when ``python -m torch.utils.collect_env`` crashes).  The user name, the home
folder and the host name are redacted (:class:`Redactor`) before anything is written.
"""

from __future__ import annotations

import getpass
import os
import re
import socket
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pytest_cudadeps.core.report_format import EnvironmentDoc, ReportDoc
from pytest_cudadeps.engine.snapshot import Snapshot
from pytest_cudadeps.report.document import document
from pytest_cudadeps.report.results import Results

HOST, USER, HOME = "<host>", "<user>", "~"


@dataclass(frozen=True)
class Redactor:
    """Replaces the home folder (by ``~``), the host name and the user name (as a path component or before
    ``@``: a user named ``root`` must not turn "root cause" into "<user> cause")."""

    home: str
    user: str
    host: str

    @classmethod
    def here(cls) -> Redactor:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER: nothing to redact by name
            user = ""
        return cls(os.path.expanduser("~").rstrip("/"), user, socket.gethostname())

    def __call__(self, text: str) -> str:
        if self.home:
            text = re.sub(r"(?<![\w./-])" + re.escape(self.home) + r"(?=[/\s'\"`|)]|$)", HOME, text, flags=re.M)
        if self.host:
            text = re.sub(rf"(?<![\w.-]){re.escape(self.host)}(?![\w-])", HOST, text)
        if self.user:
            name = re.escape(self.user)
            text = re.sub(rf"(?<=/){name}(?=[/\s'\"`|)]|$)|(?<![\w.-]){name}(?=@)", USER, text, flags=re.M)
        return text


def markdown_report(snapshot: Snapshot, results: Results, redact: Redactor | None = None) -> str:
    """The report as Markdown, redacted."""
    return render(document(snapshot, results), redact or Redactor.here())


def render(doc: ReportDoc, redact: Redactor) -> str:
    env = doc["environment"]
    lines = [f"## CUDA environment report ({doc['tool']['name']} {doc['tool']['version']})", "",
             f"**Verdict:** {doc['summary']['line']}", ""]
    lines += _causes(doc)
    lines += _builds(env)
    lines += _driver(env)
    lines += _libraries(env)
    lines += _platform(env)
    lines += _installers(env)
    return redact("\n".join(lines).rstrip("\n") + "\n")


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ") if text not in (None, "") else "-"


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return [*lines, ""]


def _causes(doc: ReportDoc) -> list[str]:
    if not doc["causes"]:
        return []
    lines = ["### Root causes", ""]
    for number, cause in enumerate(doc["causes"], 1):
        count = len(cause["findings"])
        lines.append(f"{number}. `{cause['id']}` ({count} failed check{'s' if count != 1 else ''}): {cause['title']}")
        lines += [f"   - {detail}" for detail in cause["details"]]
        if cause["fix"]:
            lines += ["", "   ```sh", f"   {cause['fix']}", "   ```"]
        lines.append("")
    return lines


def _builds(env: EnvironmentDoc) -> list[str]:
    rows = [(root["name"], root["version"], f"CUDA {root['cuda']}" if root["cuda"] else "-", root["build_source"],
             root["installer"]) for root in env["roots"]]
    return ["### Builds", "", *_table(("root", "version", "build", "read from", "installer"), rows)]


def _driver(env: EnvironmentDoc) -> list[str]:
    info = env["driver"]
    if not info["checked"]:
        return ["### Driver and GPUs", "", "not checked (--cuda-deps-no-probes)", ""]
    if not info["version"]:
        return ["### Driver and GPUs", "", f"none: {info['message'] or info['status']}", ""]
    head = f"driver {info['version']}" + (f", CUDA {info['cuda']}" if info["cuda"] else "")
    rows = [(gpu["index"], gpu["name"], gpu["arch"], gpu["mig"]) for gpu in info["gpus"]]
    return ["### Driver and GPUs", "", head, "", *(_table(("GPU", "name", "architecture", "MIG"), rows) if rows else [])]


def _libraries(env: EnvironmentDoc) -> list[str]:
    if not env["libraries"]:
        return []
    rows = [(f"`{lib['soname']}`", lib["status"], lib["owner"], f"`{lib['path']}`" if lib["path"] else "-",
             lib["via"] if lib["path"] else "-") for lib in env["libraries"]]
    return ["### CUDA libraries", "", *_table(("library", "status", "owner", "path", "found via"), rows)]


def _platform(env: EnvironmentDoc) -> list[str]:
    python, system = env["python"], env["platform"]
    return ["### Python and platform", "",
            f"- Python {python['version']} ({python['implementation']}), `{python['executable']}`",
            f"- {system['system']} {system['release']} {system['machine']}, {system['libc'] or 'libc unknown'}",
            f"- torch's CUDA: {env['torch_cuda'] or '-'}",
            f"- search path: {', '.join(f'`{p}`' for p in env['paths'])}", ""]


def _installers(env: EnvironmentDoc) -> list[str]:
    by: dict[str, list[str]] = defaultdict(list)
    for dist in env["distributions"]:
        by[dist["installer"] or "unknown"].append(dist["name"])
    rows = [(installer, len(names), ", ".join(sorted(names, key=str.lower)))
            for installer, names in sorted(by.items(), key=lambda item: -len(item[1]))]
    return ["### Installers", "", *_table(("installer", "distributions", "names"), rows)]
