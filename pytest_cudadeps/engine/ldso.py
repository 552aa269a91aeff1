"""Where glibc's ld.so finds each needed library, worked out without loading anything.

For a DT_NEEDED name of an object O, glibc (elf/dl-load.c, ``_dl_map_object``) tries:

0. a library already loaded with that soname (LD_PRELOAD objects are loaded first of all):
   it is reused, whatever O's own paths say;
   a name containing ``/`` is opened as a path and nothing is searched;
1. DT_RPATH of O, then of the object that loaded O, and so on up to the executable;
   only when O has no DT_RUNPATH (and an object's DT_RPATH counts only when that
   object has no DT_RUNPATH itself: glibc drops DT_RPATH when both are present);
2. LD_LIBRARY_PATH (ignored for set-uid programs, which we never are);
3. DT_RUNPATH of O (only O's: it is not inherited by what O loads);
4. /etc/ld.so.cache, unless ignored (``--cuda-deps-no-ld-cache``, as
   ``ld.so --inhibit-cache`` runs, or a clean container without a system CUDA sees it);
5. the default folders (/lib/<multiarch>, /usr/lib/<multiarch>, /lib, /usr/lib, or
   lib64 on distributions without multiarch).

In every path list ``$ORIGIN``/``${ORIGIN}`` is O's folder, ``$LIB`` and ``$PLATFORM``
are expanded as this glibc does, and an empty entry means the current folder.  A
candidate of the wrong ELF class or machine is skipped and the search goes on; a
candidate that is not ELF at all stops the loader with an error (``invalid ELF header``),
so it is reported as found-but-broken.  glibc-hwcaps subfolders are not searched here:
the wheels never use them.
"""

from __future__ import annotations

import enum
import os
import platform
import re
import struct
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from pytest_cudadeps.core.safe_io import LD_SO_CACHE_LIMIT, is_dir, is_regular, read_regular
from pytest_cudadeps.core.text import quote
from pytest_cudadeps.engine.elf import ElfInfo, ElfProblem, read_elf, read_header

LD_SO_CACHE = Path("/etc/ld.so.cache")
_NEW_MAGIC = b"glibc-ld.so.cache1.1"
_OLD_MAGIC = b"ld.so-1.7.0"


_parsed: dict[tuple[str, int, int, int, int], dict[str, tuple[Path, ...]]] = {}


def read_ld_so_cache(path: Path = LD_SO_CACHE) -> Mapping[str, tuple[Path, ...]]:
    """soname -> library paths listed in the binary ld.so.cache, in its order (both formats).

    A run asks three times (the walk, the lazily opened libraries, Triton's libcuda): the file is
    parsed once per version of it (device, inode, size and mtime, as ldconfig replaces it), and the
    answer is shared, so that it is never written to.
    """
    try:
        found = os.stat(path)
    except OSError:
        return {}
    key = (str(path), found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns)
    if key not in _parsed:
        _parsed.clear()  # one version kept: a new cache replaces the old
        _parsed[key] = _parse_ld_so_cache(path)
    return _parsed[key]


def _parse_ld_so_cache(path: Path) -> dict[str, tuple[Path, ...]]:
    try:
        data = read_regular(path, LD_SO_CACHE_LIMIT, "ld.so.cache")
    except OSError:
        return {}
    start = 0
    if data.startswith(_OLD_MAGIC):
        count = struct.unpack_from("<I", data, 12)[0]
        start = 16 + count * 12
        start = (start + 7) & ~7  # the new format follows, aligned
    if data[start:start + len(_NEW_MAGIC)] != _NEW_MAGIC:
        return {}
    entries: dict[str, list[Path]] = {}

    def string(offset: int) -> str:
        end = data.find(b"\0", offset)
        return data[offset:end].decode("utf-8", "replace")

    try:
        count = struct.unpack_from("<I", data, start + 20)[0]
        for index in range(count):
            _flags, key, value = struct.unpack_from("<iII", data, start + 48 + index * 24)
            if key < len(data) and value < len(data):
                entries.setdefault(string(key), []).append(Path(string(value)))
    except struct.error:  # a truncated cache: glibc ignores it, and so do we
        return {}
    return {k: tuple(v) for k, v in entries.items()}


@cache
def _machine() -> str:
    return platform.machine()


def default_dirs() -> tuple[Path, ...]:
    machine = platform.machine()
    multiarch = f"{machine}-linux-gnu"
    dirs = [Path("/lib") / multiarch, Path("/usr/lib") / multiarch, Path("/lib64"), Path("/usr/lib64"),
            Path("/lib"), Path("/usr/lib")]
    return tuple(d for d in dirs if is_dir(d))


@cache
def lib_token() -> str:
    """What ``$LIB`` expands to: the multiarch folder where it exists, else lib64/lib."""
    multiarch = Path("/lib") / f"{platform.machine()}-linux-gnu"
    if is_dir(multiarch):
        return f"lib/{multiarch.name}"
    return "lib64" if is_dir(Path("/lib64")) and struct.calcsize("P") == 8 else "lib"


def substitute(entry: str, origin: Path) -> str:
    """One path-list entry with $ORIGIN, $LIB, $PLATFORM replaced, not yet made absolute."""
    if "$" in entry:
        for token, value in (("ORIGIN", str(origin)), ("LIB", lib_token()), ("PLATFORM", _machine())):
            entry = entry.replace("${" + token + "}", value).replace("$" + token, value)
    return entry


def is_relative_entry(entry: str, origin: Path) -> bool:
    """Whether ld.so looks for this entry from the working directory: empty, ``.``, ``lib``, ``./x``.

    ``$ORIGIN/../lib`` is not: it is the needing object's own folder wherever the process runs.
    """
    return not os.path.isabs(substitute(entry, origin))


def expand(entry: str, origin: Path) -> Path:
    """One path-list entry with $ORIGIN, $LIB, $PLATFORM expanded; "" is the current folder."""
    if not entry:
        return Path(os.getcwd())
    entry = substitute(entry, origin)
    return Path(os.path.normpath(entry if os.path.isabs(entry) else os.path.join(os.getcwd(), entry)))


def ld_library_path_entries(value: str) -> tuple[str, ...]:
    """LD_LIBRARY_PATH's entries as glibc splits them: on ``:`` and ``;`` (elf/dl-load.c, _dl_init_paths).

    An unset or empty variable has no entry; an empty entry (``a::b``, a leading or trailing
    ``:``) stays, because ld.so searches the working directory for it.
    """
    return tuple(re.split("[:;]", value)) if value else ()


def variable_without(name: str, entries: Sequence[str], drop: Path) -> str:
    """The shell command that takes ``drop`` (a folder or a file) out of a path list variable's ``entries``:
    ``export LD_LIBRARY_PATH='/a:/b'``, or ``unset LD_LIBRARY_PATH`` when no entry stays."""
    kept = [entry for entry in entries if entry and Path(os.path.normpath(entry)) != drop]
    return f"export {name}={quote(':'.join(kept))}" if kept else f"unset {name}"


def ld_preload_entries(value: str) -> tuple[str, ...]:
    """LD_PRELOAD's entries: separated by spaces or colons (elf/rtld.c, handle_preload_list); empty ones dropped."""
    return tuple(entry for entry in re.split("[ :]", value) if entry)


class Step(enum.Enum):
    """A step of ld.so's search (see the module docstring), or how a name was settled without one."""

    PRELOAD = "LD_PRELOAD"
    ROOT_PRELOAD = "the preload in"  # the root's own import opened it by path first (torch/__init__.py)
    LOADED = "already loaded"
    PATH = "path"  # a needed name with a slash is opened as it is
    RPATH = "DT_RPATH"
    LD_LIBRARY_PATH = "LD_LIBRARY_PATH"
    RUNPATH = "DT_RUNPATH"
    LD_SO_CACHE = "ld.so.cache"
    DEFAULT = "default folders"
    NOT_FOUND = "not found"


@dataclass(frozen=True)
class Via:
    """The step that found a library; for DT_RPATH and DT_RUNPATH, the object whose entry named the folder."""

    step: Step
    of: str | None = None

    def __str__(self) -> str:
        if self.step is Step.ROOT_PRELOAD:
            return f"{self.step.value} {self.of}"
        return f"{self.step.value} of {self.of}" if self.of else self.step.value

    @property
    def reused(self) -> bool:
        """Settled by an object already mapped: nothing new is loaded."""
        return self.step in (Step.LOADED, Step.PRELOAD, Step.ROOT_PRELOAD)


@dataclass(frozen=True)
class Searched:
    """One place tried: a folder of a step, or the ld.so.cache (no folder)."""

    via: Via
    folder: Path | None = None

    def __str__(self) -> str:
        return f"{self.via}: {self.folder}" if self.folder is not None else str(self.via)


@dataclass(frozen=True)
class Resolution:
    """Where one needed name led, for one needing object."""

    soname: str
    needed_by: Path
    path: Path | None
    via: Via
    searched: tuple[Searched, ...]  # the places tried, in order
    problem: str | None = None  # the file found cannot be loaded: "invalid ELF header" and the like
    skipped: tuple[tuple[Path, str], ...] = ()  # candidates passed over (wrong class or machine)


@dataclass
class LoaderModel:
    """A simulated process: the objects it has mapped and how each needed name was resolved."""

    ld_library_path: tuple[str, ...]
    use_cache: bool = True
    executable: Path | None = None
    cache: Mapping[str, tuple[Path, ...]] = field(default_factory=dict)
    defaults: tuple[Path, ...] = field(default_factory=default_dirs)
    loaded: dict[str, Path] = field(default_factory=dict)  # soname -> mapped file
    loader_of: dict[Path, Path | None] = field(default_factory=dict)
    infos: dict[Path, ElfInfo | ElfProblem] = field(default_factory=dict)
    resolutions: list[Resolution] = field(default_factory=list)
    # Which resolved libraries to read and follow (path, soname); None: all. The linkage check
    # skips system libraries (libc, libstdc++...): they need no CUDA library and cost a third of the time.
    descend: Callable[[Path, str], bool] | None = None
    preload: tuple[str, ...] = ()  # LD_PRELOAD entries: mapped before anything else
    preloaded: set[Path] = field(default_factory=set)
    opened_by: dict[Path, str] = field(default_factory=dict)  # files the root's import opened by path, and who did

    @classmethod
    def for_this_process(
        cls,
        *,
        use_cache: bool = True,
        ld_library_path: str | None = None,
        ld_preload: str | None = None,
        descend: Callable[[Path, str], bool] | None = None,
    ) -> LoaderModel:
        """The model of a process started now: this environment's LD_LIBRARY_PATH and LD_PRELOAD unless given."""
        value = os.environ.get("LD_LIBRARY_PATH", "") if ld_library_path is None else ld_library_path
        preload = os.environ.get("LD_PRELOAD", "") if ld_preload is None else ld_preload
        exe = Path(os.path.realpath(sys.executable)) if sys.executable else None
        return cls(ld_library_path_entries(value), use_cache, exe, read_ld_so_cache() if use_cache else {},
                   descend=descend, preload=ld_preload_entries(preload))

    def info(self, path: Path) -> ElfInfo | ElfProblem:
        if path not in self.infos:
            self.infos[path] = read_elf(path)
        return self.infos[path]

    def follows(self, path: Path, soname: str) -> bool:
        return self.descend is None or self.descend(path, soname)

    def _acceptable(self, candidate: Path, wanted: tuple[int, str], soname: str) -> tuple[bool, str | None]:
        """(take it, problem): wrong class/machine is skipped; a non-ELF file stops the search."""
        if not is_regular(candidate):  # as ld.so: a folder it cannot search or a name too long is skipped
            return False, None
        header = read_header(candidate)
        if header is None:
            problem = self.info(candidate)
            return True, problem.problem if isinstance(problem, ElfProblem) else "invalid ELF header"
        if header != wanted:
            return False, f"wrong ELF class or machine ({header[0]}-bit {header[1]})"
        if not self.follows(candidate, soname):
            return True, None
        found = self.info(candidate)
        return True, found.problem if isinstance(found, ElfProblem) else None

    def _rpath_chain(self, obj: Path) -> list[tuple[Via, Path, tuple[str, ...]]]:
        """DT_RPATH of ``obj``, of the object that loaded it, and so on up to the executable."""
        chain: list[tuple[Via, Path, tuple[str, ...]]] = []
        seen: set[Path] = set()
        current: Path | None = obj
        while current is not None and current not in seen:
            seen.add(current)
            info = self.info(current)
            if isinstance(info, ElfInfo) and info.effective_rpath():
                chain.append((Via(Step.RPATH, current.name), current.parent, info.effective_rpath()))
            current = self.loader_of.get(current)
        if self.executable is not None and self.executable not in seen:
            info = self.info(self.executable)
            if isinstance(info, ElfInfo) and info.effective_rpath():
                chain.append((Via(Step.RPATH, self.executable.name), self.executable.parent, info.effective_rpath()))
        return chain

    def _search_order(self, obj: ElfInfo, needed_by: Path) -> list[tuple[Via, list[Path]]]:
        """The folders each step names for ``needed_by``, in glibc's order (the cache comes in _candidates)."""
        steps: list[tuple[Via, list[Path]]] = []
        if not obj.has_runpath():
            for via, origin_dir, entries in self._rpath_chain(needed_by):
                steps.append((via, [expand(e, origin_dir) for e in entries]))
        steps.append((Via(Step.LD_LIBRARY_PATH), [expand(e, needed_by.parent) for e in self.ld_library_path]))
        if obj.has_runpath():
            steps.append((Via(Step.RUNPATH, needed_by.name), [expand(e, needed_by.parent) for e in obj.runpath]))
        steps.append((Via(Step.DEFAULT), list(self.defaults)))
        return steps

    def resolve(self, soname: str, needed_by: Path) -> Resolution:
        """Where the loader finds ``soname`` for ``needed_by`` (nothing is recorded as loaded)."""
        if soname in self.loaded:
            path = self.loaded[soname]
            if path in self.opened_by:
                return Resolution(soname, needed_by, path, Via(Step.ROOT_PRELOAD, self.opened_by[path]), ())
            return Resolution(soname, needed_by, path, Via(Step.PRELOAD if path in self.preloaded else Step.LOADED), ())
        if "/" in soname:
            path = expand(soname, needed_by.parent)
            return Resolution(soname, needed_by, path if is_regular(path) else None, Via(Step.PATH),
                              (Searched(Via(Step.PATH), path),))
        obj = self.info(needed_by)
        if isinstance(obj, ElfProblem):
            return Resolution(soname, needed_by, None, Via(Step.NOT_FOUND), (), obj.problem)
        wanted = (obj.elf_class, obj.machine)
        searched: list[Searched] = []
        skipped: list[tuple[Path, str]] = []
        for place, candidates in self._candidates(self._search_order(obj, needed_by), soname):
            searched.append(place)
            for candidate in candidates:
                take, problem = self._acceptable(candidate, wanted, soname)
                if take:
                    return Resolution(soname, needed_by, candidate, place.via, tuple(searched), problem, tuple(skipped))
                if problem:
                    skipped.append((candidate, problem))
        return Resolution(soname, needed_by, None, Via(Step.NOT_FOUND), tuple(searched), None, tuple(skipped))

    def _map_preloads(self) -> list[Path]:
        """LD_PRELOAD's objects: a path is opened as it is, a bare name is searched for the executable."""
        mapped = []
        for entry in self.preload:
            if "/" in entry:
                path: Path | None = Path(entry)
            elif self.executable is not None:
                path = self.resolve(entry, self.executable).path
            else:
                path = None
            if path is None or not is_regular(path):
                continue  # ld.so prints "cannot be preloaded ... ignored" and goes on
            info = self.info(path)
            if isinstance(info, ElfInfo) and info.soname:
                self.loaded.setdefault(info.soname, path)
            self.preloaded.add(path)
            mapped.append(path)
        return mapped

    def _candidates(
        self, steps: list[tuple[Via, list[Path]]], soname: str
    ) -> Iterator[tuple[Searched, Iterable[Path]]]:
        """(the place, [folder/soname]) for each folder, with the ld.so.cache's files before the defaults."""
        for via, folders in steps:
            if via.step is Step.DEFAULT and self.use_cache:
                yield Searched(Via(Step.LD_SO_CACHE)), self.cache.get(soname, ())
            for folder in folders:
                yield Searched(via, folder), [folder / soname]

    def load(self, objects: Sequence[Path]) -> None:
        """Map ``objects`` (opened by path, as dlopen of an absolute path does) and all they need.

        Dependencies are loaded breadth first in DT_NEEDED order, as ld.so does, so the
        first object to ask for a soname decides which file every later user gets.
        """
        queue: deque[Path] = deque()
        preloads = self._map_preloads() if self.preload and not self.preloaded else []
        for obj in [*preloads, *objects]:
            if self._map_opened(obj):
                queue.append(obj)
            self._walk(queue)

    def _map_opened(self, obj: Path) -> bool:
        """Map an object opened by path; True when it is a newly mapped ELF object whose DT_NEEDED are to be walked."""
        info = self.info(obj)
        if isinstance(info, ElfInfo) and info.soname and self.loaded.get(info.soname, obj) != obj:
            return False  # a copy with this soname is mapped already: dlopen returns that one
        self.loader_of.setdefault(obj, None)
        if not isinstance(info, ElfInfo):
            return False
        self.loaded.setdefault(info.soname or str(obj), obj)
        return True

    def _walk(self, queue: deque[Path]) -> None:
        """Breadth first: each queued object's DT_NEEDED in order, each file they newly map queued in turn."""
        while queue:
            current = queue.popleft()
            current_info = self.info(current)
            if not isinstance(current_info, ElfInfo):
                continue
            for soname in current_info.needed:
                mapped = self._map_needed(soname, current)
                if mapped is not None:
                    queue.append(mapped)

    def _map_needed(self, soname: str, needed_by: Path) -> Path | None:
        """Resolve and record one DT_NEEDED entry; the file when it is newly mapped and its own needs are to be walked."""
        resolution = self.resolve(soname, needed_by)
        self.resolutions.append(resolution)
        path = resolution.path
        if path is None or resolution.via.reused or resolution.problem:
            return None
        self.loaded[soname] = path
        if not self.follows(path, soname):
            return None
        # glibc also matches later requests against the DT_SONAME of every mapped object
        mapped = self.info(path)
        if isinstance(mapped, ElfInfo) and mapped.soname:
            self.loaded.setdefault(mapped.soname, path)
        self.loader_of.setdefault(path, needed_by)
        return path
