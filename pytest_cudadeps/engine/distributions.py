"""The installed distributions, read from their metadata files and never imported.

:func:`scan` walks the given ``sys.path`` entries in order, the way
``importlib.metadata`` does, and parses each ``*.dist-info`` (``METADATA``) and
``*.egg-info`` (``PKG-INFO`` plus ``requires.txt``).  A file that cannot be read
or parsed becomes a :class:`MetadataProblem` instead of an exception, so that a
garbled install turns into a failing item rather than an INTERNALERROR.
"""

from __future__ import annotations

import ast
import csv
import json
import os
import re
import sys
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

from packaging.utils import canonicalize_name

from pytest_cudadeps.core.safe_io import UnsafeFile, is_dir, read_regular, read_text

# Size caps of the files read here (safe_io.read_regular refuses anything larger, and any FIFO,
# device or folder, with a message naming the file).  Each is far above what real installs
# write, and far below what would cost noticeable memory or time:
# - METADATA / PKG-INFO: the body is the long description (a README); the largest real ones
#   are a few MB (READMEs with embedded images).  16 MB.
METADATA_LIMIT = 16 << 20
# - requires.txt: one requirement a line; torch 2.4's has 30 lines (2 KB).  1 MB.
REQUIRES_TXT_LIMIT = 1 << 20
# - RECORD: torch's is about 2 MB with 20,000 lines; a distribution ten times larger still fits.  64 MB.
RECORD_LIMIT = 64 << 20
# - and in lines: 64 MB of 32-byte lines is 2 million, which cost 52 s and 2.3 GB to index as files.
#   torch 2.14.1's RECORD has about 20,000; ten times that.
RECORD_LINE_LIMIT = 200_000
_LINE_ENDS = ("\n", "\r", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")  # str.splitlines' own
# - direct_url.json: a URL and a few keys (PEP 610).  64 KB.
DIRECT_URL_LIMIT = 64 << 10
# - INSTALLER: one word ("pip", "uv").  4 KB.
INSTALLER_LIMIT = 4 << 10
# - a .pth file: a path a line (easy-install.pth of a busy develop environment: a few hundred).  1 MB, and its
#   path lines capped at 10,000 (each adds a path entry that is listed and scanned).  An .egg-link: two lines.  4 KB.
PTH_LIMIT = 1 << 20
PTH_LINE_LIMIT = 10_000
EGG_LINK_LIMIT = 4 << 10
# - version.py: torch's is about 300 bytes; ast.parse takes 0.75 s for 1 MB of assignments
#   (python3.11), so 256 KB keeps the parse under 0.2 s.
VERSION_PY_LIMIT = 256 << 10
# Python's csv module refuses a field longer than this (csv.field_size_limit(), a process-wide
# setting we leave alone): such a RECORD line is reported instead of raising csv.Error.
_CSV_FIELD_LIMIT = 128 << 10
# C0 and C1 control characters and DEL: never part of a real distribution name or version, and
# a NUL makes "torch\0" a different key from "torch" (a false "torch is not installed").
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class MetadataProblem:
    """A metadata file that could not be used: which file, and what is wrong with it; the distribution it belongs
    to (``name``, ``version``, ``installer``) as far as it is known: from its METADATA when that was read (a bad
    RECORD or INSTALLER), else from the folder's name (``nvidia_cublas-13.1.1.3.dist-info``), else empty."""

    path: Path
    problem: str
    name: str = ""
    version: str = ""
    installer: str = ""


class RecordEntry(NamedTuple):
    """One line of a RECORD file: a path relative to the distribution's location."""

    path: str
    hash: str
    size: str


@dataclass(frozen=True, eq=False)
class Distribution:
    """One installed distribution as its metadata describes it.

    ``location`` is the ``sys.path`` entry holding it, ``meta_dir`` its
    ``.dist-info``/``.egg-info`` folder.  ``requires`` are the raw ``Requires-Dist``
    strings (parsed later, so that one bad line names its file and does not hide the rest).
    """

    name: str
    version: str
    location: Path
    meta_dir: Path
    requires: tuple[str, ...]
    provides_extras: frozenset[str]
    installer: str
    egg_link: Path | None = None  # the ``.egg-link`` that names its location: a `setup.py develop` (editable) install

    @property
    def key(self) -> str:
        return canonicalize_name(self.name)

    def __str__(self) -> str:
        return f"{self.name} {self.version}"

    @cached_property
    def record(self) -> tuple[RecordEntry, ...]:
        """The RECORD entries (empty when there is no RECORD, as for egg-info, or it cannot be read)."""
        return self.record_entries()

    @cached_property
    def _record_lines(self) -> tuple[str, ...]:
        # scan() fills this while it checks the file, so RECORD is read once per run
        return load_record(self.meta_dir)[0]

    def record_entries(self, containing: str = "") -> tuple[RecordEntry, ...]:
        """RECORD entries whose line contains ``containing`` (torch's RECORD has 20,000 lines).

        A line that csv cannot parse (a field over 128 KiB) is left out: scan() reports it
        as a :class:`MetadataProblem` of this RECORD.
        """
        lines = self._record_lines
        if containing:
            lines = tuple(line for line in lines if containing in line)
        return tuple(
            RecordEntry(row[0], row[1] if len(row) > 1 else "", row[2] if len(row) > 2 else "")
            for row in _csv_rows(lines) if row and row[0]
        )

    def files(self) -> Iterator[tuple[Path, RecordEntry]]:
        """Absolute paths (not resolved through links) of the files its RECORD lists, wherever they point.

        RECORD paths are relative to ``location``, but nothing stops a line from being
        absolute or climbing out with ``..`` (console scripts legitimately sit at
        ``../../../bin``).  To decide who owns a file, use :meth:`owned_files`.
        """
        for entry in self.record:
            yield Path(os.path.normpath(self.location / entry.path)), entry

    def owned_files(self, containing: str = "") -> Iterator[tuple[Path, RecordEntry]]:
        """The files of its RECORD that lie inside ``location`` after ``os.path.normpath``: the ones it may own.

        A RECORD line with an absolute path (``/usr/local/cuda/lib64/libcudart.so.13``) or
        ``..`` components leading out of site-packages never makes the system's library
        "owned by nvidia-cuda-runtime".  Links are not resolved (a folder inside that is a
        link to elsewhere is the linkage walk's business, as for the loader).
        ``containing`` filters the lines first, as in :meth:`record_entries`.
        """
        base = os.path.normpath(self.location)
        prefix = base.rstrip(os.sep) + os.sep
        for entry in self.record_entries(containing) if containing else self.record:
            if os.path.isabs(entry.path):
                continue
            path = os.path.normpath(os.path.join(base, entry.path))
            if path.startswith(prefix):
                yield Path(path), entry


def _csv_rows(lines: tuple[str, ...]) -> Iterator[list[str]]:
    """csv rows of ``lines``; a line csv refuses (csv.Error) is skipped instead of ending the walk."""
    try:
        yield from list(csv.reader(lines))
        return
    except csv.Error:
        pass
    for line in lines:  # the slow path, only for a RECORD that scan() reported
        try:
            yield from list(csv.reader([line]))
        except csv.Error:
            continue


def load_record(meta_dir: Path) -> tuple[tuple[str, ...], MetadataProblem | None]:
    """The lines of ``meta_dir/RECORD`` and what is wrong with it (None: nothing, or no RECORD at all)."""
    path = meta_dir / "RECORD"
    try:
        text = read_regular(path, RECORD_LIMIT, "a RECORD file").decode("utf-8", errors="replace")
    except FileNotFoundError:
        return (), None
    except OSError as exc:
        return (), MetadataProblem(path, f"cannot be read: {_reason(exc)}")
    count = sum(text.count(end) for end in _LINE_ENDS)  # linear, before two million strings are made
    if count > RECORD_LINE_LIMIT:
        return (), MetadataProblem(path, f"cannot be read: lists {count:,} files, more than the "
                                         f"{RECORD_LINE_LIMIT:,} a RECORD file may list")
    lines = tuple(text.splitlines())
    # Only a line longer than csv's field limit, or one with a NUL (refused before Python
    # 3.11), can make csv raise: checking those alone keeps torch's 20,000 lines cheap.
    for number, line in enumerate(lines, start=1):
        if len(line) > _CSV_FIELD_LIMIT or "\0" in line:
            try:
                list(csv.reader([line]))
            except csv.Error as exc:
                return lines, MetadataProblem(path, f"line {number} cannot be parsed: {exc}")
    return lines, None


def _reason(exc: OSError) -> str:
    """An OSError in words: the safe reader's own reason, else "[Errno 13] Permission denied"."""
    return str(exc) if isinstance(exc, UnsafeFile) else (f"[Errno {exc.errno}] {exc.strerror}" if exc.strerror else str(exc))


@dataclass(frozen=True)
class Environment:
    """Every distribution found on the scanned path, in ``sys.path`` order."""

    paths: tuple[Path, ...]
    distributions: tuple[Distribution, ...]
    problems: tuple[MetadataProblem, ...] = ()
    by_key: dict[str, tuple[Distribution, ...]] = field(default_factory=dict, compare=False)

    def get(self, name: str) -> Distribution | None:
        """The copy Python would use: the first one on the path."""
        found = self.by_key.get(canonicalize_name(name))
        return found[0] if found else None

    def package_dir(self, dist: Distribution, package: str) -> Path | None:
        """The folder of an import package of ``dist`` (``torch``), without importing it: beside its metadata,
        or, for an editable install (``pip install -e``), in the source tree its ``direct_url.json`` names."""
        candidate = dist.location / package
        if is_dir(candidate):
            return candidate
        source = editable_source(dist)
        if source is None:
            return None
        return next((found for found in (source / package, source / "src" / package) if is_dir(found)), None)


def editable_source(dist: Distribution) -> Path | None:
    """The source folder of an editable install (PEP 660: ``direct_url.json`` with ``dir_info.editable``), else None.

    The package lives there, not in site-packages (a ``__editable__`` finder or a ``.pth`` line points at
    it): a fix must never reinstall it from an index, which would replace the developer's build.
    """
    source = installed_from(dist)
    return Path(source.where) if source is not None and source.kind == "editable" else None


def is_editable(dist: Distribution) -> bool:
    """Installed editable: PEP 660 (``direct_url.json``) or a legacy ``.egg-link`` (`setup.py develop`)."""
    return editable_source(dist) is not None


@dataclass(frozen=True)
class Source:
    """Where a distribution was built from, when not from an index (PEP 610 ``direct_url.json``): a local
    folder (``kind`` "folder" or "editable": ``where`` is the path) or a VCS checkout ("vcs": ``where`` is a pip
    requirement URL, ``git+https://...@COMMIT``)."""

    kind: str
    where: str


def installed_from(dist: Distribution) -> Source | None:
    """The source of a local or VCS build, from its ``direct_url.json`` (or its ``.egg-link``: an editable build
    in the folder that holds its egg-info); None for a wheel or sdist from an index (no such file) or an archive URL."""
    if dist.egg_link is not None:
        return Source("editable", str(dist.location))
    return source_of(dist.meta_dir)


def source_of(meta_dir: Path) -> Source | None:
    """:func:`installed_from` for a metadata folder (one whose METADATA may be unreadable)."""
    try:
        data = json.loads(read_text(meta_dir / "direct_url.json", DIRECT_URL_LIMIT, "a direct_url.json file"))
    except (OSError, ValueError, RecursionError):
        return None
    url = data.get("url") if isinstance(data, dict) else None
    if not isinstance(url, str):
        return None
    if isinstance(data.get("dir_info"), dict) and url.startswith("file://"):
        folder = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
        return Source("editable" if data["dir_info"].get("editable") is True else "folder", folder)
    vcs = data.get("vcs_info")
    if isinstance(vcs, dict) and isinstance(vcs.get("vcs"), str) and isinstance(vcs.get("commit_id"), str):
        return Source("vcs", f"{vcs['vcs']}+{url}@{vcs['commit_id']}")
    return None


def _read_text(path: Path, limit: int, what: str) -> str:
    """A UTF-8 file read with :func:`safe_io.read_text` (regular file, at most ``limit`` bytes)."""
    return read_text(path, limit, what)


def _egg_requires(text: str) -> list[str]:
    """Turn a setuptools ``requires.txt`` (``[extra:marker]`` sections) into Requires-Dist lines."""
    out: list[str] = []
    section_marker = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            extra, _, marker = line[1:-1].partition(":")
            parts = []
            if extra:
                parts.append(f'extra == "{extra}"')
            if marker:
                parts.append(f"({marker})")
            section_marker = " and ".join(parts)
            continue
        out.append(f"{line}; {section_marker}" if section_marker else line)
    return out


def parse_headers(text: str) -> dict[str, list[str]] | str:
    """The header fields of a METADATA/PKG-INFO file (core metadata is RFC 822 style), by lower-case name.

    Continuation lines (starting with a space or tab) are joined to their field; the first
    empty line ends the headers.  A line that is neither ends parsing with a message, as
    the email package would record a defect.  (email.parser costs more to import than the
    whole scan takes.)
    """
    # Pieces are joined at the end: `+=` on a list element copies the field each time, which is
    # quadratic for a 16 MB METADATA made of continuation lines.
    pieces: dict[str, list[list[str]]] = {}
    last: list[str] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            break
        if line[0] in " \t":
            if last is None:
                return f"line {number} continues a header, but no header came before it"
            last.append(line.strip())
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip() or " " in name.strip():
            return f"line {number} is not a 'Name: value' header ({line[:60]!r})"
        last = [value.strip()]
        pieces.setdefault(name.strip().lower(), []).append(last)
    return {key: [" ".join(parts) for parts in values] for key, values in pieces.items()}


def read_distribution(location: Path, meta_dir: Path) -> Distribution | MetadataProblem:
    """Parse one metadata folder; anything wrong with it becomes a :class:`MetadataProblem`.

    Only what hides the distribution itself (METADATA, requires.txt, its Name or Version) is
    returned instead of it; :func:`read_metadata_dir` also reports INSTALLER and RECORD.
    """
    found, problems = read_metadata_dir(location, meta_dir)
    return found if found is not None else problems[0]


def read_metadata_dir(location: Path, meta_dir: Path) -> tuple[Distribution | None, list[MetadataProblem]]:
    """One metadata folder: the distribution (None when its METADATA is unusable) and every problem found.

    A bad INSTALLER or RECORD keeps the distribution (its requirements are still known) and
    adds a problem; a bad METADATA, requires.txt, Name or Version drops it.
    """
    is_egg = meta_dir.name.endswith(".egg-info")
    meta_file = _metadata_file(meta_dir, is_egg)
    headers = _read_headers(meta_file)
    if isinstance(headers, MetadataProblem):
        return None, [_owned_by_folder(headers, meta_dir)]
    identity = _name_and_version(meta_file, headers)
    if isinstance(identity, MetadataProblem):
        return None, [_owned_by_folder(identity, meta_dir)]
    requires = headers.get("requires-dist", [])
    if is_egg and meta_file is not meta_dir:
        egg_requires = _read_egg_requires(meta_dir / "requires.txt")
        if isinstance(egg_requires, MetadataProblem):
            return None, [replace(egg_requires, name=identity[0], version=identity[1])]
        requires += egg_requires
    extras = frozenset(canonicalize_name(e) for e in headers.get("provides-extra", []))
    installer, problem = _read_installer(meta_dir / "INSTALLER")
    dist = Distribution(*identity, location, meta_dir, tuple(requires), extras, installer)
    problems = [problem] if problem else []
    if not is_egg:
        lines, record_problem = load_record(meta_dir)
        dist.__dict__["_record_lines"] = lines  # fills the cached_property: RECORD is read once
        problems += [record_problem] if record_problem else []
    return dist, [replace(found, name=dist.name, version=dist.version, installer=installer) for found in problems]


# ``{name}-{version}.dist-info`` (the wheel spec escapes '-' in both) and ``{name}-{version}[-pyX.Y[-platform]].egg-info``
_FOLDER_NAME = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._]*)-(?P<version>[A-Za-z0-9][A-Za-z0-9.!+_]*)"
                          r"(?:-py\d[\w.-]*)?\.(?:dist|egg)-info")


def _owned_by_folder(problem: MetadataProblem, meta_dir: Path) -> MetadataProblem:
    """The problem of an unreadable METADATA, with the name and version its folder's name gives (as pip's own
    folder names spell them), and the installer its INSTALLER names."""
    match = _FOLDER_NAME.fullmatch(meta_dir.name)
    if match is None:
        return problem
    installer, _ = _read_installer(meta_dir / "INSTALLER")
    return replace(problem, name=match["name"], version=match["version"], installer=installer)


def _metadata_file(meta_dir: Path, is_egg: bool) -> Path:
    """METADATA of a .dist-info, PKG-INFO of an .egg-info folder, or the .egg-info file itself."""
    if is_egg and not is_dir(meta_dir):  # an old single-file egg-info
        return meta_dir
    return meta_dir / ("PKG-INFO" if is_egg else "METADATA")


def _name_and_version(meta_file: Path, headers: dict[str, list[str]]) -> tuple[str, str] | MetadataProblem:
    """The Name and Version fields, or the problem of a missing one or one with a control character."""
    name = (headers.get("name") or [""])[0]
    version = (headers.get("version") or [""])[0]
    missing = [field for field, value in (("Name", name), ("Version", version)) if not value]
    if missing:
        return MetadataProblem(meta_file, f"has no {' and no '.join(missing)} field")
    for field_name, value in (("Name", name), ("Version", version)):
        bad = _CONTROL.search(value)
        if bad:
            return MetadataProblem(
                meta_file, f"bad metadata: the {field_name} field contains a control character ({bad.group()!r})")
    return name, version


def _read_headers(meta_file: Path) -> dict[str, list[str]] | MetadataProblem:
    try:
        text = _read_text(meta_file, METADATA_LIMIT, f"a {meta_file.name} file")
    except FileNotFoundError:
        return MetadataProblem(meta_file, "the file is missing")
    except OSError as exc:
        return MetadataProblem(meta_file, f"cannot be read: {_reason(exc)}")
    except ValueError as exc:
        return MetadataProblem(meta_file, f"cannot be read: {exc}")
    headers = parse_headers(text)
    if isinstance(headers, str):
        return MetadataProblem(meta_file, f"garbled headers: {headers}")
    return headers


def _read_egg_requires(path: Path) -> list[str] | MetadataProblem:
    try:
        return _egg_requires(_read_text(path, REQUIRES_TXT_LIMIT, "a requires.txt file"))
    except FileNotFoundError:
        return []
    except OSError as exc:
        return MetadataProblem(path, f"cannot be read: {_reason(exc)}")
    except ValueError as exc:
        return MetadataProblem(path, f"cannot be read: {exc}")


def _read_installer(path: Path) -> tuple[str, MetadataProblem | None]:
    """The installer's name ("" when there is no INSTALLER), and a problem for an unreadable one.

    Not decoded strictly: only the fix wording depends on it.  Control characters are kept
    here and escaped where text is shown (findings.printable).
    """
    try:
        data = read_regular(path, INSTALLER_LIMIT, "an INSTALLER file")
    except FileNotFoundError:
        return "", None
    except OSError as exc:
        return "", MetadataProblem(path, f"cannot be read: {_reason(exc)}")
    return data.decode("utf-8", errors="replace").strip(), None


def _metadata_dirs(location: Path) -> list[Path]:
    """The metadata folders of one path entry, in the order importlib.metadata finds them: every
    ``.dist-info`` before any ``.egg-info`` (its ``Lookup.search`` chains the two), so that a stale
    ``torch-2.4.0.egg-info`` left beside ``torch-2.14.1.dist-info`` is not taken for the installed torch."""
    try:
        names = sorted(os.listdir(location), key=lambda name: (name.endswith(".egg-info"), name))
    except OSError:
        return []
    return [location / n for n in names if n.endswith((".dist-info", ".egg-info"))]


def pth_entries(site: Path) -> list[Path]:
    """The folders the ``.pth`` files of a site folder put on ``sys.path``, as ``site.addsitedir`` does: the files in
    name order (hidden ones skipped), a path a line, relative to the site folder, comments and ``import`` lines
    (code: an ``__editable__`` finder's hook, which this reader never runs) skipped, only folders that exist.
    ``easy-install.pth`` (`setup.py develop`) and a PEP 660 ``__editable__.*.pth`` path line land here."""
    try:
        names = sorted(name for name in os.listdir(site) if name.endswith(".pth") and not name.startswith("."))
    except OSError:
        return []
    found: list[Path] = []
    for name in names:
        try:
            text = read_text(site / name, PTH_LIMIT, "a .pth file")
        except (OSError, ValueError):
            continue  # Python skips a .pth it cannot read, too
        lines = [line.rstrip() for line in text.splitlines()[:PTH_LINE_LIMIT]]
        found += [Path(os.path.abspath(os.path.join(site, line))) for line in lines
                  if line.strip() and not line.startswith(("#", "import ", "import\t"))]
    return [path for path in found if is_dir(path)]


def _egg_links(site: Path) -> dict[Path, Path]:
    """Project folder -> the ``.egg-link`` in ``site`` that names it (its first line)."""
    try:
        names = sorted(name for name in os.listdir(site) if name.endswith(".egg-link"))
    except OSError:
        return {}
    links: dict[Path, Path] = {}
    for name in names:
        try:
            first = read_text(site / name, EGG_LINK_LIMIT, "an .egg-link file").splitlines()[:1]
        except (OSError, ValueError):
            continue
        if first and first[0].strip():
            links.setdefault(Path(os.path.abspath(os.path.join(site, first[0].strip()))), site / name)
    return links


def _entries(paths: Iterable[str | os.PathLike[str]] | None) -> list[Path]:
    """The path entries to scan: ``sys.path`` as it is, or the given site folders each followed by what its
    ``.pth`` files add (Python processes them for a site folder, and ``sys.path`` already holds them)."""
    entries: dict[Path, None] = {}  # ordered, and a repeat costs nothing (10,000 lines of one .pth)
    for raw in sys.path if paths is None else paths:
        path = Path(os.path.abspath(raw or os.curdir))
        if path in entries or not is_dir(path):
            continue
        entries[path] = None
        for added in pth_entries(path) if paths is not None else ():
            entries.setdefault(added)
    return list(entries)


def scan(paths: Iterable[str | os.PathLike[str]] | None = None) -> Environment:
    """Read every distribution on ``paths`` (default: ``sys.path``), first entry first; given site folders bring
    the entries of their ``.pth`` files (:func:`pth_entries`), and an ``.egg-link`` marks an editable install."""
    entries = _entries(paths)
    links = {target: link for entry in entries for target, link in _egg_links(entry).items()}
    dists: list[Distribution] = []
    problems: list[MetadataProblem] = []
    for location in entries:
        for meta_dir in _metadata_dirs(location):
            found, found_problems = read_metadata_dir(location, meta_dir)
            if found is not None and location in links and meta_dir.name.endswith(".egg-info"):
                found = replace(found, egg_link=links[location])
            dists += [found] if found is not None else []
            problems += found_problems
    by_key: dict[str, list[Distribution]] = {}
    for dist in dists:
        by_key.setdefault(dist.key, []).append(dist)
    return Environment(
        tuple(entries), tuple(dists), tuple(problems), {k: tuple(v) for k, v in by_key.items()}
    )


def read_version_module(package_dir: Path) -> dict[str, str | None]:
    """The literal assignments of ``<package>/version.py``, read as text, never imported.

    torch writes ``cuda: Optional[str] = '13.0'`` (or ``= None`` for a CPU build).  Raises
    OSError (FileNotFoundError; :class:`UnsafeFile` for a FIFO or a file over
    :data:`VERSION_PY_LIMIT`), SyntaxError, or ValueError (not UTF-8; nested too deeply to parse).
    """
    path = package_dir / "version.py"
    source = _read_text(path, VERSION_PY_LIMIT, "a version.py file")
    try:
        tree = ast.parse(source, filename=str(path))
    except (RecursionError, MemoryError) as exc:
        # CPython's parser gives up on a deeply nested expression (`- - - ... 1`, `a.a.a...`)
        # with MemoryError or RecursionError instead of SyntaxError.
        raise ValueError(f"an expression is nested too deeply for Python's parser ({type(exc).__name__})") from None
    values: dict[str, str | None] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if (isinstance(target, ast.Name) and isinstance(value, ast.Constant)
                and (value.value is None or isinstance(value.value, str))):
            values[target.id] = value.value
    return values
