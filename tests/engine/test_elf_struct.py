"""read_elf's struct reader against pyelftools (the reader it replaced), and the failures only it reports.

The oracle :func:`reference` is the pyelftools walk that read_elf was before, kept small: for
gcc-built objects of both classes, hand-written ones of other machines and byte orders, and
(integration tier) every library of the real torch venv, the two must give equal ElfInfo.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import pytest_cudadeps.engine.elf as elf_module
from pytest_cudadeps.engine.elf import ElfInfo, read_elf, read_header
from tests.support import venvs
from tests.support.bounds import watchdog
from tests.support.build import build_so
from tests.support.elf import info, problem
from tests.support.elfpatch import of_type, section_bytes_at

REPO = Path(__file__).resolve().parents[2]
FOO_SOURCE = "int foo(void) { return 1; }\nint foo_2(void) { return 2; }\n"
FOO_VERSIONS = "libfoo.so.1 { global: foo; local: *; };\nLIBFOO_2 { global: foo_2; } libfoo.so.1;\n"
# getpid: a GLIBC_ version needed from libc where libc is linked (left undefined with -nostdlib)
USER_SOURCE = "int foo(void); int foo_2(void); int getpid(void);\nint use(void) { return foo() + foo_2() + getpid(); }\n"
SHT_STRTAB, SHT_DYNAMIC, SHT_VERNEED, SHT_VERDEF = 3, 6, 0x6FFFFFFE, 0x6FFFFFFD
DT_NEEDED, DT_SONAME, DT_RPATH, DT_RUNPATH = 1, 14, 15, 29


def reference(path: Path) -> ElfInfo:
    """ElfInfo as the pyelftools walk of before read it (its checks of sizes left out)."""
    from elftools.elf.dynamic import DynamicSection
    from elftools.elf.elffile import ELFFile
    from elftools.elf.gnuversions import GNUVerDefSection, GNUVerNeedSection

    needed: list[str] = []
    last: dict[str, str] = {}  # DT_SONAME, DT_RPATH, DT_RUNPATH: the last one counts
    verneed: list[tuple[str, tuple[str, ...]]] = []
    verdef: list[str] = []
    with open(path, "rb") as stream:
        elf = ELFFile(stream)
        for section in elf.iter_sections():
            if isinstance(section, DynamicSection):
                for tag in section.iter_tags():
                    kind = tag.entry.d_tag
                    if kind not in ("DT_NEEDED", "DT_SONAME", "DT_RPATH", "DT_RUNPATH"):
                        continue
                    text = getattr(tag, kind[3:].lower())  # pyelftools sets the string as .needed, .soname...
                    if kind == "DT_NEEDED":
                        needed.append(text)
                    else:
                        last[kind] = text
            elif isinstance(section, GNUVerNeedSection):
                verneed += [(str(entry.name), tuple(aux.name for aux in auxes)) for entry, auxes in section.iter_versions()]
            elif isinstance(section, GNUVerDefSection):
                verdef += [next(auxes).name for _entry, auxes in section.iter_versions()]

        def split(kind: str) -> tuple[str, ...]:
            return tuple(last[kind].split(":")) if kind in last else ()

        return ElfInfo(path, elf.elfclass, str(elf["e_machine"]), last.get("DT_SONAME"), tuple(needed),
                       split("DT_RPATH"), split("DT_RUNPATH"), tuple(verneed), tuple(verdef))




# --- gcc-built objects of both classes -----------------------------------------------------------


def build_family(gcc: str, folder: Path, *flags: str) -> list[Path]:
    """A versioned library, its users with DT_RPATH and DT_RUNPATH (needing its versions), and a plain one."""
    folder.mkdir()
    script = folder / "foo.map"
    script.write_text(FOO_VERSIONS)
    return [
        build_so(gcc, folder / "libfoo.so.1", FOO_SOURCE, *flags, "-Wl,-soname,libfoo.so.1",
                 f"-Wl,--version-script,{script}"),
        build_so(gcc, folder / "librpath_user.so", USER_SOURCE, *flags, f"-L{folder}", "-l:libfoo.so.1",
                 "-Wl,--disable-new-dtags,-rpath,/opt/a::$ORIGIN/../lib:"),
        build_so(gcc, folder / "librunpath_user.so", USER_SOURCE, *flags, f"-L{folder}", "-l:libfoo.so.1",
                 "-Wl,--enable-new-dtags,-rpath,${ORIGIN}:/opt/b"),
        build_so(gcc, folder / "libplain.so", "int plain(void) { return 0; }\n", *flags),
    ]


@pytest.fixture(scope="module")
def family64(gcc: str, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return build_family(gcc, tmp_path_factory.mktemp("elf") / "64")


@pytest.fixture(scope="module")
def family32(gcc: str, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    try:
        return build_family(gcc, tmp_path_factory.mktemp("elf") / "32", "-m32", "-nostdlib")
    except subprocess.CalledProcessError:
        pytest.skip("gcc -m32 -nostdlib cannot build i386 shared objects here")


def test_gcc_built_64_bit_objects_read_as_pyelftools_read_them(family64: list[Path]) -> None:
    for path in family64:
        assert info(path) == reference(path)
    foo, rpath_user, runpath_user, _plain = map(info, family64)
    assert (foo.elf_class, foo.machine) == (64, "EM_X86_64")
    assert foo.verdef == ("libfoo.so.1", "libfoo.so.1", "LIBFOO_2")
    assert rpath_user.rpath == ("/opt/a", "", "$ORIGIN/../lib", "")
    assert runpath_user.runpath == ("${ORIGIN}", "/opt/b")
    assert set(runpath_user.versions_needed_from("libfoo.so.1")) == {"libfoo.so.1", "LIBFOO_2"}
    assert {"libfoo.so.1", "libc.so.6"} <= {name for name, _versions in runpath_user.verneed}


def test_gcc_built_32_bit_objects_read_as_pyelftools_read_them(family32: list[Path]) -> None:
    for path in family32:
        assert info(path) == reference(path)
    foo, rpath_user, runpath_user, plain = map(info, family32)
    assert (foo.elf_class, foo.machine) == (32, "EM_386")
    assert foo.verdef == ("libfoo.so.1", "libfoo.so.1", "LIBFOO_2")
    assert rpath_user.needed == ("libfoo.so.1",)
    assert rpath_user.rpath == ("/opt/a", "", "$ORIGIN/../lib", "")
    assert runpath_user.runpath == ("${ORIGIN}", "/opt/b")
    assert runpath_user.verneed == (("libfoo.so.1", ("LIBFOO_2", "libfoo.so.1")),)
    assert (plain.needed, plain.verneed, plain.verdef) == ((), (), ())


# --- hand-written objects: other machines and byte orders ----------------------------------------


class Strings:
    """A string table under construction: ``add`` returns each string's offset."""

    def __init__(self, padding: int = 0) -> None:
        self.data = bytearray(b"\0")
        if padding:  # a long string no entry names, before the ones they do (where GNU ld puts them)
            self.add(b"x" * padding)

    def add(self, text: str | bytes) -> int:
        at = len(self.data)
        self.data += (text.encode() if isinstance(text, str) else text) + b"\0"
        return at


def verneed_bytes(order: str, entries: list[tuple[int, list[int]]]) -> bytes:
    """Elf_Verneed entries, each followed by its Elf_Vernaux: (file name, [version names]) as string offsets."""
    out = b""
    for number, (file_at, names) in enumerate(entries):
        last = number == len(entries) - 1
        out += struct.pack(order + "HHIII", 1, len(names), file_at, 16, 0 if last else 16 + 16 * len(names))
        for index, name_at in enumerate(names):
            out += struct.pack(order + "IHHII", 0x1234, 0, index + 2, name_at, 0 if index == len(names) - 1 else 16)
    return out


def verdef_bytes(order: str, names: list[int]) -> bytes:
    """One Elf_Verdef per name with its one Elf_Verdaux (the first entry is the file's own, index 1)."""
    out = b""
    for number, name_at in enumerate(names):
        last = number == len(names) - 1
        out += struct.pack(order + "HHHHIII", 1, int(number == 0), number + 1, 1, 0x5678, 20, 0 if last else 28)
        out += struct.pack(order + "II", name_at, 0)
    return out


@dataclass
class Synthetic:
    """The sections of a hand-written shared object (no program headers: read_elf does not need them)."""

    elf_class: int = 64
    little: bool = True
    machine: int = 62
    e_type: int = 3
    strings: Strings = field(default_factory=Strings)
    dynamic: list[tuple[int, int]] = field(default_factory=list)
    verneed: tuple[bytes, int] = (b"", 0)  # (section bytes, sh_info)
    verdef: tuple[bytes, int] = (b"", 0)

    @property
    def order(self) -> str:
        return "<" if self.little else ">"

    def write(self, path: Path) -> Path:
        order, wide = self.order, self.elf_class == 64
        pair = order + ("qQ" if wide else "iI")
        dynamic = b"".join(struct.pack(pair, tag, value) for tag, value in [*self.dynamic, (0, 0)])
        # (name, sh_type, bytes, sh_link, sh_info); section 1 is .dynstr
        sections = [(".dynstr", SHT_STRTAB, bytes(self.strings.data), 0, 0), (".dynamic", SHT_DYNAMIC, dynamic, 1, 0),
                    (".gnu.version_r", SHT_VERNEED, self.verneed[0], 1, self.verneed[1]),
                    (".gnu.version_d", SHT_VERDEF, self.verdef[0], 1, self.verdef[1]), (".shstrtab", SHT_STRTAB, b"", 0, 0)]
        names = b"\0" + b"".join(name.encode() + b"\0" for name, *_ in sections)
        sections[-1] = (".shstrtab", SHT_STRTAB, names, 0, 0)
        body, placed = b"", []
        header_size = 64 if wide else 52
        for name, sh_type, data, link, sh_info in sections:
            body += b"\0" * (-(header_size + len(body)) % 8)
            placed.append((names.index(name.encode() + b"\0"), sh_type, header_size + len(body), len(data), link, sh_info))
            body += data
        body += b"\0" * (-(header_size + len(body)) % 8)
        shoff = header_size + len(body)
        shdr = order + ("IIQQQQIIQQ" if wide else "10I")
        table = struct.pack(shdr, *[0] * 10) + b"".join(
            struct.pack(shdr, name, sh_type, 0, 0, offset, size, link, info, 1, 0)
            for name, sh_type, offset, size, link, info in placed)
        ident = b"\x7fELF" + bytes([2 if wide else 1, 1 if self.little else 2, 1]) + bytes(9)
        ehdr = struct.pack(order + ("16sHHIQQQIHHHHHH" if wide else "16sHHIIIIIHHHHHH"), ident, self.e_type, self.machine,
                           1, 0, 0, shoff, 0, header_size, 56 if wide else 32, 0, 64 if wide else 40, len(placed) + 1,
                           len(placed))
        path.write_bytes(ehdr + body + table)
        return path


def full(elf_class: int, little: bool, machine: int, padding: int = 0) -> Synthetic:
    """Every fact read_elf reads: two DT_NEEDED, DT_SONAME, DT_RPATH, DT_RUNPATH, version needs and definitions."""
    made = Synthetic(elf_class, little, machine, strings=Strings(padding))
    add = made.strings.add
    needed, other, soname = add("libneeded.so.1"), add("libother.so"), add("libsyn.so.2")
    made.dynamic = [(DT_NEEDED, needed), (0x6FFFFEF5, 0x1000), (DT_NEEDED, other), (DT_SONAME, soname),
                    (DT_RPATH, add("/r::")), (DT_RUNPATH, add("$ORIGIN:/opt/x"))]
    made.verneed = (verneed_bytes(made.order, [(needed, [add("NEED_1.0"), add("NEED_2.0")]), (other, [add("OTHER_1")])]), 2)
    made.verdef = (verdef_bytes(made.order, [soname, add("SYN_1")]), 2)
    return made


FULL_FACTS = ("libsyn.so.2", ("libneeded.so.1", "libother.so"), ("/r", "", ""), ("$ORIGIN", "/opt/x"),
              (("libneeded.so.1", ("NEED_1.0", "NEED_2.0")), ("libother.so", ("OTHER_1",))), ("libsyn.so.2", "SYN_1"))


@pytest.mark.parametrize(("elf_class", "little", "machine", "name"), [
    (64, True, 183, "EM_AARCH64"), (64, False, 21, "EM_PPC64"), (64, False, 22, "EM_S390"),
    (64, True, 243, "EM_RISCV"), (64, True, 258, "EM_LOONGARCH"), (64, False, 43, "EM_SPARCV9"),
    (32, True, 40, "EM_ARM"), (32, False, 8, "EM_MIPS"), (32, False, 20, "EM_PPC"), (32, True, 3, "EM_386"),
])
def test_both_classes_and_byte_orders_read_as_pyelftools_read_them(tmp_path: Path, elf_class: int, little: bool,
                                                                    machine: int, name: str) -> None:
    path = full(elf_class, little, machine).write(tmp_path / "libsyn.so.2")
    assert info(path) == ElfInfo(path, elf_class, name, *FULL_FACTS) == reference(path)
    assert read_header(path) == (elf_class, name)


def test_every_machine_name_is_the_one_pyelftools_gives() -> None:
    from elftools.elf.enums import ENUM_E_MACHINE

    names = {number: name for name, number in ENUM_E_MACHINE.items() if name != "_default_"}
    assert {number: names[number] for number in elf_module._MACHINES} == elf_module._MACHINES


@pytest.mark.parametrize(("machine", "name"), [(243, "EM_RISCV"), (258, "EM_LOONGARCH"), (9999, "EM_9999")])
def test_read_elf_and_read_header_name_a_machine_alike(tmp_path: Path, machine: int, name: str) -> None:
    """ldso compares the two: pyelftools said EM_RISCV where read_header said EM_243."""
    path = full(64, True, machine).write(tmp_path / "libsyn.so.2")
    assert info(path).machine == name
    assert read_header(path) == (64, name)


@pytest.mark.parametrize(("e_type", "name"), [(0, "ET_NONE"), (1, "ET_REL"), (2, "ET_EXEC"), (4, "ET_CORE"),
                                              (0xFE00, "0xfe00")])
def test_a_file_of_another_type_is_named_by_its_e_type(tmp_path: Path, e_type: int, name: str) -> None:
    made = full(32, False, 8)
    made.e_type = e_type
    assert problem(made.write(tmp_path / "libsyn.so")) == f"not a shared object (e_type {name})"


def test_invalid_utf8_is_replaced_as_pyelftools_replaced_it(tmp_path: Path) -> None:
    made = Synthetic()
    made.dynamic = [(DT_SONAME, made.strings.add(b"lib\xff\xfe.so")), (DT_NEEDED, made.strings.add(b"libc\x80.so.6"))]
    path = made.write(tmp_path / "libbad.so")
    assert (info(path).soname, info(path).needed) == ("lib\ufffd\ufffd.so", ("libc\ufffd.so.6",))
    assert info(path) == reference(path)


def test_only_the_strings_named_are_read_from_a_5_mb_string_table(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """libtorch_cpu's .dynstr is 5 MB; the names the dynamic and version sections use sit at its end."""
    path = full(64, True, 62, padding=5 << 20).write(tmp_path / "libsyn.so.2")
    read: list[int] = []

    class Counted(io.BufferedReader):
        def read(self, size: int | None = -1, /) -> bytes:
            data = super().read(size)
            read.append(len(data))
            return data

    monkeypatch.setattr(elf_module, "_open_regular", lambda name: Counted(io.FileIO(name)))
    assert info(path) == ElfInfo(path, 64, "EM_X86_64", *FULL_FACTS)
    assert path.stat().st_size > 5 << 20
    assert sum(read) < 32 << 10


# --- the failures the struct reader reports ---------------------------------------------------------


def test_a_string_offset_past_the_string_table(tmp_path: Path) -> None:
    made = full(64, True, 62)
    made.dynamic.append((DT_NEEDED, 1 << 40))
    size = len(made.strings.data)
    assert problem(made.write(tmp_path / "libsyn.so")) == (
        f"damaged ELF file: the dynamic section names a string at offset {1 << 40}, past the end of its {size}-byte "
        f"string table")


def test_a_string_without_its_nul_before_the_end_of_the_table(tmp_path: Path) -> None:
    made = Synthetic()
    made.dynamic = [(DT_SONAME, made.strings.add("libcut.so"))]
    del made.strings.data[-1]
    assert problem(made.write(tmp_path / "libcut.so")) == (
        "damaged ELF file: the dynamic section names a string at offset 1 that runs past the end of its 10-byte string "
        "table without a NUL")


def test_a_version_name_past_the_string_table(tmp_path: Path) -> None:
    made = Synthetic()
    made.verneed = (verneed_bytes("<", [(made.strings.add("libneeded.so.1"), [5000])]), 1)
    assert problem(made.write(tmp_path / "libsyn.so")) == (
        "damaged ELF file: the version needs section names a string at offset 5000, past the end of its 16-byte string "
        "table")


def gcc_library(gcc: str, folder: Path) -> Path:
    return build_so(gcc, folder / "libgood.so", "#include <math.h>\ndouble f(double x) { return cos(x); }\n", "-lm",
                    "-Wl,-soname,libgood.so.1")


def patch_section_header(path: Path, sh_type: int, offset: int, fmt: str, value: int) -> None:
    """Set one field of the first ELF64 section header of ``sh_type``."""
    data = bytearray(path.read_bytes())
    shoff, shnum = struct.unpack_from("<Q", data, 0x28)[0], struct.unpack_from("<H", data, 0x3C)[0]
    at = next(shoff + index * 64 for index in range(shnum)
              if struct.unpack_from("<I", data, shoff + index * 64 + 4)[0] == sh_type)
    struct.pack_into("<" + fmt, data, at + offset, value)
    path.write_bytes(bytes(data))


def test_a_soname_offset_past_dynstr_in_a_gcc_built_library(gcc: str, tmp_path: Path) -> None:
    lib = gcc_library(gcc, tmp_path)
    assert info(lib).soname == "libgood.so.1"
    start, size = section_bytes_at(lib, of_type(SHT_DYNAMIC))
    data = bytearray(lib.read_bytes())
    at = next(entry for entry in range(start, start + size, 16) if struct.unpack_from("<q", data, entry)[0] == DT_SONAME)
    struct.pack_into("<Q", data, at + 8, 0xFFFFFFFF)  # d_val: the soname's offset in .dynstr
    lib.write_bytes(bytes(data))
    assert problem(lib).startswith("damaged ELF file: the dynamic section names a string at offset 4294967295, past "
                                   "the end of its ")


@pytest.mark.parametrize(("link", "message"), [
    (999, "the dynamic section links to section 999 for its strings; the file has {count} sections"),
    (0, "the dynamic section links to section 0 for its strings, which is of type 0x0, not a string table"),
])
def test_the_dynamic_sections_link_is_not_a_string_table(gcc: str, tmp_path: Path, link: int, message: str) -> None:
    lib = gcc_library(gcc, tmp_path)
    patch_section_header(lib, SHT_DYNAMIC, 40, "I", link)  # sh_link
    count = struct.unpack_from("<H", lib.read_bytes(), 0x3C)[0]
    assert problem(lib) == "damaged ELF file: " + message.format(count=count)


def test_a_zero_vn_next_before_sh_info_entries_ends_the_walk(tmp_path: Path) -> None:
    """pyelftools read the first entry again sh_info times (4 billion at most); glibc stops at vn_next 0, and so does read_elf."""
    made = full(64, True, 62)
    data = bytearray(made.verneed[0])
    struct.pack_into("<I", data, 12, 0)  # the first entry's vn_next
    made.verneed = (bytes(data), 2)
    with watchdog():
        found = info(made.write(tmp_path / "libsyn.so.2"))
    assert found.verneed == (("libneeded.so.1", ("NEED_1.0", "NEED_2.0")),)


def test_a_zero_vna_next_before_vn_cnt_names_ends_the_chain(tmp_path: Path) -> None:
    made = full(64, False, 21)
    data = bytearray(made.verneed[0])
    struct.pack_into(">HH", data, 0, 1, 0xFFFF)  # vn_cnt 65,535
    struct.pack_into(">I", data, 16 + 12, 0)  # the first name's vna_next
    made.verneed = (bytes(data), 2)
    with watchdog():
        found = info(made.write(tmp_path / "libsyn.so.2"))
    assert found.verneed == (("libneeded.so.1", ("NEED_1.0",)), ("libother.so", ("OTHER_1",)))


def test_entries_that_share_one_chain_of_names_are_walked_within_the_sections_size(tmp_path: Path) -> None:
    """Eight entries, each pointing at the same chain of eight names: 64 names read from 256 bytes."""
    made = Synthetic()
    file_name, names = made.strings.add("libneeded.so.1"), [made.strings.add(f"V_{n}") for n in range(8)]
    entries = b"".join(struct.pack("<HHIII", 1, 8, file_name, 128 - 16 * n, 16 if n < 7 else 0) for n in range(8))
    chain = b"".join(struct.pack("<IHHII", 0, 0, n + 2, name, 16 if n < 7 else 0) for n, name in enumerate(names))
    made.verneed = (entries + chain, 8)
    assert problem(made.write(tmp_path / "libsyn.so")) == (
        "damaged ELF file: the version needs section has more entries than fit its 256 bytes")


def test_a_version_record_past_the_end_of_its_section(tmp_path: Path) -> None:
    made = full(64, True, 62)
    data = bytearray(made.verdef[0])
    struct.pack_into("<I", data, 16, 4096)  # vd_next of the first definition
    made.verdef = (bytes(data), 2)
    assert problem(made.write(tmp_path / "libsyn.so")) == (
        "damaged ELF file: the version definitions section has a record of 20 bytes at offset 4096, past the end of "
        "its 56 bytes")


def test_a_version_entry_of_no_names(tmp_path: Path) -> None:
    made = full(32, True, 3)
    data = bytearray(made.verneed[0])
    struct.pack_into("<H", data, 2, 0)  # vn_cnt
    made.verneed = (bytes(data), 2)
    assert problem(made.write(tmp_path / "libsyn.so")) == (
        "damaged ELF file: the version needs section has an entry of no versions at offset 0")


@pytest.mark.parametrize(("offset", "value", "message"), [
    (4, 3, "EI_CLASS 3 is neither 1 (32-bit) nor 2 (64-bit)"),
    (5, 0, "EI_DATA 0 is neither 1 (little-endian) nor 2 (big-endian)"),
])
def test_an_unknown_class_or_byte_order(tmp_path: Path, offset: int, value: int, message: str) -> None:
    path = full(64, True, 62).write(tmp_path / "libsyn.so")
    data = bytearray(path.read_bytes())
    data[offset] = value
    path.write_bytes(bytes(data))
    assert problem(path) == f"damaged ELF file: {message}"


# --- pyelftools is not imported -------------------------------------------------------------------


def test_no_elf_reader_imports_pyelftools(gcc: str, tmp_path: Path) -> None:
    lib = gcc_library(gcc, tmp_path)
    code = ("import json, sys\nfrom pathlib import Path\nimport pytest_cudadeps.engine.elf as elf\n"
            "found = elf.read_elf(Path(sys.argv[1]))\n"
            "print(json.dumps([type(found).__name__, elf.__file__, 'elftools' in sys.modules]))\n"
            "from pytest_cudadeps.engine.fatbin import read_architectures\n"  # and the slow-path readers
            "elf.dynamic_symbols(Path(sys.argv[1]), 'cos'), elf.symbol_table(Path(sys.argv[1]))\n"
            "elf.imported_symbols(Path(sys.argv[1]), 'cos'), read_architectures(Path(sys.argv[1]))\n"
            "print(json.dumps('elftools' in sys.modules))\n")
    # run from the checkout, so that this copy of the package is the one imported
    done = subprocess.run([sys.executable, "-c", code, str(lib)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    after_read_elf, after_all = map(json.loads, done.stdout.splitlines())
    assert after_read_elf == ["ElfInfo", str(REPO / "pytest_cudadeps" / "engine" / "elf.py"), False]
    assert after_all is False


# --- the real venv --------------------------------------------------------------------------------


@pytest.mark.integration
def test_every_library_of_the_real_venv_reads_as_pyelftools_read_it(cuda_venv: Path) -> None:
    site = venvs.site_packages(cuda_venv)
    libraries = sorted(path for folder in (site / "torch" / "lib", site / "nvidia") for path in folder.rglob("*.so*")
                       if path.is_file())
    assert len(libraries) > 40
    differing = [path for path in libraries if read_elf(path) != reference(path)]
    assert differing == []
