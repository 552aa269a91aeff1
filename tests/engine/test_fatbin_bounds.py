"""The fatbin walk ends on any input, and reads only sections that lie inside the file."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from pytest_cudadeps.core.safe_io import UnsafeFile
from pytest_cudadeps.engine.fatbin import MAGIC, FatbinError, read_architectures, section_extent
from tests.support.bounds import counted_io, watchdog
from tests.support.elfpatch import SH_OFFSET, SH_SIZE, at_offset, patch_section
from tests.support.fatbin import CUBIN, container, elf_with_fatbin, entry


def test_a_container_with_a_zero_header_size_ends_the_walk(gcc: str, tmp_path: Path) -> None:
    stuck = struct.pack("<IHHQ", MAGIC, 1, 0, 0)  # header size 0, body 0: the offset never moved
    lib = elf_with_fatbin(gcc, tmp_path / "libstuck.so", container(entry(CUBIN, 80, b"\x01" * 8)) + stuck)
    with watchdog(), pytest.raises(FatbinError, match="has a header size of 0"):
        read_architectures(lib)


def test_a_huge_section_header_table_is_refused_unread(gcc: str, tmp_path: Path) -> None:
    lib = elf_with_fatbin(gcc, tmp_path / "libhuge.so", container(entry(CUBIN, 80, b"\x01" * 8)))
    with open(lib, "r+b") as stream:
        stream.seek(0x3A)
        stream.write(struct.pack("<HH", 0xFFFF, 0xFFFF))  # e_shentsize, e_shnum
        stream.truncate(5 << 30)  # sparse
    with counted_io() as io, pytest.raises(FatbinError, match="section headers of 65535 bytes, not the 64"):
        section_extent(lib)
    assert io.bytes < 1 << 20  # refused from the header: nothing of the 5 GiB sparse file is read


def test_a_fatbin_section_past_the_end_of_the_file_is_refused(gcc: str, tmp_path: Path) -> None:
    lib = elf_with_fatbin(gcc, tmp_path / "libpast.so", container(entry(CUBIN, 80, b"\x01" * 8)))
    offset, _ = section_extent(lib) or (0, 0)
    patch_section(lib, at_offset(offset), SH_SIZE, 1 << 40)
    with pytest.raises(FatbinError, match=r"the .nv_fatbin section \(1099511627776 bytes at offset"):
        read_architectures(lib)


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "libtorch_cuda.so")
    with watchdog(), pytest.raises(UnsafeFile, match="a FIFO"):
        read_architectures(tmp_path / "libtorch_cuda.so")


def test_a_fatbin_section_of_zeros_is_skipped_a_block_at_a_time(gcc: str, tmp_path: Path) -> None:
    """256 MiB of zeros after one container: eight bytes at a time that was 32 million reads (about 7 s)."""
    lib = elf_with_fatbin(gcc, tmp_path / "libzeros.so", container(entry(CUBIN, 80, b"\x01" * 8)))
    offset, size = section_extent(lib) or (0, 0)
    data = lib.read_bytes()[offset:offset + size] + b"\0\0\0\0" + b"\xff" * 4  # a zero u32, then a nonzero half
    new_offset = (os.path.getsize(lib) + 4095) & ~4095
    with open(lib, "r+b") as stream:
        stream.seek(new_offset)
        stream.write(data)
        stream.truncate(new_offset + (256 << 20))  # sparse: zeros up to the section's end
    patch_section(lib, at_offset(offset), SH_SIZE, 256 << 20)
    patch_section(lib, at_offset(offset), SH_OFFSET, new_offset)
    with counted_io() as io:
        found = read_architectures(lib)
    assert (found.containers, found.entries, set(found.cubin)) == (1, 1, {80})
    assert io.calls < 2048, f"{io.calls} reads"  # 256 blocks of 1 MiB, not 32,768 buffered reads of 8 KiB


def test_a_section_name_table_at_an_offset_no_file_can_have_is_refused(gcc: str, tmp_path: Path) -> None:
    """pyelftools seeks where the header says; past what a file offset holds, Python 3.9 raises ValueError
    (found by the ELF fuzz): a FatbinError, never a traceback."""
    lib = elf_with_fatbin(gcc, tmp_path / "libfar.so", container(entry(CUBIN, 80, b"\x01" * 8)))
    data = bytearray(lib.read_bytes())
    shoff, shstrndx = struct.unpack_from("<Q", data, 0x28)[0], struct.unpack_from("<H", data, 0x3E)[0]
    header = shoff + shstrndx * 64
    flags = struct.unpack_from("<Q", data, header + 8)[0]
    struct.pack_into("<QQQ", data, header + 8, flags | 0x800, 0, (1 << 64) - 16)  # SHF_COMPRESSED, sh_addr, sh_offset
    lib.unlink()
    lib.write_bytes(bytes(data))
    with watchdog(), pytest.raises(FatbinError, match="not a readable ELF file"):
        read_architectures(lib)
