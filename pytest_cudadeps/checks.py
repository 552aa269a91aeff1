"""Every item of a run, by name: the static findings of the snapshot now, the probes when their items run."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .declared import declared_findings
from .findings import Finding, Pending
from .linkage_rules import linkage_findings
from .security import security_findings
from .settings import Settings
from .snapshot import Snapshot, take_snapshot

if TYPE_CHECKING:
    from .children import ChildGroup


def static_findings(snapshot: Snapshot) -> list[Finding]:
    """The declared-dependency, linkage and security findings: metadata, ELF files and stat only, nothing run."""
    findings = declared_findings(snapshot)
    for root in snapshot.roots:
        if root.linkage is not None:
            findings += linkage_findings(snapshot.env, root.linkage, root.closure, root.cuda, owners=snapshot.owners,
                                         verify_hashes=snapshot.settings.verify_hashes)
    return findings + security_findings(snapshot)


def collect_checks(
    settings: Settings, *, start_probes: bool = False, group: ChildGroup | None = None
) -> dict[str, Pending]:
    """Item name to its pending finding. Names are unique (a repeat gets ``#2``) and depend on files only,
    never on a GPU, so that every xdist worker collects the same list.

    With ``start_probes`` the children start now, in the background, and run while the static
    checks do: the whole run then takes about the time of the slowest child (``import torch``).
    ``group`` holds the children, for the caller to stop when the run ends.
    """
    snapshot = take_snapshot(settings)
    items: dict[str, Pending] = {}
    if settings.probes:
        from .probing import Probes, probe_checks

        probes = Probes(snapshot, group)
        items.update(probe_checks(snapshot, probes))
        if start_probes:
            probes.start()
    _add(items, static_findings(snapshot))
    return items


def _add(items: dict[str, Pending], findings: Iterable[Finding]) -> None:
    for finding in findings:
        name, n = finding.name, 1
        while name in items:
            n += 1
            name = f"{finding.name}#{n}"
        items[name] = _constant(finding)


def _constant(finding: Finding) -> Pending:
    return lambda: finding
