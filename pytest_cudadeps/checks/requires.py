"""The declared-dependency check as a whole: every finding about metadata, for every root of a snapshot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from pytest_cudadeps.checks.cuda_major import build_finding, framework_finding
from pytest_cudadeps.checks.findings import Finding, failed, passed, skipped
from pytest_cudadeps.core.text import quote
from pytest_cudadeps.engine.distributions import Distribution, Environment, MetadataProblem, source_of
from pytest_cudadeps.engine.installers import (
    install_command,
    install_note,
    rebuild_editable_command,
    reinstall_command,
    uninstall_command,
)
from pytest_cudadeps.engine.requirements import Demand, known_extras, through_root_extra
from pytest_cudadeps.engine.snapshot import Snapshot


def declared_findings(snapshot: Snapshot) -> list[Finding]:
    """Broken metadata, duplicates, torch's build, and each root's requirements, one finding each."""
    env = snapshot.env
    findings = [_unknown_root(name, snapshot) for name in snapshot.unknown_roots]
    findings += [problem_finding(p) for p in env.problems]
    findings += duplicate_findings(env, strict=snapshot.settings.strict_notes)
    if not snapshot.roots:
        findings.append(skipped(
            "root", "none",
            "no torch and no other distribution that requires an nvidia-* or cuda-* distribution is installed",
        ))
    for root in snapshot.roots:
        if root.build is not None:
            findings.append(build_finding(env, root.dist, root.build, root.demands))
        elif root.framework is not None:
            findings.append(framework_finding(env, root.dist, root.framework, root.demands))
        findings += [problem_finding(p) for p in root.closure.problems]
        for key, demands in sorted(root.demands.items()):
            findings.append(requirement_finding(env, root.dist, key, demands))
    return findings


def _unknown_root(name: str, snapshot: Snapshot) -> Finding:
    return failed(
        "root", name, f"{name} was given as a root (--cuda-deps-root) but is not installed",
        f"searched: {', '.join(str(p) for p in snapshot.env.paths)}",
        fix=f"{install_command('pip', name)}, or drop it from --cuda-deps-root / cuda_deps_root",
    )


def _where(dist: Distribution) -> str:
    return f"{dist} in {dist.location} ({dist.meta_dir.name})"


def _combined(demands: list[Demand]) -> str:
    req0 = demands[0].requirement
    extras = sorted({e for d in demands for e in d.requirement.extras})
    spec = SpecifierSet(",".join(str(d.requirement.specifier) for d in demands if d.requirement.specifier))
    return f"{req0.name}{'[' + ','.join(extras) + ']' if extras else ''}{spec}"


def _chains(demands: list[Demand], limit: int = 3) -> list[str]:
    lines = [f"required by: {d.describe()}" for d in demands[:limit]]
    if len(demands) > limit:
        lines.append(f"(and {len(demands) - limit} more chains)")
    return lines


def requirement_finding(env: Environment, root: Distribution, key: str, demands: list[Demand]) -> Finding:
    """One required distribution: installed, at a version every asker accepts, with its extras.

    The rules in order: installed at all, a valid version, one every demand accepts, the extras
    every demand asks for; the first problem fails the item.
    """
    note = install_note(root.installer)
    asked = _Asked(
        f"{root.key}>{key}", demands, install_command(root.installer, _combined(demands)),
        (f"installer: {root.name} was installed by {root.installer}" if root.installer else
         "installer: no INSTALLER file, pip assumed") + (f"; {note}" if note else ""),
    )
    dist = env.get(key)
    if dist is None:
        extra = through_root_extra(root, demands)
        if extra is not None:
            asked = _Asked(asked.subject, demands, install_command(root.installer, extra), asked.fix_for)
        return asked.failed(f"{demands[0].requirement.name} is not installed",
                            *_chains(demands), "installed: nothing of that name on the path")
    for rule in (_invalid_version, _refused_version, _lacking_extras):
        found = rule(asked, dist)
        if found is not None:
            return found
    specs = sorted({str(d.requirement.specifier) for d in demands if d.requirement.specifier})
    wanted = f" satisfies {', '.join(specs)}" if specs else " is installed"
    return passed(
        "requires", asked.subject, f"{dist}{wanted} ({demands[0].describe()})",
        installed=str(dist.meta_dir), chain=demands[0].describe(),
    )


@dataclass(frozen=True)
class _Asked:
    """One required distribution as the rules see it: the item, the demands on it, and the fix every failure gives."""

    subject: str
    demands: list[Demand]
    fix: str
    fix_for: str  # the installer line that says whom the fix is worded for

    def failed(self, message: str, *details: str) -> Finding:
        return failed("requires", self.subject, message, *details, self.fix_for, fix=self.fix)


def _invalid_version(asked: _Asked, dist: Distribution) -> Finding | None:
    try:
        Version(dist.version)
    except InvalidVersion:
        return asked.failed(f"{dist.name} has version {dist.version!r}, which is not a valid version",
                            *_chains(asked.demands), f"installed: {_where(dist)}")
    return None


def _refused_version(asked: _Asked, dist: Distribution) -> Finding | None:
    version = Version(dist.version)
    refused = [d for d in asked.demands if not d.requirement.specifier.contains(version, prereleases=True)]
    if not refused:
        return None
    return asked.failed(f"{dist.name} {dist.version} does not satisfy {refused[0].requirement.specifier}",
                        *_chains(refused), f"installed: {_where(dist)}")


def _lacking_extras(asked: _Asked, dist: Distribution) -> Finding | None:
    """The first demand that asks for an extra the installed METADATA does not list."""
    provided = known_extras(dist)
    for demand in asked.demands:
        lacking = sorted(canonicalize_name(e) for e in demand.requirement.extras if canonicalize_name(e) not in provided)
        if lacking:
            return asked.failed(
                f"{dist} does not provide the extra{'s' if len(lacking) > 1 else ''} {', '.join(lacking)}",
                f"required by: {demand.describe()}",
                f"installed: {_where(dist)}; its METADATA lists extras: {', '.join(sorted(dist.provides_extras)) or 'none'}",
            )
    return None


def problem_finding(problem: MetadataProblem) -> Finding:
    """``metadata[FOLDER]`` for its METADATA, PKG-INFO or requires.txt (or a single-file egg-info),
    ``metadata[FOLDER/RECORD]`` for another of its files: one item per broken file."""
    path = problem.path
    folder = path.parent if path.name in ("METADATA", "PKG-INFO", "requires.txt", "RECORD", "INSTALLER") else path
    subject = folder.name if path.name in ("METADATA", "PKG-INFO", "requires.txt") or folder == path \
        else f"{folder.name}/{path.name}"
    return failed(
        "metadata", subject, f"{path}: {problem.problem}",
        "installers and importlib.metadata read this file; a broken one hides what is installed",
        fix=_problem_fix(problem, folder),
    )


def _problem_fix(problem: MetadataProblem, folder: Path) -> str:
    """Reinstall the distribution the file belongs to, by its real name and version; one whose name no file
    gives cannot be reinstalled by name: its folder goes, and the package it belonged to is reinstalled."""
    source = source_of(folder) if folder.name.endswith(".dist-info") else None
    if source is not None and source.kind == "editable":  # the developer's build: rebuilt from its source
        return f"rebuild the editable install from its source: {rebuild_editable_command(problem.installer, source.where)}"
    if problem.name and problem.version:
        spec = f"{problem.name}=={problem.version}"
        return f"reinstall {problem.name} {problem.version}: {reinstall_command(problem.installer, spec)}"
    return (f"remove the metadata folder that names no distribution (`rm -r {quote(str(folder))}`), then reinstall "
            f"the package it belonged to")


def duplicate_findings(env: Environment, *, strict: bool = False) -> list[Finding]:
    """The same distribution installed twice on the path: Python uses the first, pip may change the other.

    An ``.egg-info`` beside a ``.dist-info`` of the same project in the same folder is left over from an older
    install (setup.py develop, a pre-wheel pip): importlib.metadata and pip take the dist-info and never see it,
    so it is a note on ``installed-once[all]``, not a second copy (unless ``strict``: --cuda-deps-strict-notes).
    """
    findings, stale = [], []
    for key, copies in sorted(env.by_key.items()):
        live = [dist for dist in copies if not _stale_egg_info(dist, copies)]
        stale += [(dist, live[0]) for dist in copies if dist not in live]
        if len(live) < 2:
            continue
        findings.append(failed(
            "installed-once", key,
            f"{live[0].name} is installed {len(live)} times on the path",
            *(f"{'used' if i == 0 else 'hidden'}: {_where(d)}" for i, d in enumerate(live)),
            fix=f"run `{uninstall_command(live[0].installer, live[0].name)}` until `pip show {quote(live[0].name)}` "
                f"finds nothing, then install the version you need once",
        ))
    if findings:
        return findings
    return [_stale_note(env, stale, strict)]


def _stale_egg_info(dist: Distribution, copies: tuple[Distribution, ...]) -> bool:
    return dist.meta_dir.name.endswith(".egg-info") and any(
        other.location == dist.location and other.meta_dir.name.endswith(".dist-info") for other in copies)


def _stale_note(env: Environment, stale: list[tuple[Distribution, Distribution]], strict: bool) -> Finding:
    """``installed-once[all]``: passed, with a note naming each stale egg-info and its removal."""
    summary = f"each of the {len(env.by_key)} distributions is installed once"
    if not stale:
        return passed("installed-once", "all", summary)
    # prose, not a command: importlib.metadata (and so pip) reads the dist-info beside it
    lines = [f"{old.meta_dir.name} in {old.location} is left from an older install of {old.name}: importlib.metadata "
             f"(and so pip) reads {used.meta_dir.name} beside it" for old, used in stale]
    fix = "remove the stale metadata: " + " && ".join(f"rm -r {quote(str(old.meta_dir))}" for old, _ in stale)
    what = f"{len(stale)} stale egg-info folder{'s' if len(stale) > 1 else ''} beside the dist-info"
    if strict:
        return failed("installed-once", "all", f"{summary}, but {what} (--cuda-deps-strict-notes)", *lines, fix=fix)
    return passed("installed-once", "all", f"{summary}; {what} (a note, not a failure)",
                  note=f"{'; '.join(lines)}; {fix}")
