"""Overwrite a field of an ELF64 section header in place, to make damaged files for the tests."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

SH_TYPE, SH_OFFSET, SH_SIZE = 4, 24, 32  # byte offsets of fields in an Elf64_Shdr (64 bytes)


def _header_at(path: Path, which: Callable[[bytes], bool]) -> tuple[int, bytes]:
    """(file offset, bytes) of the first section header ``which`` picks."""
    with open(path, "rb") as stream:
        stream.seek(0x28)
        shoff = struct.unpack("<Q", stream.read(8))[0]
        stream.seek(0x3C)
        shnum = struct.unpack("<H", stream.read(2))[0]
        stream.seek(shoff)
        table = stream.read(shnum * 64)
    index = next(i for i in range(shnum) if which(table[i * 64:(i + 1) * 64]))
    return shoff + index * 64, table[index * 64:(index + 1) * 64]


def patch_section(path: Path, which: Callable[[bytes], bool], field: int, value: int) -> None:
    """Set the 8-byte ``field`` (SH_SIZE, SH_OFFSET) of the first section header ``which`` picks."""
    at, _ = _header_at(path, which)
    with open(path, "r+b") as stream:
        stream.seek(at + field)
        stream.write(struct.pack("<Q", value))


def section_bytes_at(path: Path, which: Callable[[bytes], bool]) -> tuple[int, int]:
    """(sh_offset, sh_size) of the first section header ``which`` picks."""
    _, header = _header_at(path, which)
    offset, size = struct.unpack_from("<QQ", header, SH_OFFSET)
    return offset, size


def of_type(sh_type: int) -> Callable[[bytes], bool]:
    return lambda header: struct.unpack_from("<I", header, SH_TYPE)[0] == sh_type


def at_offset(offset: int) -> Callable[[bytes], bool]:
    return lambda header: struct.unpack_from("<Q", header, SH_OFFSET)[0] == offset
