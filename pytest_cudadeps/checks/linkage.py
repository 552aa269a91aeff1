"""The linkage findings: one item per CUDA library a root needs, each problem found by one small rule.

For one needed library the rules ask, in this order: does the loader find it at all, and
would it map the file (:func:`_not_found`, :func:`_refused`)?  Does a requirement of the
root declare a distribution that provides it (:func:`_undeclared`)?  Is the file the one
of that distribution, or a foreign copy (system CUDA, ``LD_LIBRARY_PATH``, ``LD_PRELOAD``,
:func:`_foreign`)?  Are its bytes those its RECORD lists (:func:`_bytes`)?  Does it define
the symbol versions and nvJitLink entry points its users need (:func:`_versions`)?  The
first problem is the item's message; the wheel and the fix come from
:class:`~pytest_cudadeps.engine.providers.ProviderResolver`.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

from pytest_cudadeps.checks.findings import Finding, failed, passed, skipped
from pytest_cudadeps.core.safe_io import open_regular
from pytest_cudadeps.engine.distributions import Distribution, Environment, RecordEntry
from pytest_cudadeps.engine.elf import ElfInfo, ElfProblem, dynamic_symbols, read_elf, read_header, symbol_table
from pytest_cudadeps.engine.installers import reinstall_command_for
from pytest_cudadeps.engine.ldso import Resolution, Step, Via
from pytest_cudadeps.engine.linkage import Linkage, ResolvedLibrary
from pytest_cudadeps.engine.owners import Owners, is_shared_object_name
from pytest_cudadeps.engine.providers import ProviderResolver, Provision
from pytest_cudadeps.engine.requirements import Closure
from pytest_cudadeps.tables.wheels import DRIVER_SONAMES

CHECK = "linkage"
# the problems of which file the loader takes (the loader's own answer settles them), by rule
WHICH_FILE = ("not-found", "refused", "foreign")
_NVJITLINK_SYMBOL = r"__nvJitLink\w*_\d+_\d+$"


@dataclass(frozen=True)
class Problem:
    """What one rule found: its lines (the first may become the item's message), details, and a fix."""

    lines: tuple[str, ...]
    details: tuple[str, ...] = ()
    fix: str | None = None  # None: the resolver's fix for the library
    kind: str = ""  # the rule's name: which file (not-found, refused, foreign) or what is in it (bytes, versions)


@dataclass(frozen=True)
class _Library:
    """Everything the rules look at for one needed library."""

    env: Environment
    linkage: Linkage
    lib: ResolvedLibrary
    resolver: ProviderResolver
    declared: Provision | None
    owned: tuple[tuple[Distribution, RecordEntry], ...]
    verify_hashes: bool

    @property
    def root(self) -> Distribution:
        return self.linkage.root

    def owner_text(self) -> str:
        return f"owned by {self.owned[0][0]}" if self.owned else "owned by no installed distribution"


def linkage_findings(
    env: Environment,
    linkage: Linkage,
    declared: Closure,
    cuda: str | None,
    *,
    owners: Owners | None = None,
    verify_hashes: bool = False,
    resolver: ProviderResolver | None = None,
) -> list[Finding]:
    """One finding per needed CUDA library of the root, plus one per own object the loader would refuse.

    ``resolver``: the snapshot's, which also knows what the root's extras declare.
    """
    owners = owners or Owners(env)
    resolver = resolver or ProviderResolver(env, linkage.root, declared.by_key(), owners, cuda)
    findings = own_object_findings(env, linkage)
    for lib in linkage.cuda_libraries():
        case = _Library(env, linkage, lib, resolver, resolver.declared(lib.soname, lib.path),
                        tuple(owners.of(lib.path)) if lib.path else (), verify_hashes)
        findings.append(library_finding(case))
    return findings


def own_object_findings(env: Environment, linkage: Linkage) -> list[Finding]:
    """``elf[ROOT>FILE]`` for each of the root's own objects that the loader would refuse."""
    root = linkage.root
    host = read_header(linkage.executable) if linkage.executable else None
    findings = []
    for obj in linkage.objects:
        problem = _info(linkage, obj)
        if isinstance(problem, ElfInfo) and host and (problem.elf_class, problem.machine) != host:
            # dlopen of a path of another machine fails with ENOENT, as if the file were not there
            problem = ElfProblem(obj, f"wrong ELF class or machine ({problem.elf_class}-bit {problem.machine}, "
                                      f"this Python is {host[0]}-bit {host[1]}): cannot open shared object file")
        if isinstance(problem, ElfProblem):
            findings.append(failed(
                "elf", f"{root.key}>{obj.name}", f"{_relative(obj, env)}: {problem.problem}",
                f"it is one of {root}'s own shared objects; loading it fails with `{obj}: {problem.problem}`",
                fix=reinstall_command_for(root, f"{root.name}=={root.version}"),
            ))
    findings += _missing_own_objects(env, linkage)
    return findings


def _missing_own_objects(env: Environment, linkage: Linkage) -> list[Finding]:
    """The root's shared objects its RECORD lists but that are gone: its import would fail on them."""
    root = linkage.root
    gone = sorted({path for path, _ in root.owned_files(".so")
                   if is_shared_object_name(path.name) and not os.path.lexists(path)})
    return [failed(
        "elf", f"{root.key}>{path.name}", f"{_relative(path, env)}: listed in {root}'s RECORD but missing",
        f"loading it fails with `{path.name}: cannot open shared object file: No such file or directory`",
        fix=reinstall_command_for(root, f"{root.name}=={root.version}"),
    ) for path in gone]


def library_finding(case: _Library) -> Finding:
    """The finding of one needed CUDA library: the first problem as the message, or what it resolved to."""
    lib = case.lib
    subject = f"{case.root.key}>{lib.soname}"
    if lib.soname in DRIVER_SONAMES:
        return _driver_finding(case, subject)
    problems = _problems(case)
    if problems:
        lines = [line for problem in problems for line in problem.lines]
        details = [*_context(case), *(line for problem in problems for line in problem.details)]
        fix = next((p.fix for p in reversed(problems) if p.fix), None) or _default_fix(case)
        return failed(CHECK, subject, lines[0], *lines[1:], *details, fix=fix, path=str(lib.path or ""),
                      via=str(lib.via), problem=",".join(p.kind for p in problems))
    owner = f"{case.owned[0][0]}" if case.owned else "no distribution"
    return passed(CHECK, subject, f"{lib.soname} -> {lib.path} ({owner}, via {lib.via})",
                  path=str(lib.path), owner=owner, via=str(lib.via))


def _problems(case: _Library) -> list[Problem]:
    """The rules in order: the loader's verdict first; the others only where it has none."""
    head = _not_found(case) or _refused(case)
    undeclared = _undeclared(case)
    if head is not None:
        return [p for p in (head, undeclared) if p is not None]
    found = [p for p in (undeclared, _foreign(case)) if p is not None]
    if found:
        return found
    later = _bytes(case) or _versions(case)
    return [later] if later is not None else []


def _context(case: _Library) -> list[str]:
    """The lines every failure of this library carries: who needs it, who declares it, whether it is installed."""
    lines = [f"needed by: {_needed_by(case.lib, case.env)}"]
    if case.declared is None:
        if case.lib.path is not None:
            lines.append(f"resolves to: {case.lib.path} (via {case.lib.via}, {case.owner_text()})")
        return lines
    lines.append(f"declared: {case.declared.chain}")
    if case.declared.installed is None:
        lines.append(f"{case.declared.key} is not installed")
    return lines


def _default_fix(case: _Library) -> str:
    if case.declared is not None:
        return case.declared.fix(case.root.installer)
    provider = case.resolver.table_provider(case.lib.soname)
    if provider is not None:
        return Provision(provider.distribution, "", provider.spec(case.resolver.cuda), None,
                         declared=False).fix(case.root.installer)
    return case.resolver.fix(case.lib.soname, None)


# --- the rules: each returns its problem, or None ------------------------------------------------


def _not_found(case: _Library) -> Problem | None:
    lib = case.lib
    if lib.path is not None:
        return None
    return Problem(
        (f"{lib.soname} is not found: loading {case.root.name} fails with "
         f"`OSError: {lib.soname}: cannot open shared object file: No such file or directory`",),
        ("searched: " + searched_text(lib.resolution),), kind=WHICH_FILE[0],
    )


def _refused(case: _Library) -> Problem | None:
    lib = case.lib
    if lib.path is None or lib.resolution is None or not lib.resolution.problem:
        return None
    return Problem((f"{lib.soname} resolves to {lib.path}, which the loader refuses: {lib.resolution.problem}",),
                   kind=WHICH_FILE[1])


def _undeclared(case: _Library) -> Problem | None:
    if case.declared is not None:
        return None
    provider = case.resolver.table_provider(case.lib.soname)
    for_cuda = f" (for CUDA {case.resolver.cuda} it comes from {provider.distribution})" if provider else ""
    return Problem(
        (f"{case.lib.soname} is needed but no requirement of {case.root} declares a distribution that provides it"
         f"{for_cuda}: the installed metadata does not match the binaries (metadata of another platform or build?)",),
        fix=_default_fix(case), kind="undeclared",
    )


def _foreign(case: _Library) -> Problem | None:
    """The file the loader picks is not the declaring wheel's: say whose it is and what it lacks."""
    lib, declared = case.lib, case.declared
    if lib.path is None or declared is None or declared.key in {d.key for d, _ in case.owned}:
        return None
    dist = declared.installed
    lines = [
        f"{lib.soname} resolves to {lib.path} (via {lib.via}, {case.owner_text()}), not to the copy of "
        f"{dist or declared.key + ' (not installed)'}, which {case.root.name} declares: the import may work by "
        f"accident with a foreign library",
        *_version_problems(case.linkage, lib, symbols=True),
    ]
    if dist is None:
        return Problem(tuple(lines), kind=WHICH_FILE[2])
    wheel_copy = [p for p, d in case.resolver.owners.files_named(lib.soname) if d.key == declared.key]
    detail = f"{dist}'s copy: {wheel_copy[0] if wheel_copy else 'none (its RECORD lists no ' + lib.soname + ')'}"
    if lib.via.step is Step.PRELOAD:
        fix = f"remove {lib.path} from LD_PRELOAD"
    elif lib.via.step is Step.LD_LIBRARY_PATH and wheel_copy:
        fix = f"remove {lib.path.parent} from LD_LIBRARY_PATH"
    else:
        fix = declared.fix(case.root.installer)
    return Problem(tuple(lines), (detail,), fix, kind=WHICH_FILE[2])


def _bytes(case: _Library) -> Problem | None:
    """Two RECORDs claim the file, or its bytes are not what its RECORD says."""
    path = case.lib.path
    if path is None or not case.owned:
        return None
    text = _bytes_problem(path, case.owned, case.verify_hashes)
    if text is None:
        return None
    owner = case.owned[0][0]
    return Problem((text,), fix=reinstall_command_for(owner, f"{owner.name}=={owner.version}", case.root.installer), kind="bytes")


def _versions(case: _Library) -> Problem | None:
    lib = case.lib
    if lib.path is None:
        return None
    found = _version_problems(case.linkage, lib)
    if not found:
        return None
    return Problem((f"{lib.soname} at {lib.path} lacks what its users need: {found[0]}",), tuple(found[1:4]),
                   kind="versions")


# --- what the rules read -------------------------------------------------------------------------


def _info(linkage: Linkage, path: Path) -> ElfInfo | ElfProblem:
    known = linkage.info(path)
    return known if known is not None else read_elf(path)


def _relative(path: Path, env: Environment) -> str:
    """A path inside a scanned folder as ``torch/lib/x.so`` (the folder is in the report header)."""
    for location in env.paths:
        if location in path.parents:
            return str(path.relative_to(location))
    return str(path)


def _needed_by(lib: ResolvedLibrary, env: Environment, limit: int = 3) -> str:
    names = [_relative(p, env) for p in lib.needed_by[:limit]]
    more = f" and {len(lib.needed_by) - limit} more" if len(lib.needed_by) > limit else ""
    return ", ".join(names) + more


def _driver_finding(case: _Library, subject: str) -> Finding:
    lib = case.lib
    if lib.path is None:
        return skipped(
            CHECK, subject,
            f"{lib.soname} belongs to the NVIDIA driver, not to a wheel, and no driver is installed here "
            f"(needed by {_needed_by(lib, case.env)}); the driver checks tell more",
        )
    return passed(CHECK, subject, f"{lib.soname} -> {lib.path} (the driver's, via {lib.via})", path=str(lib.path))


def _hash_of(path: Path) -> str:
    import hashlib  # only when two RECORDs claim a file, or with --cuda-deps-verify-hashes

    digest = hashlib.sha256()
    with os.fdopen(open_regular(path), "rb") as stream:  # never blocks on a FIFO
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return "sha256=" + base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def _bytes_problem(
    path: Path, owned: tuple[tuple[Distribution, RecordEntry], ...], verify_hashes: bool
) -> str | None:
    try:
        size = path.stat().st_size
    except OSError as exc:
        return f"{path} cannot be read: {exc.strerror}"
    if len(owned) > 1:
        digest = _hash_of(path)
        whose = [str(d) for d, e in owned if e.hash == digest]
        also = "" if len(whose) < 2 else f" (and identical in {', '.join(whose[1:])})"
        return (f"{path} is claimed by {len(owned)} RECORDs: {', '.join(str(d) for d, _ in owned)}; "
                f"the bytes on disk are {whose[0] + also if whose else 'none of theirs'}")
    dist, entry = owned[0]
    if entry.size and entry.size.isdigit() and int(entry.size) != size:
        return f"{path} is {size} bytes but {dist}'s RECORD says {entry.size}: another package overwrote it"
    if verify_hashes and entry.hash and _hash_of(path) != entry.hash:
        return f"{path} does not match the sha256 in {dist}'s RECORD: another package overwrote it"
    return None


def _version_problems(linkage: Linkage, lib: ResolvedLibrary, *, symbols: bool = False) -> list[str]:
    """What the users of ``lib`` need and the resolved file lacks, in ld.so's words.

    A missing version node: ``version `V' not found (required by U)``.  A file with no
    version definitions at all: when a versioned symbol is looked up in it, ld.so aborts the
    process (``Inconsistency detected by ld.so: ... check_match: Assertion ... failed!``, exit
    status 127, measured with glibc 2.36 through dlopen; at program start it first warns
    ``no version information available``).  nvJitLink: the ``__nvJitLink*_M_m`` entry points.
    With ``symbols`` (a foreign library), every versioned symbol the users need is looked up too.
    """
    assert lib.path is not None
    info = _info(linkage, lib.path)
    if not isinstance(info, ElfInfo):
        return []
    problems, unversioned_users = missing_version_nodes(linkage, lib, info)
    if symbols or unversioned_users:
        problems += _symbol_problems(linkage, lib)
    if unversioned_users and not problems:
        user, version = unversioned_users[0]
        problems.append(
            f"{lib.path} has no symbol versions but {user} asks for version `{version}': loading it aborts the "
            f"process with `Inconsistency detected by ld.so: dl-lookup.c: check_match: Assertion ... failed!` "
            f"(exit status 127; at program start ld.so first warns `no version information available`)"
        )
    if lib.soname.startswith("libnvJitLink"):
        problems += _nvjitlink_problems(lib, lib.path)
    return problems


def missing_version_nodes(
    linkage: Linkage, lib: ResolvedLibrary, info: ElfInfo
) -> tuple[list[str], list[tuple[Path, str]]]:
    """(``version `V' not found`` lines, the users asking for a version of a file that defines none)."""
    problems: list[str] = []
    unversioned_users: list[tuple[Path, str]] = []
    for user in lib.needed_by:
        user_info = _info(linkage, user)
        if not isinstance(user_info, ElfInfo):
            continue
        for version in user_info.versions_needed_from(lib.soname):
            if not info.verdef:
                unversioned_users.append((user, version))
            elif version not in info.verdef:
                problems.append(f"version `{version}' not found (required by {user})")
    return problems, unversioned_users


def _nvjitlink_problems(lib: ResolvedLibrary, path: Path) -> list[str]:
    """nvJitLink's minor version is in its symbol names (``__nvJitLinkComplete_13_1``), not its version node."""
    defined, _ = dynamic_symbols(path, _NVJITLINK_SYMBOL)
    problems = []
    for user in lib.needed_by:
        _, wanted = dynamic_symbols(user, _NVJITLINK_SYMBOL)
        problems += [f"undefined symbol: {symbol} (needed by {user}; {path} is older than it needs)"
                     for symbol in sorted(wanted - defined)]
    return problems


def _symbol_problems(linkage: Linkage, lib: ResolvedLibrary, limit: int = 3) -> list[str]:
    """The loader's ``undefined symbol: NAME, version V`` for the users of a foreign ``lib``.

    Reads whole symbol tables (0.1 s for libtorch_cpu), so it runs only for a library that
    resolves outside the wheel that should provide it.
    """
    assert lib.path is not None
    provided = symbol_table(lib.path)
    problems: list[str] = []
    for user in lib.needed_by:
        user_info = _info(linkage, user)
        versions = frozenset(user_info.versions_needed_from(lib.soname)) if isinstance(user_info, ElfInfo) else frozenset()
        if not versions:
            continue
        wanted = symbol_table(user, versions)
        for version in sorted(versions):
            missing = provided.lacks(wanted.needed.get(version, frozenset()), version)
            if missing:
                more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
                problems.append(f"undefined symbol: {missing[0]}, version {version}{more} (needed by {user})")
        if len(problems) >= limit:
            break
    return problems


def searched_text(resolution: Resolution | None) -> str:
    """The places tried, grouped by the step of the search that tried them."""
    groups: dict[Via, list[str]] = {}
    for place in resolution.searched if resolution is not None else ():
        groups.setdefault(place.via, []).append(str(place.folder) if place.folder is not None else "")
    parts = [f"{via} ({', '.join(f for f in folders if f)})" if any(folders) else str(via)
             for via, folders in groups.items()]
    if not any(via.step is Step.LD_LIBRARY_PATH for via in groups):
        parts.insert(len(parts) - 1 if parts else 0, "LD_LIBRARY_PATH (unset)")
    return "; ".join(parts)

