"""Every item of a run, by name: the static findings of the snapshot now, the probes when their items run."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from pytest_cudadeps.checks.findings import Finding, Pending
from pytest_cudadeps.core.settings import Settings

if TYPE_CHECKING:
    from pytest_cudadeps.engine.snapshot import Snapshot
    from pytest_cudadeps.probes.runner import ChildGroup
from pytest_cudadeps.checks.static import static_findings


@dataclass(frozen=True)
class Plan:
    """One run's checks: the snapshot, its static findings (the causes are computed from them), and
    every item's pending finding by name."""

    snapshot: Snapshot
    static: tuple[Finding, ...]
    items: dict[str, Pending]


def plan_checks(settings: Settings, *, start_probes: bool = False, group: ChildGroup | None = None) -> Plan:
    """Item name to its pending finding. Names are unique (a repeat gets ``#2``) and depend on files only,
    never on a GPU, so that every xdist worker collects the same list.

    With ``start_probes`` the children start now, in the background, and run while the static
    checks do: the whole run then takes about the time of the slowest child (``import torch``).
    ``group`` holds the children, for the caller to stop when the run ends.
    """
    early = None
    if settings.probes and start_probes:
        # the torch child starts now and imports torch while the engine is imported below and the environment read
        from pytest_cudadeps.probes.torch import start_torch

        early = start_torch(timeout=settings.timeout, paths=settings.paths, inhibit_ld_cache=settings.no_ld_cache,
                            group=group)

    from pytest_cudadeps.engine.distributions import scan

    env = scan(settings.paths)
    from pytest_cudadeps.engine.snapshot import take_snapshot

    snapshot = take_snapshot(settings, env=env)
    static = [_aimed(finding, snapshot) for finding in static_findings(snapshot)]
    items: dict[str, Pending] = {}
    _add(items, static)
    if settings.probes:
        from pytest_cudadeps.probe_items import probe_checks
        from pytest_cudadeps.probes.children import Probes

        probes = Probes(snapshot, group, early=early)
        # the probe items, and the linkage items of a root whose child imports it, held to what its loader did
        items.update({name: _aimed_later(pending, snapshot)
                      for name, pending in probe_checks(snapshot, probes, items).items()})
        if start_probes:
            # after the static work, not before: on two cores the driver child would take the torch child's core
            # while this process works; the torch child is busy with `import torch` until then anyway
            probes.start()
    return Plan(snapshot, tuple(static), items)


def collect_checks(
    settings: Settings, *, start_probes: bool = False, group: ChildGroup | None = None
) -> dict[str, Pending]:
    """The items of :func:`plan_checks` alone."""
    return plan_checks(settings, start_probes=start_probes, group=group).items


def _aimed(finding: Finding, snapshot: Snapshot) -> Finding:
    """The finding with its fix aimed at the checked interpreter (``/opt/venv/bin/python -m pip ...``) when a
    bare ``pip`` or ``uv pip`` would install elsewhere."""
    if snapshot.interpreter is None or not finding.fix:
        return finding
    return replace(finding, fix=snapshot.interpreter.rewrite(finding.fix))


def _aimed_later(pending: Pending, snapshot: Snapshot) -> Pending:
    return lambda: _aimed(pending(), snapshot)


def _add(items: dict[str, Pending], findings: Iterable[Finding]) -> None:
    for finding in findings:
        name, n = finding.name, 1
        while name in items:
            n += 1
            name = f"{finding.name}#{n}"
        items[name] = _constant(finding)


def _constant(finding: Finding) -> Pending:
    return lambda: finding
