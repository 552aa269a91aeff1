"""The declared-dependency check as a whole: every finding about metadata, for every root of a snapshot."""

from __future__ import annotations

from pytest_cudadeps.checks.findings import Finding, failed, passed, skipped
from pytest_cudadeps.engine.build import build_finding
from pytest_cudadeps.engine.requirements import duplicate_findings, problem_finding, requirement_finding
from pytest_cudadeps.engine.snapshot import Snapshot


def declared_findings(snapshot: Snapshot) -> list[Finding]:
    """Broken metadata, duplicates, torch's build, and each root's requirements, one finding each."""
    env = snapshot.env
    findings = [_unknown_root(name, snapshot) for name in snapshot.unknown_roots]
    findings += [problem_finding(p) for p in env.problems]
    findings += duplicate_findings(env) or [
        passed("installed-once", "all", f"each of the {len(env.distributions)} distributions is installed once")
    ]
    if not snapshot.roots:
        findings.append(skipped(
            "root", "none",
            "no torch and no other distribution that requires an nvidia-* or cuda-* distribution is installed",
        ))
    for root in snapshot.roots:
        if root.build is not None:
            findings.append(build_finding(env, root.dist, root.build))
        findings += [problem_finding(p) for p in root.closure.problems]
        for key, demands in sorted(root.demands.items()):
            findings.append(requirement_finding(env, root.dist, key, demands))
    return findings


def _unknown_root(name: str, snapshot: Snapshot) -> Finding:
    return failed(
        "root", name, f"{name} was given as a root (--cuda-deps-root) but is not installed",
        f"searched: {', '.join(str(p) for p in snapshot.env.paths)}",
        fix=f"pip install '{name}', or drop it from --cuda-deps-root / cuda_deps_root",
    )
