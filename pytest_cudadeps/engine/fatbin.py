"""Which GPU architectures a library carries, read from its ``.nv_fatbin`` section without running it.

The section holds fat binary containers one after another.  The layout is not a
published ABI; it is what cuobjdump reads, and what public reverse-engineered
parsers agree on (all little-endian):

container header, 16 bytes
    ``u32 magic`` (0xBA55ED50), ``u16 version``, ``u16 header size`` (16),
    ``u64 size`` of the entries that follow.
entry header, ``header size`` bytes (64, more for newer architectures)
    ``u16 kind`` (1 PTX, 2 ELF cubin) at 0, ``u32 header size`` at 4,
    ``u64 payload size`` at 8, ``u32 sm`` (75 for sm_75) at 28; the payload follows
    the header, and the next entry follows the payload.

Only headers are read (a seek and 64 bytes each), never the payloads: the section is
about 317 MiB in torch's ``libtorch_cuda.so``.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from pytest_cudadeps.core.safe_io import open_regular

if TYPE_CHECKING:
    from pytest_cudadeps.engine.elf import SectionHeader
MAGIC = 0xBA55ED50
SECTION = ".nv_fatbin"
KIND_PTX, KIND_CUBIN = 1, 2
_CONTAINER = struct.Struct("<IHHQ")
_ENTRY = struct.Struct("<HHIQ12xI")  # kind, ?, header size, payload size, (skipped), sm at offset 28
_SHT_NOBITS = 8


class FatbinError(ValueError):
    """The file is not a readable ELF file, or its section lacks the layout described in this module's docstring."""


@dataclass(frozen=True)
class Architectures:
    """The compiled code one library carries, as ``sm`` numbers (75 for sm_75).

    ``variants`` are the distinct sets of (kind, sm) found in its containers: each
    container holds one compilation unit's kernels, so a GPU is served only when every
    container has code for it (torch builds a few units for extra architectures).
    """

    path: Path
    variants: frozenset[frozenset[tuple[int, int]]]
    containers: int = 0
    entries: int = 0

    def _all(self, kind: int) -> set[int]:
        return {sm for variant in self.variants for k, sm in variant if k == kind}

    def _common(self, kind: int) -> set[int]:
        sets = [{sm for k, sm in variant if k == kind} for variant in self.variants]
        return set.intersection(*sets) if sets else set()

    @property
    def cubin(self) -> frozenset[int]:
        return frozenset(self._all(KIND_CUBIN))

    @property
    def ptx(self) -> frozenset[int]:
        return frozenset(self._all(KIND_PTX))

    def describe(self) -> str:
        common_cubin, common_ptx = self._common(KIND_CUBIN), self._common(KIND_PTX)
        text = (f"cubin {', '.join(sm_name(sm) for sm in sorted(common_cubin)) or 'none'}; "
                f"PTX {', '.join(f'compute_{sm}' for sm in sorted(common_ptx)) or 'none'}")
        extra = [sm_name(sm) for sm in sorted(self.cubin - common_cubin)]
        extra += [f"compute_{sm}" for sm in sorted(self.ptx - common_ptx)]
        return text + (f" (in some containers only: {', '.join(extra)})" if extra else "")

    def runs_on(self, capability: tuple[int, int]) -> str | None:
        """How this library's code runs on a GPU of ``capability``, or None when some container cannot.

        A cubin runs on the same major and an equal or higher minor; PTX of an equal or
        lower version can be JIT-compiled by the driver.
        """
        hows = [_runs_on(variant, capability) for variant in self.variants]
        if not hows or None in hows:
            return None
        return next((how for how in hows if how and "PTX" in how), hows[0])  # the weakest container decides


def _runs_on(variant: frozenset[tuple[int, int]], capability: tuple[int, int]) -> str | None:
    major, minor = capability
    cubins = [sm for kind, sm in variant if kind == KIND_CUBIN and sm // 10 == major and sm % 10 <= minor]
    if cubins:
        return f"{sm_name(max(cubins))} cubin"
    ptx = [sm for kind, sm in variant if kind == KIND_PTX and (sm // 10, sm % 10) <= capability]
    if ptx:
        return f"compute_{max(ptx)} PTX (JIT-compiled at first use)"
    return None


def sm_name(sm: int) -> str:
    return f"sm_{sm}"


def section_extent(path: Path, name: str = SECTION) -> tuple[int, int] | None:
    """(file offset, size) of the section, from the ELF section headers; None when absent.

    The headers and their names are read with the bounded readers of :mod:`.elf`: a header
    table or a section past the end of the file is refused before anything is read or allocated.
    """
    from pytest_cudadeps.engine.elf import DamagedElf, check_extent, elf_header, section_headers

    with os.fdopen(open_regular(path), "rb") as stream:
        try:  # a truncated or non-ELF file in the root (its elf[...] item says so too)
            elf = elf_header(stream)
            file_size = os.fstat(stream.fileno()).st_size
            headers = section_headers(stream, elf, file_size)
            wanted = name.encode()
            names = _section_names(stream, headers, elf.shstrndx, file_size)
        except DamagedElf as exc:
            raise FatbinError(f"{path}: not a readable ELF file ({exc})") from exc
        for header in headers:
            if names.get(header.name) == wanted and header.type != _SHT_NOBITS:
                try:
                    check_extent(header, file_size, name)
                except DamagedElf as exc:
                    raise FatbinError(f"{path}: {exc}") from exc
                return header.offset, header.size
        return None


def _section_names(stream: BinaryIO, headers: Sequence[SectionHeader], index: int,
                   file_size: int) -> dict[int, bytes]:
    """Section name by its offset in the section-name string table (read once, bounded by the file)."""
    from pytest_cudadeps.engine.elf import check_extent

    if index >= len(headers):
        return {}
    table = headers[index]
    check_extent(table, file_size, "section-name string table")
    stream.seek(table.offset)
    data = stream.read(table.size)
    return {h.name: data[h.name:data.find(b"\0", h.name)] for h in headers if h.name < len(data)}


def read_architectures(path: Path) -> Architectures:
    """The architectures in ``path``'s ``.nv_fatbin`` (empty sets when it has none)."""
    extent = section_extent(path)
    if extent is None:
        return Architectures(path, frozenset())
    with os.fdopen(open_regular(path), "rb") as stream:
        return _walk(stream, path, *extent)


_PADDING_BLOCK = 1 << 20


def _past_padding(stream: BinaryIO, offset: int, end: int) -> int:
    """The first 8-aligned offset from ``offset`` on whose u32 is not zero (``end`` if none).

    Padding is read a block at a time: eight bytes at a time, a section of zeros (a damaged or
    zero-filled file) cost one seek and read per word, 1.8 s for 64 MiB and 9 s at torch's 317 MiB.
    """
    offset += -offset % 8
    while offset < end:
        stream.seek(offset)
        block = stream.read(min(_PADDING_BLOCK, end - offset))
        if not block:
            return end
        at = 0
        while at < len(block):
            rest = block[at:]
            at += len(rest) - len(rest.lstrip(b"\0"))  # the first byte that is not zero
            if at < len(block) and at % 8 < 4:  # it lies in a word's u32: a container may start there
                return offset + at - at % 8
            at += -at % 8  # in the upper half of a word whose u32 is zero: padding still
        offset += len(block)
    return end


def _walk(stream: BinaryIO, path: Path, start: int, size: int) -> Architectures:
    variants: set[frozenset[tuple[int, int]]] = set()
    containers = entries = 0
    offset, end = start, start + size
    while offset + _CONTAINER.size <= end:
        stream.seek(offset)
        magic, _, header_size, body = _CONTAINER.unpack(stream.read(_CONTAINER.size))
        if magic != MAGIC:
            if magic == 0:  # padding between containers: on to the next 8-aligned word that is not zero
                offset = _past_padding(stream, offset + 1, end)
                continue
            raise FatbinError(f"{path}: no fatbin magic at section offset {offset - start:#x} (found {magic:#010x})")
        if header_size < _CONTAINER.size:  # 0 would never advance: the walk would loop forever
            raise FatbinError(f"{path}: container at section offset {offset - start:#x} has a header size of {header_size}")
        containers += 1
        variant: set[tuple[int, int]] = set()
        entry, container_end = offset + header_size, offset + header_size + body
        if container_end > end:
            raise FatbinError(f"{path}: container at section offset {offset - start:#x} runs past the section end")
        while entry + _ENTRY.size <= container_end:
            stream.seek(entry)
            kind, _, entry_header, payload, sm = _ENTRY.unpack(stream.read(_ENTRY.size))
            if entry_header < _ENTRY.size:
                raise FatbinError(f"{path}: entry at {entry:#x} has a header size of {entry_header}")
            entries += 1
            if kind in (KIND_PTX, KIND_CUBIN):
                variant.add((kind, sm))
            entry += entry_header + payload
        if variant:
            variants.add(frozenset(variant))
        offset = container_end
    return Architectures(path, frozenset(variants), containers, entries)
