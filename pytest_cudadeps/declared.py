"""The declared-dependency check as a whole: every finding about metadata, for every root."""

from __future__ import annotations

from collections.abc import Sequence

from .build import check_build
from .distributions import Distribution, Environment
from .findings import Finding, failed, passed, skipped
from .requirements import check_requirement, closure, default_roots, duplicate_findings, problem_finding


def choose_roots(env: Environment, names: Sequence[str]) -> tuple[list[Distribution], list[Finding]]:
    """The roots the user named (each must be installed), or the default ones."""
    if not names:
        return default_roots(env), []
    roots, findings = [], []
    for name in sorted(set(names)):
        dist = env.get(name)
        if dist is None:
            findings.append(failed(
                "root", name, f"{name} was given as a root (--cuda-deps-root) but is not installed",
                f"searched: {', '.join(str(p) for p in env.paths)}",
                fix=f"pip install '{name}', or drop it from --cuda-deps-root / cuda_deps_root",
            ))
        else:
            roots.append(dist)
    return roots, findings


def declared_findings(env: Environment, roots: Sequence[Distribution]) -> list[Finding]:
    findings = [problem_finding(p) for p in env.problems]
    findings += duplicate_findings(env) or [
        passed("installed-once", "all", f"each of the {len(env.distributions)} distributions is installed once")
    ]
    if not roots:
        findings.append(skipped(
            "root", "none",
            "no torch and no other distribution that requires an nvidia-* or cuda-* distribution is installed",
        ))
    for root in roots:
        if root.key == "torch":
            findings.append(check_build(env, root))
        found = closure(env, root)
        findings += [problem_finding(p) for p in found.problems]
        for key, demands in sorted(found.by_key().items()):
            findings.append(check_requirement(env, root, key, demands))
    return findings
