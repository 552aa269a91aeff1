"""The ELF readers check every size a file claims against the file's own size before reading or allocating."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest

from pytest_cudadeps.engine.elf import (
    MAX_NEEDED,
    MAX_SECTIONS,
    ElfInfo,
    ElfProblem,
    dynamic_symbols,
    needed_names,
    read_elf,
    symbol_table,
)
from tests.support.bounds import counted_io
from tests.support.build import build_so

SOURCE = "#include <math.h>\ndouble f(double x) { return cos(x); }\n"


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, gcc: str) -> Path:
    folder = tmp_path_factory.mktemp("elf")
    return build_so(gcc, folder / "libgood.so", SOURCE, "-lm", "-Wl,-soname,libgood.so.1")


def copy(library: Path, tmp_path: Path) -> Path:
    target = tmp_path / "libtorch_cuda.so"
    shutil.copy(library, target)
    return target


def patch(path: Path, offset: int, fmt: str, *values: int) -> None:
    with open(path, "r+b") as stream:
        stream.seek(offset)
        stream.write(struct.pack("<" + fmt, *values))


def ehdr(path: Path) -> dict[str, int]:
    names = ("phoff", "shoff", "flags", "ehsize", "phentsize", "phnum", "shentsize", "shnum", "shstrndx")
    with open(path, "rb") as stream:
        stream.seek(0x20)
        return dict(zip(names, struct.unpack("<QQIHHHHHH", stream.read(32))))


def section_offset(path: Path, sh_type: int) -> int:
    """File offset of the first section header of ``sh_type``."""
    head = ehdr(path)
    with open(path, "rb") as stream:
        stream.seek(head["shoff"])
        table = stream.read(head["shnum"] * 64)
    for index in range(head["shnum"]):
        if struct.unpack_from("<I", table, index * 64 + 4)[0] == sh_type:
            return head["shoff"] + index * 64
    raise AssertionError(f"no section of type {sh_type:#x}")


def problem_of(path: Path, most_read: int = 1 << 20) -> str:
    """The reader's problem with a damaged file, which it must name having read at most ``most_read`` bytes."""
    with counted_io() as io:
        found = read_elf(path)
    assert io.bytes <= most_read, f"read {io.bytes} bytes of {path}"
    assert isinstance(found, ElfProblem), found
    return found.problem


def test_the_intact_library_is_read(library: Path) -> None:
    found = read_elf(library)
    assert isinstance(found, ElfInfo)
    assert found.soname == "libgood.so.1"
    assert "libm.so.6" in found.needed


def test_65535_section_headers_past_the_end_of_a_sparse_file(library: Path, tmp_path: Path) -> None:
    lib = copy(library, tmp_path)
    patch(lib, 0x3C, "H", 0xFFFF)  # e_shnum
    with open(lib, "r+b") as stream:
        stream.truncate(1 << 20)
    shoff = ehdr(lib)["shoff"]
    assert problem_of(lib) == (f"damaged ELF file: 65535 section headers of 64 bytes at offset {shoff} lie past the "
                               f"end of the 1 MB file")


def test_a_huge_section_header_size_is_refused_before_any_read(library: Path, tmp_path: Path) -> None:
    """65,535 headers of 65,535 bytes on a sparse 5 GB file: a 4.2 GB read and 18 s before, then a pass."""
    lib = copy(library, tmp_path)
    patch(lib, 0x3A, "HH", 0xFFFF, 0xFFFF)  # e_shentsize, e_shnum
    with open(lib, "r+b") as stream:
        stream.truncate(5 << 30)
    assert problem_of(lib, 4096) == "damaged ELF file: section headers of 65535 bytes, not the 64 of ELF class 64"
    assert dynamic_symbols(lib, "cos") == (frozenset(), frozenset())


def test_an_extended_section_count_is_capped(library: Path, tmp_path: Path) -> None:
    lib = copy(library, tmp_path)
    patch(lib, 0x3C, "H", 0)  # e_shnum 0: the count is section 0's sh_size
    patch(lib, ehdr(lib)["shoff"] + 32, "Q", 1 << 40)
    assert problem_of(lib) == f"damaged ELF file: {1 << 40} section headers; at most {MAX_SECTIONS} are read"


def test_a_wrong_program_header_size_is_the_loaders_refusal(library: Path, tmp_path: Path) -> None:
    lib = copy(library, tmp_path)
    patch(lib, 0x36, "H", 57)  # e_phentsize
    assert problem_of(lib) == "damaged ELF file: ELF file's phentsize not the expected size"


def test_program_headers_past_the_end(library: Path, tmp_path: Path) -> None:
    lib = copy(library, tmp_path)
    patch(lib, 0x38, "H", 0xFFFF)  # e_phnum
    size = lib.stat().st_size
    assert problem_of(lib).startswith(f"damaged ELF file: 65535 program headers of 56 bytes at offset 64 lie past "
                                      f"the end of the {size / 1024:.1f}"[:-4])


def test_a_dynamic_section_larger_than_the_file(library: Path, tmp_path: Path) -> None:
    lib = copy(library, tmp_path)
    header = section_offset(lib, 6)  # SHT_DYNAMIC
    patch(lib, header + 32, "Q", 1 << 40)  # sh_size
    with open(lib, "rb") as stream:
        stream.seek(header + 24)
        offset = struct.unpack("<Q", stream.read(8))[0]
    assert problem_of(lib).startswith(f"damaged ELF file: the dynamic section ({1 << 40} bytes at offset {offset}) "
                                      f"lies past the end of the ")


def test_a_dynamic_string_table_larger_than_the_file(library: Path, tmp_path: Path) -> None:
    lib = copy(library, tmp_path)
    header = section_offset(lib, 3)  # SHT_STRTAB: the first one is .dynstr, the dynamic section's link
    patch(lib, header + 32, "Q", 1 << 40)
    assert "damaged ELF file: the string table of the " in problem_of(lib)  # .dynstr serves several sections
    assert symbol_table(lib).defined == {}  # the symbol reader refuses it too, quietly


def test_a_version_section_claiming_billions_of_entries(library: Path, tmp_path: Path) -> None:
    lib = copy(library, tmp_path)
    header = section_offset(lib, 0x6FFFFFFE)  # SHT_GNU_verneed
    patch(lib, header + 44, "I", 0xFFFFFFFF)  # sh_info: the entry count
    assert "the version needs section claims 4294967295 entries in" in problem_of(lib)


def with_needed_entries(path: Path, count: int) -> None:
    """Move the dynamic section (and PT_DYNAMIC) to the end of the file, ``count`` DT_NEEDED entries naming the
    file's first needed library put in front of its own entries: what ld would write for ``count`` -l options."""
    from tests.support.elfpatch import SH_OFFSET, SH_SIZE, of_type, patch_section, section_bytes_at

    offset, size = section_bytes_at(path, of_type(6))  # SHT_DYNAMIC
    data = path.read_bytes()
    entries = list(struct.iter_unpack("<qQ", data[offset:offset + size]))
    first_needed = next(value for tag, value in entries if tag == 1)
    grown = struct.pack("<qQ", 1, first_needed) * count + data[offset:offset + size]
    end = len(data) + (-len(data)) % 8
    with open(path, "r+b") as stream:
        stream.seek(end)
        stream.write(grown)
    patch_section(path, of_type(6), SH_OFFSET, end)
    patch_section(path, of_type(6), SH_SIZE, len(grown))
    header = ehdr(path)
    for index in range(header["phnum"]):
        at = header["phoff"] + index * header["phentsize"]
        if struct.unpack_from("<I", data, at)[0] == 2:  # PT_DYNAMIC: p_offset at 8, p_filesz at 32
            patch(path, at + 8, "Q", end)
            patch(path, at + 32, "Q", len(grown))


@pytest.mark.parametrize("count", [MAX_NEEDED - 1, 1_000_000])
def test_dt_needed_entries_are_bounded(library: Path, tmp_path: Path, count: int) -> None:
    """A million DT_NEEDED entries took 46 s to over 300 s; past MAX_NEEDED the file is damaged, said at once."""
    target = copy(library, tmp_path)
    with_needed_entries(target, count)
    with counted_io() as io:
        found = read_elf(target)
        sifted = needed_names(target)
    if count < MAX_NEEDED:
        assert isinstance(found, ElfInfo), found
        assert len(found.needed) == count + 1
        assert found.needed[0] == "libm.so.6"
        assert len(sifted) == count + 1
    else:
        assert isinstance(found, ElfProblem)
        assert found.problem.endswith(f"more than {MAX_NEEDED} DT_NEEDED entries; at most {MAX_NEEDED} are read")
        assert sifted == ()
        assert io.calls < 100  # one read per name was a million
