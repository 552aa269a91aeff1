"""The ``cuda-bindings[DIST]`` findings: an installed package that imports ``cuda.cudart``, ``cuda.cuda`` or
``cuda.nvrtc`` finds them (:mod:`pytest_cudadeps.engine.legacy_cuda` reads its files; nothing is imported)."""

from __future__ import annotations

from pytest_cudadeps.checks.findings import Finding, failed, passed
from pytest_cudadeps.engine.distributions import Distribution, Environment
from pytest_cudadeps.engine.installers import install_command
from pytest_cudadeps.engine.legacy_cuda import NEW, LegacyImport, bindings_users, legacy_imports, legacy_module

CHECK = "cuda-bindings"
SOURCE = ("cuda-bindings 12.9.10 ships cuda/cudart, cuda/cuda and cuda/nvrtc (deprecated); 13.5.0 ships none of them: "
          "`from cuda import cudart` raises `ImportError: cannot import name 'cudart' from 'cuda' (unknown location)`")


def legacy_cuda_findings(env: Environment) -> list[Finding]:
    """One item per distribution that requires cuda-python or cuda-bindings and imports a module cuda-bindings 13
    removed; none for those that import only ``cuda.bindings``."""
    findings = []
    for dist, named in bindings_users(env):
        found = legacy_imports(dist)
        if found:
            findings.append(_finding(env, dist, named, found))
    return findings


def _where(dist: Distribution, item: LegacyImport) -> str:
    try:
        shown = item.path.relative_to(dist.location)
    except ValueError:
        shown = item.path
    return f"{shown}:{item.line}"


def _finding(env: Environment, dist: Distribution, named: str, found: list[LegacyImport]) -> Finding:
    missing = [item for item in found if legacy_module(env.paths, item.module) is None]
    bindings = env.get("cuda-bindings")
    has = f"cuda-bindings {bindings.version}" if bindings is not None else "no cuda-bindings"
    if not missing:
        first = found[0]
        return passed(CHECK, dist.key, f"{dist} imports `{first.statement}` ({_where(dist, first)}), which {has} "
                                       f"still provides ({legacy_module(env.paths, first.module)})", source=SOURCE)
    first = missing[0]
    modules = sorted({item.module for item in missing})
    return failed(
        CHECK, dist.key,
        f"{dist} imports `{first.statement}` ({_where(dist, first)}), which {has} no longer provides: importing it "
        f"fails with `ImportError: cannot import name '{first.module}' from 'cuda' (unknown location)`",
        *(f"also: `{item.statement}` ({_where(dist, item)})" for item in missing[1:4]),
        f"cuda-bindings 13 moved {', '.join(f'cuda.{m} to {NEW[m]}' for m in modules)}; the releases of {named} "
        f"before 13 still ship them (deprecated), or a release of {dist.name} that imports cuda.bindings fixes it",
        fix=install_command(dist.installer, f"{named}<13"), source=SOURCE,
    )
