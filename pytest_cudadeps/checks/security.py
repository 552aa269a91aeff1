"""The security findings: who, besides root and this user, can decide which library a CUDA process maps.

ld.so maps the first file of the wanted name that it finds (:mod:`pytest_cudadeps.engine.ldso`) and
runs its constructors with the rights of the process.  Whoever can write into a folder it
searches, or into the folder of a library it settles on, can plant a ``libcudart.so.13`` there;
and an entry that is not absolute is looked up from the working directory, which is wherever the
job happens to start (a checkout, ``/tmp``, a shared scratch folder).  Four items, the same in
every run, each a pass when nothing is found:

``security[ld-library-path]``
    empty, ``.`` and relative entries of ``LD_LIBRARY_PATH`` (``export LD_LIBRARY_PATH=$X:/opt/lib``
    with X unset leaves a leading ``:``: the working directory, searched first).
``security[ld-preload]``
    ``LD_PRELOAD`` entries that are relative paths (``./libhook.so``): opened from the working directory.
``security[rpath]``
    DT_RPATH/DT_RUNPATH entries of the objects the roots load that are neither absolute nor
    ``$ORIGIN``-based.
``security[writable-folders]``
    the folders on the search path (LD_LIBRARY_PATH, LD_PRELOAD's files, the expanded DT_RPATH and
    DT_RUNPATH folders, the default folders) or holding a resolved CUDA library or a root's own
    object, and those files, that a user other than root and this one can change: world-writable,
    or owned by another user who is not root.

Why the sticky bit counts for parents only.  On a folder that ld.so searches, the sticky bit
(``/tmp``, mode 1777) protects nothing: it stops users from deleting or renaming each other's
files, not from creating new ones, and the attack is a new file with a name the loader has not
found yet (or finds only later on the path).  So a searched folder is reported when it is
world-writable, sticky or not.  On a parent, the danger is that someone renames the searched
folder away and puts their own in its place, which the sticky bit does prevent: a parent is
reported when it is world-writable without the sticky bit, or owned by another user.  A searched
folder that does not exist is reported when its nearest existing parent lets other users create
it (``/tmp/cuda/lib`` on LD_LIBRARY_PATH and no ``/tmp/cuda``: anyone can make it), sticky or not.
Group-writable folders are not reported: a group is a deliberate grant (a shared conda install),
and who is in it cannot be told from here.

Nothing is read but the snapshot's linkage (the ELF facts its walk kept) and ``stat`` results.
"""

from __future__ import annotations

import errno
import os
import pwd
import shlex
import stat
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_cudadeps.checks.findings import Finding, failed, passed
from pytest_cudadeps.core.safe_io import stat_or_reason
from pytest_cudadeps.engine.elf import ElfInfo
from pytest_cudadeps.engine.installers import reinstall_command
from pytest_cudadeps.engine.ldso import default_dirs, expand, is_relative_entry, ld_library_path_entries, ld_preload_entries

if TYPE_CHECKING:
    from pytest_cudadeps.engine.distributions import Distribution
    from pytest_cudadeps.engine.linkage import Linkage
    from pytest_cudadeps.engine.owners import Owners
    from pytest_cudadeps.engine.snapshot import Snapshot

CHECK = "security"
_MISSING = frozenset({os.strerror(errno.ENOENT), os.strerror(errno.ENOTDIR)})


def security_findings(snapshot: Snapshot) -> list[Finding]:
    """The four ``security[...]`` findings of a snapshot (see the module docstring)."""
    linkages = [root.linkage for root in snapshot.roots if root.linkage is not None]
    loader = LoaderEnvironment.of(linkages)
    objects = loaded_objects(linkages)
    return [
        ld_library_path_finding(loader),
        ld_preload_finding(loader),
        rpath_finding(objects, snapshot.owners, {obj: lk.root for lk in linkages for obj in lk.objects},
                      strict=snapshot.settings.strict_notes),
        writable_finding(search_folders(linkages, loader, objects), library_files(linkages, loader), os.geteuid(),
                         loader),
    ]


@dataclass(frozen=True)
class LoaderEnvironment:
    """What a process started now searches first, and where it runs."""

    ld_library_path: tuple[str, ...]
    preload: tuple[str, ...]
    preloaded: tuple[Path, ...]  # the files LD_PRELOAD mapped
    cwd: Path
    executable: Path | None

    @classmethod
    def of(cls, linkages: Sequence[Linkage]) -> LoaderEnvironment:
        """As the linkage walk saw it; read from this process's environment when no root was walked."""
        cwd = Path(os.getcwd())
        if linkages:
            first = linkages[0]
            return cls(first.ld_library_path, first.preload, first.preloaded, cwd, first.executable)
        return cls(ld_library_path_entries(os.environ.get("LD_LIBRARY_PATH", "")),
                   ld_preload_entries(os.environ.get("LD_PRELOAD", "")), (), cwd,
                   Path(os.path.realpath(sys.executable)) if sys.executable else None)

    @property
    def origin(self) -> Path:
        """What ``$ORIGIN`` means in LD_LIBRARY_PATH and LD_PRELOAD: the executable's folder."""
        return self.executable.parent if self.executable else self.cwd


# --- entries looked up from the working directory -------------------------------------------------


def _from_cwd(entry: str, cwd: Path) -> str:
    """Where a relative entry leads in this run, in words."""
    if not entry:
        return f"an empty entry (a doubled, leading or trailing ':') is the working directory, now {cwd}"
    if entry in (".", "./"):
        return f"'.' is the working directory, now {cwd}"
    return f"a relative path, looked up from the working directory: now {os.path.normpath(cwd / entry)}"


def _export(name: str, kept: Sequence[str]) -> str:
    return f"export {name}={shlex.quote(':'.join(kept))}" if kept else f"unset {name}"


def ld_library_path_finding(loader: LoaderEnvironment) -> Finding:
    """``security[ld-library-path]``: LD_LIBRARY_PATH entries that ld.so looks up from the working directory."""
    entries = loader.ld_library_path
    bad = [(number, entry) for number, entry in enumerate(entries, 1) if is_relative_entry(entry, loader.origin)]
    if not bad:
        summary = (f"the {len(entries)} entries of LD_LIBRARY_PATH are absolute folders" if entries
                   else "LD_LIBRARY_PATH is unset")
        return passed(CHECK, "ld-library-path", summary)
    kept = [entry for entry in entries if not is_relative_entry(entry, loader.origin)]
    return failed(
        CHECK, "ld-library-path",
        f"LD_LIBRARY_PATH has {_count(len(bad), 'entry', 'entries')} that ld.so looks up from the working directory: "
        f"whoever can write where a job starts can plant a libcudart there",
        *(f"entry {number} {entry!r}: {_from_cwd(entry, loader.cwd)}" for number, entry in bad),
        f"LD_LIBRARY_PATH={':'.join(entries)!r}",
        fix=_export("LD_LIBRARY_PATH", kept),
    )


def _relative_preload(entry: str, origin: Path) -> bool:
    # a bare name ("libhook.so") is searched for like a DT_NEEDED name; a name with a slash is opened as it is
    return entry in (".", "..") or ("/" in entry and is_relative_entry(entry, origin))


def ld_preload_finding(loader: LoaderEnvironment) -> Finding:
    """``security[ld-preload]``: LD_PRELOAD paths opened from the working directory."""
    entries = loader.preload
    bad = [(number, entry) for number, entry in enumerate(entries, 1) if _relative_preload(entry, loader.origin)]
    if not bad:
        summary = (f"the {len(entries)} entries of LD_PRELOAD are absolute paths or library names" if entries
                   else "LD_PRELOAD is unset")
        return passed(CHECK, "ld-preload", summary)
    kept = [entry for entry in entries if not _relative_preload(entry, loader.origin)]
    return failed(
        CHECK, "ld-preload",
        f"LD_PRELOAD has {_count(len(bad), 'entry', 'entries')} that ld.so opens from the working directory, "
        f"before anything else is loaded",
        *(f"entry {number} {entry!r}: {_from_cwd(entry, loader.cwd)}" for number, entry in bad),
        f"LD_PRELOAD={' '.join(entries)!r}",
        fix=f"{_export('LD_PRELOAD', kept)}  (or name each library by its absolute path)",
    )


def loaded_objects(linkages: Iterable[Linkage]) -> dict[Path, ElfInfo]:
    """The roots' own objects, the libraries the walk resolved and read, and the executable: their ELF facts."""
    found: dict[Path, ElfInfo] = {}
    for linkage in linkages:
        paths = [*linkage.objects, *(lib.path for lib in linkage.libraries if lib.path is not None)]
        if linkage.executable is not None:
            paths.append(linkage.executable)
        for path in paths:
            info = linkage.info(path)
            if isinstance(info, ElfInfo):
                found.setdefault(path, info)
    return dict(sorted(found.items()))


def _search_list(info: ElfInfo) -> tuple[str, tuple[str, ...]]:
    """The tag and entries ld.so uses: DT_RUNPATH when present, else DT_RPATH (glibc drops DT_RPATH then)."""
    return ("DT_RUNPATH", info.runpath) if info.runpath else ("DT_RPATH", info.rpath)


def rpath_finding(objects: dict[Path, ElfInfo], owners: Owners, roots: Mapping[Path, Distribution], *,
                  strict: bool = False) -> Finding:
    """``security[rpath]``: DT_RPATH/DT_RUNPATH entries that are neither absolute nor ``$ORIGIN``-based.

    The object is named with the distribution whose RECORD lists it (or the root it is an own
    object of).  A reinstall helps only if the file was changed after install; when the wheel ships
    the entry (nvidia-cusparselt-cu13 0.8.1's libcusparseLt.so.0 has DT_RUNPATH ``$ORIGIN:``), the
    fix is to drop it with patchelf, and to tell the wheel's project.  Such a shipped entry is a note, not a
    failure (every intact install has it), unless ``strict`` (``--cuda-deps-strict-notes``).
    """
    found = _RelativeEntries()
    cwd = Path(os.getcwd())
    for path, info in objects.items():
        found.add(path, info, owners, roots, cwd)
    details, is_are = found.details, "is" if len(found.details) == 1 else "are"
    if not details:
        return passed(CHECK, "rpath", f"the DT_RPATH and DT_RUNPATH entries of the {len(objects)} objects read are "
                                      f"absolute or $ORIGIN-based")
    if not found.unowned and not strict:
        # as its wheel ships it (the bytes rule of linkage[...] catches a changed file): every install of it has
        # the entry, so failing here would fail every intact environment; a note names it and the hardening
        note = (f"{'; '.join(details)}; harden with: {'; '.join(found.fixes)}; report it to the project that builds "
                f"the file: its entries should start with $ORIGIN")
        return passed(CHECK, "rpath", f"{_count(len(details), 'entry', 'entries')} as shipped by "
                      f"{', '.join(sorted(found.shipping))} {is_are} looked up from the "
                      f"working directory (a note, not a failure)", note=note)
    return failed(
        CHECK, "rpath",
        f"{_count(len(details), 'DT_RPATH/DT_RUNPATH entry', 'DT_RPATH/DT_RUNPATH entries')} of the loaded objects "
        f"{is_are} looked up from the working directory: a library of the needed name "
        f"there (a cloned repository, a shared scratch folder) is loaded",
        *details,
        f"from: {'; '.join(found.shipped_by)}; report it to the project that builds the file: its entries should start "
        f"with $ORIGIN",
        fix="; ".join(found.fixes),
    )


@dataclass
class _RelativeEntries:
    """The relative DT_RPATH/DT_RUNPATH entries found so far, with the fixes and owners they call for."""

    details: list[str] = field(default_factory=list)  # one line per entry
    fixes: dict[str, None] = field(default_factory=dict)  # patchelf commands, an ordered set
    shipped_by: dict[str, None] = field(default_factory=dict)  # each owner with its reinstall command
    shipping: set[str] = field(default_factory=set)  # the distributions whose own files carry such an entry
    unowned: bool = False  # an object with such an entry that no installed distribution owns: not as shipped

    def add(self, path: Path, info: ElfInfo, owners: Owners, roots: Mapping[Path, Distribution], cwd: Path) -> None:
        """The entries of one object, named with the distribution whose RECORD lists it, else its root."""
        tag, entries = _search_list(info)
        bad = [entry for entry in entries if is_relative_entry(entry, path.parent)]
        if not bad:
            return
        owned = owners.of(path)
        owner = owned[0][0] if owned else roots.get(path)
        if owned:  # its RECORD lists the file: the entry is as the wheel ships it
            self.shipping.add(str(owner))
        else:
            self.unowned = True
        self.details += [f"{path} ({f'of {owner}' if owner else 'of no installed distribution'}): {tag} entry "
                         f"{entry!r}: {_from_cwd(entry, cwd)}" for entry in bad]
        self.fixes[_patchelf(path, tag, [entry for entry in entries if entry not in bad])] = None
        self.shipped_by[f"{owner} ({reinstall_command(owner.installer, f'{owner.name}=={owner.version}')} puts the "
                        f"entries back if the wheel ships them)" if owner else f"{path.name}: no distribution"] = None


def _patchelf(path: Path, tag: str, kept: Sequence[str]) -> str:
    """The command that leaves only ``kept`` in the object's list (patchelf writes DT_RUNPATH unless told otherwise)."""
    if not kept:
        return f"patchelf --remove-rpath {shlex.quote(str(path))}"
    force = " --force-rpath" if tag == "DT_RPATH" else ""
    return f"patchelf{force} --set-rpath {shlex.quote(':'.join(kept))} {shlex.quote(str(path))}"


def _count(number: int, one: str, many: str) -> str:
    return f"{number} {one if number == 1 else many}"


# --- folders and files that other users can write ---------------------------------------------------


class _Roles(dict[Path, dict[str, None]]):
    """Path to the reasons it matters (an ordered set: the first role named is the first found)."""

    def add(self, path: Path, role: str) -> None:
        self.setdefault(path, {})[role] = None


def search_folders(linkages: Sequence[Linkage], loader: LoaderEnvironment, objects: dict[Path, ElfInfo]) -> _Roles:
    """Every folder ld.so searches for these roots, with what put it there."""
    folders = _Roles()
    for number, entry in enumerate(loader.ld_library_path, 1):
        folders.add(expand(entry, loader.origin), f"LD_LIBRARY_PATH entry {number}")
    for entry in loader.preload:
        if "/" in entry:
            folders.add(expand(entry, loader.origin).parent, f"holds LD_PRELOAD's {entry}")
    for path in loader.preloaded:
        folders.add(path.parent, f"holds LD_PRELOAD's {path.name}")
    for path, info in objects.items():
        tag, entries = _search_list(info)
        for entry in entries:
            folders.add(expand(entry, path.parent), f"{tag} of {path.name}")
    for folder in default_dirs():
        folders.add(folder, "a default folder of ld.so")
    for path, roles in library_files(linkages, loader).items():
        for role in roles:
            folders.add(path.parent, f"holds {role}")
    return folders


def library_files(linkages: Sequence[Linkage], loader: LoaderEnvironment) -> _Roles:
    """The files that will be mapped and matter here: the CUDA libraries resolved, the roots' own objects, LD_PRELOAD's."""
    files = _Roles()
    for linkage in linkages:
        for obj in linkage.objects:
            files.add(obj, f"{linkage.root}'s {obj.name}")
        for lib in linkage.cuda_libraries():
            if lib.path is not None:
                files.add(lib.path, f"{lib.soname} (resolved for {linkage.root.key})")
    for path in loader.preloaded:
        files.add(path, f"LD_PRELOAD's {path.name}")
    return files


@dataclass(frozen=True)
class Exposure:
    """One path that lets other users change what is loaded: why, what was seen, and the command that closes it."""

    path: Path
    why: str
    seen: str  # "mode 0777, owner root (0)"
    fix: str
    shared: bool = False  # world-writable with the sticky bit (/tmp): a scratch folder by intent, not to be chmod'ed


class _Stats:
    """``stat`` results by path for one check (a folder's parents are shared by many folders)."""

    def __init__(self) -> None:
        self._found: dict[Path, os.stat_result | str] = {}

    def __call__(self, path: Path) -> os.stat_result | str:
        if path not in self._found:
            try:
                self._found[path] = stat_or_reason(path)
            except OSError as exc:  # EIO and the like: not ours to judge
                self._found[path] = exc.strerror or str(exc)
        return self._found[path]


def _name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _user(uid: int) -> str:
    name = _name(uid)
    return f"uid {uid}" if name == str(uid) else f"{name} ({uid})"


def _seen(found: os.stat_result) -> str:
    return f"mode {stat.S_IMODE(found.st_mode):04o}, owner {_user(found.st_uid)}"


def _others_can_write(found: os.stat_result, euid: int, *, sticky_protects: bool) -> str | None:
    """Why users other than root and ``euid`` can change this folder's entries (None: they cannot)."""
    mode = found.st_mode
    if mode & stat.S_IWOTH:
        if not sticky_protects:
            return "world-writable" + (", and the sticky bit does not stop new files" if mode & stat.S_ISVTX else "")
        if not mode & stat.S_ISVTX:
            return "world-writable without the sticky bit"
    if found.st_uid not in (0, euid):
        return "owned by another user"  # who: in the mode and owner shown beside it
    return None


def _fix(path: Path, why: str, euid: int) -> str:
    if why.startswith("owned by"):
        return f"chown {shlex.quote(_name(euid))} {shlex.quote(str(path))}"
    return f"chmod o-w {shlex.quote(str(path))}"


def _prefixes(path: Path) -> list[Path]:
    return [*reversed(path.parents), path]


def _chains(folder: Path) -> list[list[Path]]:
    """The folder's own path from /, and the path of what it resolves to when a link is on the way."""
    real = Path(os.path.realpath(folder))
    return [_prefixes(folder)] + ([_prefixes(real)] if real != folder else [])


def folder_exposures(folder: Path, stats: _Stats, euid: int) -> list[Exposure]:
    """What lets other users put a file into ``folder``: the folder itself, a parent, or where it would be created."""
    found: list[Exposure] = []
    for chain in _chains(folder):
        parent: tuple[Path, os.stat_result] | None = None
        for prefix in chain:
            here = stats(prefix)
            if isinstance(here, str):  # missing, or a folder we may not search: ld.so skips it too
                if here in _MISSING and parent is not None:
                    found += _creatable(folder, *parent, euid)
                break
            searched = prefix == chain[-1]
            why = _others_can_write(here, euid, sticky_protects=not searched)
            if why:
                what = ("is " if searched else f"(a parent of {folder}) is ") + why
                if not searched:
                    what += ": another user can move the folder below it away and put their own in its place"
                shared = searched and bool(here.st_mode & stat.S_ISVTX) and why.startswith("world")
                found.append(Exposure(prefix, what, _seen(here), _fix(prefix, why, euid), shared))
            parent = (prefix, here)
    return found


def _creatable(folder: Path, parent: Path, found: os.stat_result, euid: int) -> list[Exposure]:
    why = _others_can_write(found, euid, sticky_protects=False)
    if why is None:
        return []
    return [Exposure(parent, f"is {why}, and {folder} does not exist yet: another user can create it and fill it",
                     _seen(found), f"mkdir -p -m 755 {shlex.quote(str(folder))}")]


def file_exposure(path: Path, stats: _Stats, euid: int) -> Exposure | None:
    """A library file that other users can rewrite in place (the sticky bit means nothing on a file)."""
    here = stats(path)
    if isinstance(here, str):
        return None
    why = _others_can_write(here, euid, sticky_protects=False)
    return Exposure(path, f"is {why}: its code can be rewritten", _seen(here), _fix(path, why, euid)) if why else None


def writable_finding(folders: _Roles, files: _Roles, euid: int, loader: LoaderEnvironment) -> Finding:
    """``security[writable-folders]``: the searched folders, the libraries' folders and the libraries themselves."""
    stats = _Stats()
    exposed: dict[Exposure, dict[str, None]] = {}
    for folder, roles in folders.items():
        for exposure in folder_exposures(folder, stats, euid):
            prefix = "" if exposure.path == folder else f"{folder}: "
            exposed.setdefault(exposure, {}).update(dict.fromkeys(f"{prefix}{role}" for role in roles))
    for path, roles in files.items():
        rewritable = file_exposure(path, stats, euid)
        if rewritable is not None:
            exposed.setdefault(rewritable, {}).update(dict.fromkeys(roles))
    others = "users other than root" + (f" and {_user(euid)}" if euid else "")
    if not exposed:
        return passed(CHECK, "writable-folders",
                      f"none of the {len(folders)} folders on the library search path or holding a library, nor the "
                      f"{len(files)} libraries, can be changed by {others}")
    ordered = sorted(exposed.items(), key=lambda item: str(item[0].path))
    details = []
    for exposure, roles in ordered:
        listed = list(roles)
        more = f" and {len(listed) - 3} more" if len(listed) > 3 else ""
        details.append(f"{exposure.path} {exposure.why} ({exposure.seen}); matters as: {'; '.join(listed[:3])}{more}")
    return failed(
        CHECK, "writable-folders",
        f"{_count(len(exposed), 'path', 'paths')} on the library search path can be changed by {others}: "
        f"any of them can plant a libcudart that every CUDA process here would load",
        *details,
        fix="; ".join(dict.fromkeys(_fixes([exposure for exposure, _ in ordered], loader))),
    )


def _fixes(exposures: Sequence[Exposure], loader: LoaderEnvironment) -> list[str]:
    """One command per exposure; a shared scratch folder (/tmp) is taken off LD_LIBRARY_PATH, never chmod'ed."""
    shared = {exposure.path for exposure in exposures if exposure.shared}
    off = {entry for entry in loader.ld_library_path if expand(entry, loader.origin) in shared}
    commands = [_export("LD_LIBRARY_PATH", [e for e in loader.ld_library_path if e not in off])] if off else []
    commands += [exposure.fix for exposure in exposures if not exposure.shared]
    elsewhere = shared - {expand(entry, loader.origin) for entry in off}
    commands += [f"move the libraries out of {path}: a folder every user may write into is no place for them"
                 for path in sorted(elsewhere)]
    return commands
