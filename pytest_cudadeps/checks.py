"""Every check of a run, by item name: the static ones computed now, the probes when run."""

from __future__ import annotations

from typing import Callable

from .declared import choose_roots, declared_findings
from .environment import scan
from .findings import Finding
from .settings import Settings

Check = Callable[[], Finding]


def _constant(finding: Finding) -> Check:
    return lambda: finding


def collect_checks(settings: Settings) -> dict[str, Check]:
    """Item name to check. Names are unique (a repeat gets ``#2``) and depend on files only, never on a GPU."""
    env = scan(settings.paths)
    roots, findings = choose_roots(env, settings.roots)
    findings += declared_findings(env, roots)
    checks: dict[str, Check] = {}
    for finding in findings:
        name, n = finding.name, 1
        while name in checks:
            n += 1
            name = f"{finding.name}#{n}"
        checks[name] = _constant(finding)
    return checks
