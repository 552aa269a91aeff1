"""The declared-dependency check on a site-packages tree, its findings by item name."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pytest_cudadeps.checks.findings import Finding, Outcome
from pytest_cudadeps.checks.requires import declared_findings
from pytest_cudadeps.core.settings import Settings
from pytest_cudadeps.engine.snapshot import take_snapshot


def run(*paths: Path, roots: Sequence[str] = ()) -> dict[str, Finding]:
    """Every finding of the declared-dependency check, by item name."""
    findings = declared_findings(take_snapshot(Settings(paths=tuple(map(str, paths)), roots=tuple(roots)),
                                               with_linkage=False))
    by_name = {f.name: f for f in findings}
    assert len(by_name) == len(findings), "item names must be unique"
    return by_name


def failures(found: dict[str, Finding]) -> dict[str, Finding]:
    """The failing findings only."""
    return {name: f for name, f in found.items() if f.outcome is Outcome.FAIL}


def requires_subjects(found: dict[str, Finding], root: str = "torch") -> set[str]:
    """The distributions ``root`` has a requires[...] item for."""
    prefix = f"requires[{root}>"
    return {name[len(prefix):-1] for name in found if name.startswith(prefix)}
