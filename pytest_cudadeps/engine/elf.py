"""ELF facts read with struct: headers, the dynamic section, symbol versions and dynamic symbols.

Nothing here maps or runs the file, and nothing imports pyelftools: the readers unpack
the ELF header, the section header table and the few small sections asked for, so a
1 GiB libcublasLt costs the same as a small library.  A file that is not a usable ELF
object comes back as an :class:`ElfProblem` (never an exception), because the loader
would stop on it too.
"""

from __future__ import annotations

import os
import re
import struct
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from pytest_cudadeps.core.safe_io import UnsafeFile, human_size, open_regular


@dataclass(frozen=True)
class ElfInfo:
    """What the dynamic loader reads from a shared object."""

    path: Path
    elf_class: int  # 32 or 64
    machine: str  # e_machine, such as "EM_X86_64"
    soname: str | None
    needed: tuple[str, ...]
    rpath: tuple[str, ...]  # DT_RPATH split on ":"; "" entries kept (they mean the current folder)
    runpath: tuple[str, ...]
    verneed: tuple[tuple[str, tuple[str, ...]], ...]  # (needed file, version names it requires)
    verdef: tuple[str, ...]  # version names it defines

    def has_runpath(self) -> bool:
        return bool(self.runpath)

    def effective_rpath(self) -> tuple[str, ...]:
        """glibc ignores DT_RPATH when DT_RUNPATH is present (elf/get-dynamic-info.h)."""
        return () if self.runpath else self.rpath

    def versions_needed_from(self, soname: str) -> tuple[str, ...]:
        for name, versions in self.verneed:
            if name == soname:
                return versions
        return ()


@dataclass(frozen=True)
class ElfProblem:
    """A file the loader would refuse, and the reason in the loader's words where possible."""

    path: Path
    problem: str


# glibc reads a whole ELF header of its own class before anything else: shorter is "file too short".
_EHDR_SIZE = 64 if sys.maxsize > 2**32 else 52
_MAGIC = b"\x7fELF"
_SHT_STRTAB, _SHT_DYNSYM, _SHT_DYNAMIC, _SHT_GNU_VERDEF, _SHT_GNU_VERNEED = 3, 11, 6, 0x6FFFFFFD, 0x6FFFFFFE
_SHT_NOBITS = 8
_WANTED_SECTIONS = (_SHT_DYNAMIC, _SHT_GNU_VERNEED, _SHT_GNU_VERDEF)
_DT_NULL, _DT_NEEDED, _DT_STRTAB, _DT_SONAME, _DT_RPATH, _DT_RUNPATH = 0, 1, 5, 14, 15, 29
_STRING_TAGS = frozenset((_DT_NEEDED, _DT_SONAME, _DT_RPATH, _DT_RUNPATH))
_SECTION_WORDS = {_SHT_DYNAMIC: "dynamic", _SHT_GNU_VERNEED: "version needs", _SHT_GNU_VERDEF: "version definitions",
                  _SHT_DYNSYM: "dynamic symbol"}
# sizeof(ElfNN_Shdr) and sizeof(ElfNN_Phdr) by ELF class: glibc refuses another e_phentsize
# ("ELF file's phentsize not the expected size"), and the readers unpack fixed-size headers.
_SHDR_SIZE = {32: 40, 64: 64}
_PHDR_SIZE = {32: 32, 64: 56}
# Linked shared objects have tens of sections (a CUDA library about forty); the extended count
# (e_shnum 0, the count in section 0's sh_size) exists for relocatable objects built with
# -ffunction-sections.  262,144 headers are a 16 MB table: anything more is refused unread.
MAX_SECTIONS = 1 << 18
# DT_NEEDED entries of one file: libtorch_cuda.so has about 30, the largest real libraries a few hundred.
# A million cost 46 s to over 300 s, each name resolved through the search path.
MAX_NEEDED = 4096
# Elf64_Shdr fields: name, type, flags, addr, offset, size, link, info, addralign, entsize.
_SHDR_LAYOUT = {32: "10I", 64: "IIQQQQIIQQ"}
# The ElfNN_Ehdr fields after e_ident that ElfHeader keeps (type, machine, phoff, shoff, phentsize,
# phnum, shentsize, shnum, shstrndx); e_version, e_entry, e_flags and e_ehsize are skipped.
_EHDR_LAYOUT = {32: "HH8xII6xHHHHH", 64: "HH12xQQ6xHHHHH"}
_E_TYPES = {0: "ET_NONE", 1: "ET_REL", 2: "ET_EXEC", 3: "ET_DYN", 4: "ET_CORE"}
_ET_DYN = 3
# e_machine names as <elf.h> (and pyelftools) spell them: the machines glibc runs on.
_MACHINES = {2: "EM_SPARC", 3: "EM_386", 4: "EM_68K", 8: "EM_MIPS", 15: "EM_PARISC", 18: "EM_SPARC32PLUS",
             20: "EM_PPC", 21: "EM_PPC64", 22: "EM_S390", 40: "EM_ARM", 42: "EM_SH", 43: "EM_SPARCV9",
             50: "EM_IA_64", 62: "EM_X86_64", 92: "EM_OPENRISC", 113: "EM_ALTERA_NIOS2", 183: "EM_AARCH64",
             189: "EM_MICROBLAZE", 195: "EM_ARC_COMPACT2", 243: "EM_RISCV", 252: "EM_CSKY", 258: "EM_LOONGARCH"}
# The dynamic, version and string sections are read a block at a time as they are walked: the strings
# they name sit together at the end of .dynstr (GNU ld writes them after the symbol names), and
# libtorch_cpu's .dynstr is 5 MB.  A multiple of every record read whole from a block (Elf_Dyn: 8, 16).
_BLOCK = 4096


class DamagedElf(ValueError):
    """An ELF file whose headers contradict its size: refused before anything is allocated from them."""


class NotElf(DamagedElf):
    """A file that is no ELF file at all (no magic, or shorter than a header): the loader's words, as they are."""


@dataclass(frozen=True)
class ElfHeader:
    """The fields of the ELF header that the readers need, unpacked with struct."""

    elf_class: int  # 32 or 64
    order: str  # the struct byte order of the file: "<" or ">"
    type: int
    machine: int
    phoff: int
    shoff: int
    phentsize: int
    phnum: int
    shentsize: int
    shnum: int
    shstrndx: int


def _elf_class(ident: bytes) -> int:
    """32 or 64, from the magic and EI_CLASS of ``ident`` (a file's first bytes, at least five): every reader's first check."""
    if ident[:4] != _MAGIC:
        raise NotElf("invalid ELF header")
    if ident[4] not in (1, 2):
        raise DamagedElf(f"EI_CLASS {ident[4]} is neither 1 (32-bit) nor 2 (64-bit)")
    return 32 if ident[4] == 1 else 64


def _parse_header(head: bytes) -> ElfHeader:
    """The ELF header at the start of ``head`` (the file's first 64 bytes, or all of a shorter file)."""
    if len(head) < 52:
        raise NotElf("file too short")
    elf_class = _elf_class(head)
    if head[5] not in (1, 2):
        raise DamagedElf(f"EI_DATA {head[5]} is neither 1 (little-endian) nor 2 (big-endian)")
    order = "<" if head[5] == 1 else ">"
    if len(head) < 16 + struct.calcsize(order + _EHDR_LAYOUT[elf_class]):
        raise DamagedElf("file too short")
    return ElfHeader(elf_class, order, *struct.unpack_from(order + _EHDR_LAYOUT[elf_class], head, 16))


def elf_header(stream: BinaryIO) -> ElfHeader:
    """:func:`_parse_header` of the file open in ``stream``."""
    stream.seek(0)
    return _parse_header(stream.read(64))


def _machine_name(number: int) -> str:
    return _MACHINES.get(number, f"EM_{number}")


@dataclass(frozen=True)
class SectionHeader:
    """The fields of one section header that the readers need, unpacked with struct."""

    index: int
    name: int  # offset in the section-name string table
    type: int
    offset: int
    size: int
    link: int
    info: int


def _unpack_sections(table: bytes, elf_class: int, order: str) -> list[SectionHeader]:
    layout = struct.Struct(order + _SHDR_LAYOUT[elf_class])
    headers = []
    for index in range(len(table) // layout.size):
        fields = layout.unpack_from(table, index * layout.size)
        name, sh_type, offset, size, link, info = fields[0], fields[1], fields[4], fields[5], fields[6], fields[7]
        headers.append(SectionHeader(index, name, sh_type, offset, size, link, info))
    return headers


def _past_end(count: int, entry: int, offset: int, what: str, file_size: int) -> str:
    return (f"{count} {what} of {entry} bytes at offset {offset} lie past the end of the "
            f"{human_size(file_size)} file")


def section_headers(stream: BinaryIO, elf: ElfHeader, file_size: int) -> list[SectionHeader]:
    """Every section header, read with one bounded read of the table.

    The table's extent (e_shoff + count x e_shentsize) is checked against ``file_size``
    before anything is read or allocated: a header claiming 65,535 headers of 65,535 bytes
    on a sparse 5 GB file made one 4.2 GB read (18 s) and then passed.
    """
    count, entry, offset = elf.shnum, elf.shentsize, elf.shoff
    if not offset:
        return []
    expected = _SHDR_SIZE[elf.elf_class]
    if entry != expected:
        raise DamagedElf(f"section headers of {entry} bytes, not the {expected} of ELF class {elf.elf_class}")
    if count == 0:  # extended numbering: the real count is section 0's sh_size
        if offset + entry > file_size:
            raise DamagedElf(_past_end(1, entry, offset, "section headers", file_size))
        stream.seek(offset)
        count = _unpack_sections(stream.read(entry), elf.elf_class, elf.order)[0].size
    if count > MAX_SECTIONS:
        raise DamagedElf(f"{count} section headers; at most {MAX_SECTIONS} are read")
    if offset + count * entry > file_size:
        raise DamagedElf(_past_end(count, entry, offset, "section headers", file_size))
    stream.seek(offset)
    return _unpack_sections(stream.read(count * entry), elf.elf_class, elf.order)


def check_program_headers(elf: ElfHeader, file_size: int) -> None:
    """The loader reads the program headers first: their size and extent must fit the file."""
    count, entry, offset = elf.phnum, elf.phentsize, elf.phoff
    if not count:
        return
    if entry != _PHDR_SIZE[elf.elf_class]:
        raise DamagedElf("ELF file's phentsize not the expected size")  # glibc's words (elf/dl-load.c)
    if offset + count * entry > file_size:
        raise DamagedElf(_past_end(count, entry, offset, "program headers", file_size))


def check_extent(section: SectionHeader, file_size: int, what: str = "") -> None:
    """A section's bytes (unless SHT_NOBITS) lie inside the file: checked before they are read."""
    if section.type != _SHT_NOBITS and section.offset + section.size > file_size:
        words = what or _SECTION_WORDS.get(section.type, f"type {section.type:#x}")
        raise DamagedElf(f"the {words} section ({section.size} bytes at offset {section.offset}) lies past the end "
                         f"of the {human_size(file_size)} file")


def _sections(stream: BinaryIO) -> tuple[ElfHeader, list[SectionHeader], int]:
    """The ELF header, every section header and the file's size: what the symbol readers start from."""
    file_size = os.fstat(stream.fileno()).st_size
    elf = elf_header(stream)
    return elf, section_headers(stream, elf, file_size), file_size


def _first(headers: list[SectionHeader], sh_type: int) -> SectionHeader | None:
    return next((header for header in headers if header.type == sh_type), None)


def _bounded_data(stream: BinaryIO, headers: list[SectionHeader], index: int, file_size: int) -> bytes:
    """The bytes of section ``index``, read only when its header places them inside the file."""
    if index >= len(headers):
        raise DamagedElf(f"no section {index}")
    header = headers[index]
    check_extent(header, file_size)
    if header.type == _SHT_NOBITS:  # no bytes in the file (pyelftools made sh_size zeros of it)
        return b""
    stream.seek(header.offset)
    return stream.read(header.size)


class _SectionBytes:
    """The bytes of one section (its extent checked), read in blocks of :data:`_BLOCK` as they are asked for."""

    def __init__(self, stream: BinaryIO, header: SectionHeader) -> None:
        self._stream = stream
        self._offset = header.offset
        self.size = header.size
        self._blocks: dict[int, bytes] = {}

    def block(self, number: int) -> bytes:
        found = self._blocks.get(number)
        if found is None:
            start = number * _BLOCK
            self._stream.seek(self._offset + start)
            found = self._blocks[number] = self._stream.read(min(_BLOCK, self.size - start))
        return found

    def read(self, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset``, fewer where the section ends first."""
        end = min(offset + length, self.size)
        parts: list[bytes] = []
        while offset < end:
            number, start = divmod(offset, _BLOCK)
            parts.append(self.block(number)[start:start + end - offset])
            offset = (number + 1) * _BLOCK
        return b"".join(parts)

    def records(self, layout: str) -> Iterator[tuple[int, ...]]:
        """Every whole ``layout`` record of the section, in order (one block read at a time)."""
        whole = self.size - self.size % struct.calcsize(layout)
        for start in range(0, whole, _BLOCK):
            yield from struct.iter_unpack(layout, self.block(start // _BLOCK)[:whole - start])

    def string(self, offset: int, words: str) -> str:
        """The NUL-terminated string at ``offset``, decoded as pyelftools did: UTF-8, invalid bytes replaced (U+FFFD)."""
        if offset >= self.size:
            raise DamagedElf(f"the {words} section names a string at offset {offset}, past the end of its "
                             f"{self.size}-byte string table")
        parts: list[bytes] = []
        at = offset
        while at < self.size:
            number, start = divmod(at, _BLOCK)
            block = self.block(number)
            end = block.find(b"\0", start)
            if end >= 0:
                parts.append(block[start:end])
                return b"".join(parts).decode("utf-8", "replace")
            parts.append(block[start:])
            at = (number + 1) * _BLOCK
        raise DamagedElf(f"the {words} section names a string at offset {offset} that runs past the end of its "
                         f"{self.size}-byte string table without a NUL")


def _split_path(value: str) -> tuple[str, ...]:
    return tuple(value.split(":"))


@dataclass
class _DynamicFacts:
    soname: str | None = None
    needed: list[str] = field(default_factory=list)
    rpath: tuple[str, ...] = ()
    runpath: tuple[str, ...] = ()
    verneed: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    verdef: list[str] = field(default_factory=list)


def _read_dynamic(section: _SectionBytes, strings: _SectionBytes, elf: ElfHeader, facts: _DynamicFacts) -> None:
    # (d_tag, d_val) pairs up to DT_NULL: a section without one is damaged, not read on past its end.
    for tag, value in section.records(elf.order + ("qQ" if elf.elf_class == 64 else "iI")):
        if tag == _DT_NULL:
            return
        if tag not in _STRING_TAGS:
            continue
        text = strings.string(value, "dynamic")
        if tag == _DT_NEEDED:
            if len(facts.needed) == MAX_NEEDED:
                raise DamagedElf(f"more than {MAX_NEEDED} DT_NEEDED entries; at most {MAX_NEEDED} are read")
            facts.needed.append(text)
        elif tag == _DT_SONAME:
            facts.soname = text
        elif tag == _DT_RPATH:
            facts.rpath = _split_path(text)
        else:
            facts.runpath = _split_path(text)
    raise DamagedElf(f"the dynamic section has no DT_NULL within its {section.size} bytes")


def _version_budget(header: SectionHeader, entry_size: int) -> int:
    """How many version entries and auxiliaries the section can hold: pyelftools trusted sh_info and
    vn_cnt, and a zero vn_next made it yield the same entry sh_info times (up to 4 billion)."""
    if header.info > header.size // entry_size:
        raise DamagedElf(f"the {_SECTION_WORDS[header.type]} section claims {header.info} entries in "
                         f"{header.size} bytes")
    return header.size // 8


# Elf_Verneed / Elf_Verdef fields read: (count, vn_file or vd_hash, aux offset, next); of their auxiliary
# entries: (name, next).  The same in both ELF classes.
_VERSION_LAYOUTS = {_SHT_GNU_VERNEED: ("2xHIII", "8xII"), _SHT_GNU_VERDEF: ("6xHIII", "II")}


class _VersionWalk:
    """The entries of a .gnu.version_r or .gnu.version_d section in the order pyelftools yielded them.

    sh_info entries, each with its count of names, as pyelftools read them; bounded where it was
    not: every record lies inside the section, a next of 0 ends its chain (the last record, as
    glibc reads it: pyelftools read the same record again), and the names read in all are no more
    than the 8-byte records the section holds (:func:`_version_budget`).
    """

    def __init__(self, section: _SectionBytes, strings: _SectionBytes, header: SectionHeader, order: str) -> None:
        self.section, self.strings, self.header = section, strings, header
        self.words = _SECTION_WORDS[header.type]
        entry, aux = _VERSION_LAYOUTS[header.type]
        self.entry, self.aux = order + entry, order + aux
        self.budget = _version_budget(header, struct.calcsize(self.entry))

    def _record(self, layout: str, at: int) -> tuple[int, ...]:
        size = struct.calcsize(layout)
        data = self.section.read(at, size)
        if len(data) < size:
            raise DamagedElf(f"the {self.words} section has a record of {size} bytes at offset {at}, past the end "
                             f"of its {self.section.size} bytes")
        return struct.unpack(layout, data)

    def _names(self, at: int, count: int) -> list[str]:
        names = []
        for _ in range(count):
            self.budget -= 1
            if self.budget < 0:
                raise DamagedElf(f"the {self.words} section has more entries than fit its {self.header.size} bytes")
            name, following = self._record(self.aux, at)
            names.append(self.strings.string(name, self.words))
            if not following:
                break
            at += following
        return names

    def entries(self) -> Iterator[tuple[int, list[str]]]:
        """(vn_file, the version names) of each entry; vn_file is meaningless in .gnu.version_d."""
        at = 0
        for _ in range(self.header.info):
            count, file_name, aux, following = self._record(self.entry, at)
            if not count:  # pyelftools asserted this too
                raise DamagedElf(f"the {self.words} section has an entry of no versions at offset {at}")
            yield file_name, self._names(at + aux, count)
            if not following:
                return
            at += following


def _read_versions(walk: _VersionWalk, facts: _DynamicFacts) -> None:
    for file_name, names in walk.entries():
        if walk.header.type == _SHT_GNU_VERNEED:
            facts.verneed.append((walk.strings.string(file_name, walk.words), tuple(names)))
        else:  # the first name is the version defined, the others its parents
            facts.verdef.append(names[0])


def _string_table(headers: list[SectionHeader], header: SectionHeader, words: str) -> SectionHeader:
    if header.link >= len(headers):
        raise DamagedElf(f"the {words} section links to section {header.link} for its strings; the file has "
                         f"{len(headers)} sections")
    table = headers[header.link]
    if table.type != _SHT_STRTAB:
        raise DamagedElf(f"the {words} section links to section {header.link} for its strings, which is of type "
                         f"{table.type:#x}, not a string table")
    return table


def _read_section(stream: BinaryIO, elf: ElfHeader, headers: list[SectionHeader], header: SectionHeader,
                  facts: _DynamicFacts, file_size: int) -> None:
    words = _SECTION_WORDS[header.type]
    check_extent(header, file_size)
    if header.link < len(headers):
        check_extent(headers[header.link], file_size, f"string table of the {words}")
    strings = _SectionBytes(stream, _string_table(headers, header, words))
    section = _SectionBytes(stream, header)
    if header.type == _SHT_DYNAMIC:
        _read_dynamic(section, strings, elf, facts)
    else:
        _read_versions(_VersionWalk(section, strings, header, elf.order), facts)


def _open_regular(path: Path) -> BinaryIO:
    """``path`` open for reading through :func:`.safe_io.open_regular`: never blocks on a FIFO, only a regular file."""
    fd = open_regular(path)
    try:
        # open() of a descriptor is os.fdopen; the stream goes open to the caller's with-block
        return open(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _read_facts(stream: BinaryIO, path: Path) -> ElfInfo | ElfProblem:
    file_size = os.fstat(stream.fileno()).st_size
    head = stream.read(64)
    if len(head) < _EHDR_SIZE:  # glibc's check, by the size of its own class's header, comes before the magic
        raise NotElf("file too short")
    elf = _parse_header(head)
    if elf.type != _ET_DYN:
        return ElfProblem(path, f"not a shared object (e_type {_E_TYPES.get(elf.type, f'{elf.type:#x}')})")
    check_program_headers(elf, file_size)
    headers = section_headers(stream, elf, file_size)
    facts = _DynamicFacts()
    # Only the three sections the loader reads are read; the others are never touched.
    for header in headers:
        if header.type in _WANTED_SECTIONS:
            _read_section(stream, elf, headers, header, facts, file_size)
    return ElfInfo(path, elf.elf_class, _machine_name(elf.machine), facts.soname, tuple(facts.needed), facts.rpath,
                   facts.runpath, tuple(facts.verneed), tuple(facts.verdef))


def read_elf(path: Path) -> ElfInfo | ElfProblem:
    """The dynamic facts of ``path``; an :class:`ElfProblem` for anything the loader would reject.

    Every size the file claims (section and program header tables, the sections read) is
    checked against the file's own size before anything is read or allocated from it.
    """
    try:
        with _open_regular(path) as stream:
            return _read_facts(stream, path)
    except UnsafeFile as exc:
        return ElfProblem(path, "is a directory" if "directory" in exc.reason else exc.reason)
    except OSError as exc:
        return ElfProblem(path, f"cannot be read: {exc.strerror or exc}")
    except NotElf as exc:
        return ElfProblem(path, str(exc))
    except DamagedElf as exc:
        return ElfProblem(path, f"damaged ELF file: {exc}")
    except Exception as exc:  # struct.error from a file cut short while it was read, and whatever was not foreseen
        return ElfProblem(path, f"damaged ELF file ({type(exc).__name__}: {exc})")


def read_header(path: Path) -> tuple[int, str] | None:
    """ELF class and machine, from the first 20 bytes; None when the file is not ELF."""
    try:
        with _open_regular(path) as stream:
            head = stream.read(20)
        if len(head) < 20:
            return None
        elf_class = _elf_class(head)
    except (OSError, DamagedElf):
        return None
    # Only e_ident and e_machine (20 bytes): the search asks just "which class and machine", and
    # takes any EI_DATA but 1 as big-endian (the whole header's checks are read_elf's).
    machine = int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")
    return elf_class, _machine_name(machine)


def dynamic_symbols(path: Path, pattern: str) -> tuple[frozenset[str], frozenset[str]]:
    """(defined, undefined) names in ``.dynsym`` that match the regular expression ``pattern``.

    The symbol table is unpacked with struct (libcusparse has thousands of symbols); only
    the names that match are decoded.
    """
    wanted = re.compile(pattern.encode())
    defined: set[str] = set()
    undefined: set[str] = set()
    try:
        with _open_regular(path) as stream:
            elf, headers, file_size = _sections(stream)
            symtab = _first(headers, _SHT_DYNSYM)
            if symtab is None:
                return frozenset(), frozenset()
            strings = _bounded_data(stream, headers, symtab.link, file_size)
            data = _bounded_data(stream, headers, symtab.index, file_size)
            # st_name and st_shndx of Elf64_Sym (24 bytes) or Elf32_Sym (16 bytes)
            entry, layout = (24, elf.order + "I2xH") if elf.elf_class == 64 else (16, elf.order + "I10xH")
            for offset in range(0, len(data) - entry + 1, entry):
                name_at, section_index = struct.unpack_from(layout, data, offset)
                end = strings.find(b"\0", name_at)
                name = strings[name_at:end]
                if wanted.match(name):
                    (undefined if section_index == 0 else defined).add(name.decode("utf-8", "replace"))
    except Exception:  # a damaged file is reported by read_elf; here it simply has no symbols
        return frozenset(), frozenset()
    return frozenset(defined), frozenset(undefined)


_SHT_GNU_VERSYM = 0x6FFFFFFF


@dataclass(frozen=True)
class SymbolTable:
    """The dynamic symbols of one file with the version each is bound to.

    ``needed`` maps a version name (``libcudart.so.13``) to the undefined symbols that
    ask for it; ``defined`` maps each defined name to its versions (None: unversioned).
    """

    needed: dict[str, frozenset[str]]
    defined: dict[str, frozenset[str | None]]
    versioned: bool  # the file has a .gnu.version section

    def lacks(self, names: frozenset[str], version: str) -> list[str]:
        """Which of ``names`` (asked for at ``version``) this file does not define, by glibc's rule:
        an unversioned definition serves any version, a versioned one only its own."""
        missing = []
        for name in sorted(names):
            versions = self.defined.get(name)
            if versions is None or (self.versioned and None not in versions and version not in versions):
                missing.append(name)
        return missing


def _version_names(data_needed: bytes, data_defined: bytes, order: str, text: Callable[[int], str]) -> dict[int, str]:
    """Version index to version name, from .gnu.version_r (needed) and .gnu.version_d (defined).

    Offsets only move forward, and the walk stops after as many steps as 8-byte records fit
    the sections: a zero vna_next repeated 65,535 times per entry would otherwise cost seconds.
    """
    names: dict[int, str] = {}
    budget = (len(data_needed) + len(data_defined)) // 8 + 1
    at = 0
    while at + 16 <= len(data_needed) and budget > 0:
        _ver, count, _file, aux, following = struct.unpack_from(order + "HHIII", data_needed, at)
        here = at + aux
        for _ in range(min(count, budget)):
            _hash, _flags, other, name, step = struct.unpack_from(order + "IHHII", data_needed, here)
            names[other] = text(name)
            here += step
            budget -= 1
        if not following:
            break
        at += following
    at = 0
    while at + 20 <= len(data_defined) and budget > 0:
        _ver, _flags, index, _count, _hash, aux, following = struct.unpack_from(order + "HHHHIII", data_defined, at)
        names[index] = text(struct.unpack_from(order + "I", data_defined, at + aux)[0])
        budget -= 1
        if not following:
            break
        at += following
    return names


def _symbols(data: bytes, versym: bytes, elf_class: int, order: str, names_of_index: dict[int, str],
             text: Callable[[int], str], only_needed: frozenset[str] | None) -> SymbolTable:
    entry, layout = (24, order + "I2xH") if elf_class == 64 else (16, order + "I10xH")
    needed: dict[str, set[str]] = {}
    defined: dict[str, set[str | None]] = {}
    for number, offset in enumerate(range(0, len(data) - entry + 1, entry)):
        name_at, section_index = struct.unpack_from(layout, data, offset)
        if not name_at:
            continue
        index = struct.unpack_from(order + "H", versym, number * 2)[0] & 0x7FFF if versym else 0
        version = names_of_index.get(index) if index >= 2 else None
        if only_needed is not None and (section_index != 0 or version not in only_needed):
            continue
        if section_index == 0:
            if version is not None:
                needed.setdefault(version, set()).add(text(name_at))
        else:
            defined.setdefault(text(name_at), set()).add(version)
    return SymbolTable({k: frozenset(v) for k, v in needed.items()}, {k: frozenset(v) for k, v in defined.items()},
                       bool(versym))


def symbol_table(path: Path, only_needed: frozenset[str] | None = None) -> SymbolTable:
    """Read .dynsym with .gnu.version, .gnu.version_r and .gnu.version_d (unpacked with struct).

    Used only on the slow path (a library that resolves outside its wheel), to predict the
    loader's ``undefined symbol: NAME, version V``.  With ``only_needed`` (version names),
    only the undefined symbols bound to those versions are decoded: libtorch_cpu has
    hundreds of thousands of symbols.  An unreadable file gives an empty table.
    """
    empty = SymbolTable({}, {}, False)
    try:
        with _open_regular(path) as stream:
            elf, headers, file_size = _sections(stream)
            symtab = _first(headers, _SHT_DYNSYM)
            if symtab is None:
                return empty
            strings = _bounded_data(stream, headers, symtab.link, file_size)

            def text(at: int) -> str:
                return strings[at:strings.find(b"\0", at)].decode("utf-8", "replace")

            def data_of(sh_type: int) -> bytes:
                found = _first(headers, sh_type)
                return b"" if found is None else _bounded_data(stream, headers, found.index, file_size)

            names_of_index = _version_names(data_of(_SHT_GNU_VERNEED), data_of(_SHT_GNU_VERDEF), elf.order, text)
            return _symbols(data_of(_SHT_DYNSYM), data_of(_SHT_GNU_VERSYM), elf.elf_class, elf.order, names_of_index,
                            text, only_needed)
    except Exception:  # a damaged file is reported by read_elf; here it simply has no symbols
        return empty


_PT_LOAD, _PT_DYNAMIC, _PT_INTERP = 1, 2, 3
# p_type, p_offset, p_vaddr and p_filesz of Elf32_Phdr and Elf64_Phdr.
_PHDR_FIELDS = {32: "IIIxxxxI", 64: "I4xQQ8xQ"}
# A linked object has about ten program headers; more than this and the table is not read.
_MAX_PROGRAM_HEADERS = 4096


@dataclass(frozen=True)
class _ProgramHeader:
    """The fields of one program header that the readers need (a segment: where its bytes lie and where they map)."""

    type: int
    offset: int
    vaddr: int
    filesz: int


def _program_headers(stream: BinaryIO, elf: ElfHeader) -> list[_ProgramHeader]:
    """The program headers that fit in the bytes the file has; none when e_phentsize or e_phnum is implausible."""
    layout = elf.order + _PHDR_FIELDS[elf.elf_class]
    entry = elf.phentsize
    if entry < struct.calcsize(layout) or elf.phnum > _MAX_PROGRAM_HEADERS:
        return []
    stream.seek(elf.phoff)
    table = stream.read(entry * elf.phnum)
    return [_ProgramHeader(*struct.unpack_from(layout, table, index * entry)) for index in range(len(table) // entry)]


def program_interpreter(path: Path) -> str | None:
    """The PT_INTERP path of an executable (its dynamic loader), from the program headers; None if it has none.

    Read with struct from the ELF header's e_phoff/e_phentsize/e_phnum, for either class and byte order.
    """
    try:
        with _open_regular(path) as stream:
            for header in _program_headers(stream, elf_header(stream)):
                if header.type == _PT_INTERP and 0 < header.filesz <= 4096:
                    stream.seek(header.offset)
                    return _c_string(stream.read(header.filesz)) or None
    except (OSError, struct.error, DamagedElf):
        return None
    return None


def _c_string(data: bytes) -> str:
    """The text before the first NUL of ``data``; invalid UTF-8 replaced."""
    return data.split(b"\0", 1)[0].decode("utf-8", "replace")


_STB_WEAK = 2


def _dynsym_entries(path: Path) -> Iterator[tuple[bytes, int, int]]:
    """(name, binding, section index) of every named entry of ``.dynsym``, unpacked with struct.

    Raises on a damaged file; the callers turn that into "no symbols" (read_elf reports the damage).
    """
    with _open_regular(path) as stream:
        elf, headers, file_size = _sections(stream)
        symtab = _first(headers, _SHT_DYNSYM)
        if symtab is None:
            return
        strings = _bounded_data(stream, headers, symtab.link, file_size)
        data = _bounded_data(stream, headers, symtab.index, file_size)
        # st_name, st_info and st_shndx of Elf64_Sym (24 bytes) or Elf32_Sym (16 bytes)
        entry, layout = (24, elf.order + "IBxH") if elf.elf_class == 64 else (16, elf.order + "I8xBxH")
        find = strings.find
        for name_at, info, section_index in struct.iter_unpack(layout + "x" * (entry - struct.calcsize(layout)), data):
            if name_at:
                yield strings[name_at:find(b"\0", name_at)], info >> 4, section_index


def imported_symbols(path: Path, pattern: str) -> frozenset[str]:
    """The undefined, non-weak names of ``.dynsym`` that match ``pattern``: what loading ``path`` must find.

    Weak references (``_ZTH...`` thread-local initialisers, for one) may stay unresolved without
    an error, so they are left out: ld.so reports only strong ones as ``undefined symbol``.
    """
    wanted = re.compile(pattern.encode())
    try:
        return frozenset(name.decode("utf-8", "replace") for name, binding, section in _dynsym_entries(path)
                         if section == 0 and binding != _STB_WEAK and wanted.match(name))
    except Exception:  # a damaged file is reported by read_elf; here it simply has no symbols
        return frozenset()


def defined_among(path: Path, names: frozenset[str]) -> frozenset[str]:
    """Which of ``names`` ``path`` defines in ``.dynsym`` (any version): one pass, only those names decoded."""
    wanted = {name.encode() for name in names}
    try:
        return frozenset(name.decode() for name, _binding, section in _dynsym_entries(path)
                         if section != 0 and name in wanted)
    except Exception:  # a damaged file is reported by read_elf; here it simply has no symbols
        return frozenset()


def needed_names(path: Path) -> tuple[str, ...]:
    """DT_NEEDED of an ELF file through its program headers alone, with struct; () for anything unreadable.

    A few small reads per file, without the section table: used to sift a whole environment's
    shared objects (mypyc builds hundreds) for the few that link torch.
    """
    try:
        with _open_regular(path) as stream:
            elf = elf_header(stream)
            segments = _program_headers(stream, elf)
            dynamic = next((segment for segment in segments if segment.type == _PT_DYNAMIC), None)
            if dynamic is None:
                return ()
            entries = _dynamic_entries(stream, elf, dynamic)
            strtab = next((value for tag, value in entries if tag == _DT_STRTAB), None)
            base = None if strtab is None else _file_offset(segments, strtab)
            if base is None:
                return ()
            offsets = [value for tag, value in entries if tag == _DT_NEEDED]
            if len(offsets) > MAX_NEEDED:  # read_elf says so; one small read per name would be a million reads
                return ()
            return tuple(_string_at(stream, base + value) for value in offsets)
    except (OSError, struct.error, DamagedElf):
        return ()


def _dynamic_entries(stream: BinaryIO, elf: ElfHeader, dynamic: _ProgramHeader) -> list[tuple[int, int]]:
    """Every whole (d_tag, d_val) pair of the PT_DYNAMIC segment, DT_NULL and what follows it included."""
    pair = elf.order + ("qQ" if elf.elf_class == 64 else "iI")
    stream.seek(dynamic.offset)
    data = stream.read(dynamic.filesz - dynamic.filesz % struct.calcsize(pair))
    return [(tag, value) for tag, value in struct.iter_unpack(pair, data)]


def _file_offset(segments: list[_ProgramHeader], address: int) -> int | None:
    """Where the virtual ``address`` lies in the file, through the first PT_LOAD segment whose file bytes hold it."""
    return next((segment.offset + address - segment.vaddr for segment in segments
                 if segment.type == _PT_LOAD and segment.vaddr <= address < segment.vaddr + segment.filesz), None)


def _string_at(stream: BinaryIO, offset: int) -> str:
    """The NUL-terminated name at ``offset`` (a DT_NEEDED name; at most 256 bytes are read)."""
    stream.seek(offset)
    return _c_string(stream.read(256))
