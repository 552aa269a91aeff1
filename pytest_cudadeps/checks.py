"""Every check of a run, by item name: the static ones computed now, the probes when run."""

from __future__ import annotations

from .build import cuda_build
from .declared import choose_roots, declared_findings
from .distributions import scan
from .findings import Check, Finding
from .linkage import Linkage, Owners, analyze, linkage_findings
from .requirements import closure
from .settings import Settings


def _constant(finding: Finding) -> Check:
    return lambda: finding


def collect_checks(settings: Settings) -> dict[str, Check]:
    """Item name to check. Names are unique (a repeat gets ``#2``) and depend on files only, never on a GPU."""
    env = scan(settings.paths)
    roots, findings = choose_roots(env, settings.roots)
    findings += declared_findings(env, roots)
    linkages: dict[str, Linkage] = {}
    owners = Owners(env)
    for root in roots:
        linkages[root.key] = analyze(env, root, use_ld_cache=not settings.no_ld_cache, owners=owners)
        findings += linkage_findings(env, linkages[root.key], closure(env, root), cuda_build(env, root)[0],
                                     verify_hashes=settings.verify_hashes)
    checks: dict[str, Check] = {}
    if settings.probes:
        from .probing import runtime_checks

        checks.update(runtime_checks(env, roots, linkages, settings))
    for finding in findings:
        name, n = finding.name, 1
        while name in checks:
            n += 1
            name = f"{finding.name}#{n}"
        checks[name] = _constant(finding)
    return checks
