"""Hand-made ``.nv_fatbin`` contents (containers of PTX and cubin entries) in gcc-built ELF files."""

from __future__ import annotations

import struct
from pathlib import Path

from pytest_cudadeps.engine.fatbin import MAGIC
from tests.support.build import build_so

PTX = 1


CUBIN = 2


def entry(kind: int, sm: int, payload: bytes, header_size: int = 64) -> bytes:
    header = struct.pack("<HHIQ", kind, 0x0101, header_size, len(payload) + (-len(payload)) % 8)
    header += bytes(28 - len(header)) + struct.pack("<I", sm)
    header += bytes(header_size - len(header))
    return header + payload + bytes((-len(payload)) % 8)


def container(*entries: bytes) -> bytes:
    body = b"".join(entries)
    return struct.pack("<IHHQ", MAGIC, 1, 16, len(body)) + body


def elf_with_fatbin(gcc: str, target: Path, data: bytes) -> Path:
    array = ", ".join(str(b) for b in data)
    source = (f'__attribute__((section(".nv_fatbin"), used, aligned(8))) '
              f"const unsigned char fatbin[{len(data)}] = {{{array}}};\nint f(void) {{ return 0; }}\n")
    return build_so(gcc, target, source)


def two_units(gcc: str, target: Path) -> Path:
    """A library of two compilation units: the first has sm_80 and sm_90 cubins (one with a 112-byte header) and
    compute_90 PTX; the second only an sm_80 cubin and compute_90 PTX."""
    data = container(entry(CUBIN, 80, b"\x01" * 13), entry(CUBIN, 90, b"\x02" * 8, header_size=112),
                     entry(PTX, 90, b".version 8.0\n"))
    data += container(entry(CUBIN, 80, b"\x03" * 5), entry(PTX, 90, b".target sm_90\n"))
    return elf_with_fatbin(gcc, target, data)
