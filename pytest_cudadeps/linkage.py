"""Native linkage: what each binary of a root needs, where ld.so will find it, and who owns it."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name

from .elf import ElfInfo, ElfProblem, dynamic_symbols, read_header, symbol_table
from .distributions import Distribution, Environment, RecordEntry
from .findings import Finding, failed, passed, skipped
from .installers import install_command, reinstall_command
from .ldso import LoaderModel, Resolution
from .requirements import Closure, Demand
from .providers import DRIVER_SONAMES, Provider, provider_for


@dataclass(frozen=True)
class ResolvedLibrary:
    """One needed soname and the file the loader would map for it.

    ``path`` is None when the loader finds nothing; ``via`` says which step of the
    search found it (``DT_RPATH``, ``LD_LIBRARY_PATH``, ``DT_RUNPATH``, ``ld.so.cache``,
    ``default``); ``owner`` is the distribution whose RECORD lists ``path``.
    """

    soname: str
    path: Path | None
    via: str
    needed_by: tuple[Path, ...]
    owner: str | None


@dataclass(frozen=True)
class Linkage:
    """Every library a root's own shared objects need, transitively, as the loader resolves them."""

    root: Distribution
    objects: tuple[Path, ...]  # the root's own shared objects the walk started from
    libraries: tuple[ResolvedLibrary, ...]  # sorted by soname
    model: LoaderModel = field(repr=False, compare=False, default_factory=lambda: LoaderModel(()))
    owners: Owners | None = field(repr=False, compare=False, default=None)

    def cuda_libraries(self) -> tuple[ResolvedLibrary, ...]:
        return tuple(lib for lib in self.libraries if is_cuda_soname(lib.soname))


CUDA_SONAME_PREFIXES = (
    "libcuda", "libcublas", "libcufft", "libcurand", "libcusolver", "libcusparse", "libcufile",
    "libnvrtc", "libnvJitLink", "libnvToolsExt", "libnvtx", "libcupti", "libcudnn", "libnccl",
    "libnvshmem", "libcusparseLt", "libnvperf", "libnvidia-ml", "libcheckpoint", "libnvblas",
)


def is_cuda_soname(soname: str) -> bool:
    return soname.startswith(CUDA_SONAME_PREFIXES)


# ---------------------------------------------------------------------------------------------
# The walk: the root's own objects, loaded in the order the root loads them.

def root_objects(env: Environment, root: Distribution) -> tuple[Path, ...]:
    """The root's own shared objects, in the order its import loads them.

    torch: ``torch/lib/libtorch_global_deps.so`` first (torch/__init__.py dlopens it with
    RTLD_GLOBAL), then ``torch/_C*.so``, then the rest of ``torch/lib/*.so*``.  Any other
    root: the shared objects its RECORD lists.
    """
    package = env.package_dir(root, root.key.replace("-", "_"))
    if root.key == "torch" and package is not None:
        lib = package / "lib"
        first = [lib / "libtorch_global_deps.so"]
        extensions = sorted(package.glob("_C*.so"))
        rest = sorted(p for p in lib.glob("*.so*") if p not in first)
        candidates = [p for p in (*first, *extensions, *rest) if p.is_file() or p.is_symlink()]
    else:
        candidates = sorted(p for p, _ in root.files() if _is_shared_object_name(p.name))
    seen: list[Path] = []
    for path in candidates:
        if path not in seen:
            seen.append(path)
    return tuple(seen)


def _is_shared_object_name(name: str) -> bool:
    return name.endswith(".so") or ".so." in name


class Owners:
    """Which distributions' RECORD files list each shared object (an index built once per environment).

    Only shared-object names are indexed: torch alone lists some 20,000 files.
    """

    def __init__(self, env: Environment) -> None:
        self._index: dict[str, list[tuple[Distribution, RecordEntry]]] = {}
        for dist in env.distributions:
            if env.get(dist.key) is not dist:
                continue  # a hidden duplicate: its files are not the ones Python uses
            base = str(dist.location)
            for entry in dist.record_entries(".so"):
                if ".so" in entry.path:
                    key = os.path.normpath(os.path.join(base, entry.path))
                    self._index.setdefault(key, []).append((dist, entry))

    def of(self, path: Path) -> list[tuple[Distribution, RecordEntry]]:
        found = self._index.get(os.path.normpath(path))
        if found:
            return found
        return self._index.get(os.path.realpath(path), [])

    def files_named(self, name: str) -> list[tuple[Path, Distribution]]:
        return [(Path(p), d) for p, owners in self._index.items()
                if os.path.basename(p) == name for d, _ in owners]


def analyze(
    env: Environment,
    root: Distribution,
    *,
    use_ld_cache: bool = True,
    ld_library_path: str | None = None,
    ld_preload: str | None = None,
    owners: Owners | None = None,
) -> Linkage:
    """Load the root's objects in a simulated process and record where each needed library comes from."""
    owners = owners or Owners(env)
    model = LoaderModel.for_this_process(use_cache=use_ld_cache, ld_library_path=ld_library_path,
                                         ld_preload=ld_preload)
    model.descend = lambda path, soname: is_cuda_soname(soname) or any(loc in path.parents for loc in env.paths)
    objects = root_objects(env, root)
    model.load(objects)
    by_soname: dict[str, list[Resolution]] = {}
    for resolution in model.resolutions:
        by_soname.setdefault(resolution.soname, []).append(resolution)
    libraries = []
    for soname, resolutions in sorted(by_soname.items()):
        first = resolutions[0]
        path = model.loaded.get(soname, first.path)
        owned = owners.of(path) if path else []
        libraries.append(ResolvedLibrary(
            soname, path if not first.problem else first.path, first.via,
            tuple(dict.fromkeys(r.needed_by for r in resolutions)),
            owned[0][0].name if owned else None,
        ))
    return Linkage(root, objects, tuple(libraries), model, owners)


# ---------------------------------------------------------------------------------------------
# The findings: one item per needed CUDA library.

_NVJITLINK_SYMBOL = r"__nvJitLink\w*_\d+_\d+$"


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


def _hash_of(path: Path) -> str:
    import hashlib  # only when two RECORDs claim a file, or with --cuda-deps-verify-hashes

    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return "sha256=" + base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def _bytes_problem(lib: ResolvedLibrary, owned: list[tuple[Distribution, RecordEntry]], verify_hashes: bool) -> str | None:
    """Two RECORDs claim the file, or its bytes are not what its RECORD says (d)."""
    assert lib.path is not None
    try:
        size = lib.path.stat().st_size
    except OSError as exc:
        return f"{lib.path} cannot be read: {exc.strerror}"
    if len(owned) > 1:
        digest = _hash_of(lib.path)
        whose = [str(d) for d, e in owned if e.hash == digest]
        return (f"{lib.path} is claimed by {len(owned)} RECORDs: {', '.join(str(d) for d, _ in owned)}; "
                f"the bytes on disk are {whose[0] + _also(whose) if whose else 'none of theirs'}")
    dist, entry = owned[0]
    if entry.size and entry.size.isdigit() and int(entry.size) != size:
        return f"{lib.path} is {size} bytes but {dist}'s RECORD says {entry.size}: another package overwrote it"
    if verify_hashes and entry.hash and _hash_of(lib.path) != entry.hash:
        return f"{lib.path} does not match the sha256 in {dist}'s RECORD: another package overwrote it"
    return None


def _also(whose: list[str]) -> str:
    return "" if len(whose) == 1 else f" (and identical in {', '.join(whose[1:])})"


def _version_problems(linkage: Linkage, lib: ResolvedLibrary, *, symbols: bool = False) -> list[str]:
    """What the users of ``lib`` need and the resolved file lacks (e), in ld.so's words.

    A missing version node: ``version `V' not found (required by U)``.  A file with no
    version definitions at all: when a versioned symbol is looked up in it, ld.so aborts the
    process (``Inconsistency detected by ld.so: ... check_match: Assertion ... failed!``, exit
    status 127, measured with glibc 2.36 through dlopen; at program start it first warns
    ``no version information available``).  nvJitLink: the ``__nvJitLink*_M_m`` entry points.  With ``symbols``
    (a foreign library), every versioned symbol the users need is looked up too.
    """
    assert lib.path is not None
    info = linkage.model.info(lib.path)
    if not isinstance(info, ElfInfo):
        return []
    problems = []
    unversioned_users = []
    for user in lib.needed_by:
        user_info = linkage.model.info(user)
        if not isinstance(user_info, ElfInfo):
            continue
        for version in user_info.versions_needed_from(lib.soname):
            if not info.verdef:
                unversioned_users.append((user, version))
            elif version not in info.verdef:
                problems.append(f"version `{version}' not found (required by {user})")
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
        defined, _ = dynamic_symbols(lib.path, _NVJITLINK_SYMBOL)
        for user in lib.needed_by:
            _, wanted = dynamic_symbols(user, _NVJITLINK_SYMBOL)
            for symbol in sorted(wanted - defined):
                problems.append(f"undefined symbol: {symbol} (needed by {user}; {lib.path} is older than it needs)")
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
        user_info = linkage.model.info(user)
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


@dataclass(frozen=True)
class _Declared:
    """The distribution the root's metadata names for a soname, and how it names it."""

    key: str
    chain: str  # "torch 2.14.1 > cuda-toolkit[cudart] 13.0.3.0 > nvidia-cuda-runtime==13.0.96.*"
    wanted: str  # what to install: "nvidia-cuda-runtime==13.0.96.*"


def _declared_provider(
    linkage: Linkage, lib: ResolvedLibrary, provider: Provider | None, demands: dict[str, list[Demand]], owners: Owners
) -> _Declared | None:
    """Which declared requirement provides ``lib``, in this order: the owner of the file the loader
    picks (when declared), the root itself, the provider table, cuda-toolkit's extra for it, any other
    declared distribution whose RECORD lists that soname."""
    root = linkage.root
    owning = [d.key for d, _ in owners.of(lib.path)] if lib.path else []
    if root.key in owning or any(d.key == root.key for _, d in owners.files_named(lib.soname)):
        return _Declared(root.key, f"{root} itself", f"{root.name}=={root.version}")
    keys = [k for k in owning if k in demands]
    keys += [canonicalize_name(provider.distribution)] if provider else []
    for key in keys:
        if key in demands:
            return _Declared(key, demands[key][0].describe(), demands[key][0].wanted())
    toolkit = _toolkit_demand(demands, provider)
    if provider is not None and toolkit is not None:
        # cuda-toolkit itself is missing, so its extras could not be followed; it still declares the wheel.
        return _Declared(canonicalize_name(provider.distribution),
                         f"{toolkit.describe()} (not installed: its extra {provider.extra} brings {provider.distribution})",
                         toolkit.wanted())
    if provider is not None:
        return None  # the table is authoritative: a wheel that ships its own copy elsewhere (triton) does not count
    for key in sorted({d.key for _, d in owners.files_named(lib.soname)}):
        if key in demands:
            return _Declared(key, demands[key][0].describe(), demands[key][0].wanted())
    return None


def _driver_finding(lib: ResolvedLibrary, subject: str, needed: str) -> Finding:
    if lib.path is None:
        return skipped(
            "linkage", subject,
            f"{lib.soname} belongs to the NVIDIA driver, not to a wheel, and no driver is installed here "
            f"(needed by {needed}); the driver checks tell more",
        )
    return passed("linkage", subject, f"{lib.soname} -> {lib.path} (the driver's, via {lib.via})", path=str(lib.path))


def _library_finding(
    env: Environment, linkage: Linkage, lib: ResolvedLibrary, demands: dict[str, list[Demand]],
    cuda: str | None, owners: Owners, verify_hashes: bool,
) -> Finding:
    """Findings a to e of one needed CUDA library, the first problem as the message."""
    root = linkage.root
    subject = f"{root.key}>{lib.soname}"
    needed = _needed_by(lib, env)
    if lib.soname in DRIVER_SONAMES:
        return _driver_finding(lib, subject, needed)
    provider = provider_for(lib.soname, int(cuda.split(".")[0]) if cuda else None)
    declared = _declared_provider(linkage, lib, provider, demands, owners)
    owned = owners.of(lib.path) if lib.path else []
    resolution = _first_resolution(linkage, lib)
    problems: list[str] = []
    details = [f"needed by: {needed}"]
    fix = ""
    if declared is None:
        problems.append(
            f"{lib.soname} is needed but no requirement of {root} declares a distribution that provides it"
            + (f" (for CUDA {cuda} it comes from {provider.distribution})" if provider else "")
            + ": the installed metadata does not match the binaries (metadata of another platform or build?)"
        )
        if lib.path is not None:
            owner = f"owned by {owned[0][0]}" if owned else "owned by no installed distribution"
            details.append(f"resolves to: {lib.path} (via {lib.via}, {owner})")
        fix = (install_command(root.installer, provider.spec(cuda)) if provider else
               f"install the distribution that provides {lib.soname}, or reinstall {root.name} from the index "
               f"that matches this platform")
    else:
        details.append(f"declared: {declared.chain}")
        fix = install_command(root.installer, declared.wanted)
    dist = env.get(declared.key) if declared else None
    if declared is not None and dist is None:
        details.append(f"{declared.key} is not installed")
    if lib.path is None:
        problems.insert(0, f"{lib.soname} is not found: loading {root.name} fails with "
                           f"`OSError: {lib.soname}: cannot open shared object file: No such file or directory`")
        details.append("searched: " + _searched(resolution))
    elif resolution.problem:
        problems.insert(0, f"{lib.soname} resolves to {lib.path}, which the loader refuses: {resolution.problem}")
    elif declared is not None and declared.key not in {d.key for d, _ in owned}:
        owner = f"owned by {owned[0][0]}" if owned else "owned by no installed distribution"
        problems.append(
            f"{lib.soname} resolves to {lib.path} (via {lib.via}, {owner}), not to the copy of "
            f"{dist or declared.key + ' (not installed)'}, which {root.name} declares: the import may work by "
            f"accident with a foreign library"
        )
        problems += _version_problems(linkage, lib, symbols=True)
        wheel_copy = [p for p, d in owners.files_named(lib.soname) if d.key == declared.key]
        if dist is not None:
            details.append(f"{dist}'s copy: {wheel_copy[0] if wheel_copy else 'none (its RECORD lists no ' + lib.soname + ')'}")
            if lib.via == "LD_PRELOAD":
                fix = f"remove {lib.path} from LD_PRELOAD"
            elif lib.via == "LD_LIBRARY_PATH" and wheel_copy:
                fix = f"remove {lib.path.parent} from LD_LIBRARY_PATH"
            else:
                fix = reinstall_command(root.installer, declared.wanted)
    if lib.path is not None and owned and not problems:
        bytes_problem = _bytes_problem(lib, owned, verify_hashes)
        if bytes_problem:
            problems.append(bytes_problem)
            owner_dist = owned[0][0]
            fix = reinstall_command(root.installer, f"{owner_dist.name}=={owner_dist.version}")
    if lib.path is not None and not problems:
        version_problems = _version_problems(linkage, lib)
        if version_problems:
            problems.append(f"{lib.soname} at {lib.path} lacks what its users need: {version_problems[0]}")
            details.extend(version_problems[1:4])
    if problems:
        return failed("linkage", subject, problems[0], *problems[1:], *details, fix=fix or "see above",
                      path=str(lib.path or ""), via=lib.via)
    owner = f"{owned[0][0]}" if owned else "no distribution"
    return passed("linkage", subject, f"{lib.soname} -> {lib.path} ({owner}, via {lib.via})",
                  path=str(lib.path), owner=owner, via=lib.via)


def linkage_findings(
    env: Environment,
    linkage: Linkage,
    declared: Closure,
    cuda: str | None,
    *,
    verify_hashes: bool = False,
) -> list[Finding]:
    """One finding per needed CUDA library of the root, plus one per own object the loader would refuse."""
    root = linkage.root
    demands = declared.by_key()
    owners = linkage.owners or Owners(env)
    findings: list[Finding] = []
    host = read_header(linkage.model.executable) if linkage.model.executable else None
    for obj in linkage.objects:
        problem = linkage.model.info(obj)
        if isinstance(problem, ElfInfo) and host and (problem.elf_class, problem.machine) != host:
            # dlopen of a path of another machine fails with ENOENT, as if the file were not there
            problem = ElfProblem(obj, f"wrong ELF class or machine ({problem.elf_class}-bit {problem.machine}, "
                                      f"this Python is {host[0]}-bit {host[1]}): cannot open shared object file")
        if isinstance(problem, ElfProblem):
            findings.append(failed(
                "elf", f"{root.key}>{obj.name}", f"{_relative(obj, env)}: {problem.problem}",
                f"it is one of {root}'s own shared objects; loading it fails with `{obj}: {problem.problem}`",
                fix=reinstall_command(root.installer, f"{root.name}=={root.version}"),
            ))
    for lib in linkage.cuda_libraries():
        findings.append(_library_finding(env, linkage, lib, demands, cuda, owners, verify_hashes))
    return findings


def _toolkit_demand(demands: dict[str, list[Demand]], provider: Provider | None) -> Demand | None:
    """The demand on cuda-toolkit whose extras include the provider's, when cuda-toolkit is not installed."""
    if provider is None or provider.extra is None:
        return None
    for demand in demands.get("cuda-toolkit", []):
        if provider.extra in {canonicalize_name(e) for e in demand.requirement.extras}:
            return demand
    return None


def _first_resolution(linkage: Linkage, lib: ResolvedLibrary) -> Resolution:
    for resolution in linkage.model.resolutions:
        if resolution.soname == lib.soname:
            return resolution
    raise LookupError(lib.soname)


def _searched(resolution: Resolution) -> str:
    """The folders tried, grouped by the step of the search that tried them."""
    groups: dict[str, list[str]] = {}
    for entry in resolution.searched:
        via, _, folder = entry.partition(": ")
        groups.setdefault(via, []).append(folder)
    parts = [f"{via} ({', '.join(f for f in folders if f)})" if any(folders) else via for via, folders in groups.items()]
    if not any(e.startswith("LD_LIBRARY_PATH") for e in resolution.searched):
        parts.insert(len(parts) - 1 if parts else 0, "LD_LIBRARY_PATH (unset)")
    return "; ".join(parts)
