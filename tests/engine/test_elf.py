"""ELF facts read from shared objects built with gcc here, and every bad input read without an exception."""

from __future__ import annotations

import errno
import os
import shutil
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_cudadeps.engine.elf import ElfInfo, ElfProblem, dynamic_symbols, needed_names, program_interpreter, read_elf, read_header
from tests.support.build import build_so
from tests.support.companions import USES_CURRENT, companion, site_with
from tests.support.elf import info, problem

FOO_SOURCE = """
#include <unistd.h>
int foo(void) { return (int)getpid(); }
int cdt_api_13_1(void) { return 2; }
int cdt_hidden(void) { return 3; }
"""
# Two version nodes: the first named after the soname, as the CUDA libraries name theirs.
FOO_VERSIONS = "libfoo.so.1 { global: foo; local: *; };\nLIBFOO_2 { global: cdt_api_13_1; } libfoo.so.1;\n"
USER_SOURCE = """
int foo(void); int cdt_api_13_1(void); int cdt_api_13_2(void);
int use(void) { return foo() + cdt_api_13_1() + cdt_api_13_2(); }
"""
EM_AARCH64 = (183).to_bytes(2, "little")


@dataclass(frozen=True)
class Built:
    foo: Path  # libfoo.so.1: DT_SONAME, VERDEF
    rpath_user: Path  # needs libfoo.so.1, DT_RPATH with empty entries, VERNEED
    runpath_user: Path  # DT_RUNPATH ${ORIGIN}:/opt/b
    plain: Path  # no soname, no paths
    executable: Path  # ET_EXEC (-no-pie)
    lib32: Path | None  # an i386 shared object, when gcc -m32 can build one here


@pytest.fixture(scope="module")
def built(gcc: str, tmp_path_factory: pytest.TempPathFactory) -> Built:
    lib = tmp_path_factory.mktemp("elf")
    script = lib / "foo.map"
    script.write_text(FOO_VERSIONS)
    foo = build_so(gcc, lib / "libfoo.so.1", FOO_SOURCE, "-Wl,-soname,libfoo.so.1", f"-Wl,--version-script,{script}")
    rpath_user = build_so(gcc, lib / "librpath_user.so", USER_SOURCE, f"-L{lib}", "-l:libfoo.so.1",
                          "-Wl,--disable-new-dtags,-rpath,/opt/a::$ORIGIN/../lib:")
    runpath_user = build_so(gcc, lib / "librunpath_user.so", USER_SOURCE, f"-L{lib}", "-l:libfoo.so.1",
                            "-Wl,--enable-new-dtags,-rpath,${ORIGIN}:/opt/b")
    plain = build_so(gcc, lib / "libplain.so", "int plain(void) { return 0; }\n")
    main_c = lib / "main.c"
    main_c.write_text("int main(void) { return 0; }\n")
    executable = lib / "prog.so"  # named like a library on purpose: the name must not matter
    subprocess.run([gcc, "-no-pie", "-o", str(executable), str(main_c)], check=True, capture_output=True)
    lib32: Path | None
    try:
        lib32 = build_so(gcc, lib / "lib32.so", "int f(void) { return 0; }\n", "-m32", "-nostdlib")
    except subprocess.CalledProcessError:
        lib32 = None
    return Built(foo, rpath_user, runpath_user, plain, executable, lib32)


# --- the dynamic section ---------------------------------------------------------------------


def test_soname_needed_and_class_of_a_versioned_library(built: Built) -> None:
    foo = info(built.foo)
    assert foo.soname == "libfoo.so.1"
    assert (foo.elf_class, foo.machine) == (64, "EM_X86_64")
    assert foo.needed == ("libc.so.6",)
    assert foo.rpath == ()
    assert foo.runpath == ()


def test_needed_lists_the_soname_not_the_file_name_given_to_the_linker(built: Built) -> None:
    user = info(built.rpath_user)
    assert user.needed[0] == "libfoo.so.1"
    assert user.soname is None


def test_rpath_keeps_empty_entries_and_tokens_unexpanded(built: Built) -> None:
    user = info(built.rpath_user)
    assert user.rpath == ("/opt/a", "", "$ORIGIN/../lib", "")
    assert user.runpath == ()
    assert not user.has_runpath()
    assert user.effective_rpath() == user.rpath


def test_runpath_is_read_as_runpath_not_rpath(built: Built) -> None:
    user = info(built.runpath_user)
    assert user.runpath == ("${ORIGIN}", "/opt/b")
    assert user.rpath == ()
    assert user.has_runpath()
    assert user.effective_rpath() == ()


def test_rpath_is_ignored_when_runpath_is_present() -> None:
    both = ElfInfo(Path("/x.so"), 64, "EM_X86_64", None, (), ("/r",), ("/u",), (), ())
    assert both.effective_rpath() == ()
    assert ElfInfo(Path("/x.so"), 64, "EM_X86_64", None, (), ("/r",), (), (), ()).effective_rpath() == ("/r",)


def test_a_library_without_soname_or_paths(built: Built) -> None:
    plain = info(built.plain)
    assert plain.soname is None
    assert plain.rpath == plain.runpath == ()
    assert plain.verdef == ()


# --- symbol versions -------------------------------------------------------------------------


def test_verdef_from_a_version_script(built: Built) -> None:
    # the first definition is the base one (the file's own soname), then one per node of the script
    assert info(built.foo).verdef == ("libfoo.so.1", "libfoo.so.1", "LIBFOO_2")


def test_verneed_names_the_needed_file_and_the_versions_used(built: Built) -> None:
    user = info(built.rpath_user)
    assert set(user.versions_needed_from("libfoo.so.1")) == {"libfoo.so.1", "LIBFOO_2"}
    assert "libfoo.so.1" in dict(user.verneed)
    assert user.versions_needed_from("libcudart.so.13") == ()
    assert all(v.startswith("GLIBC_") for v in user.versions_needed_from("libc.so.6"))


def test_a_library_built_without_version_script_needs_no_versions_from_it(built: Built, gcc: str,
                                                                          tmp_path: Path) -> None:
    shutil.copy(built.plain, tmp_path / "libplain.so")
    user = build_so(gcc, tmp_path / "libuser.so", "int plain(void); int u(void) { return plain(); }\n",
                    f"-L{tmp_path}", "-lplain")
    found = info(user)
    assert found.needed[0] == "libplain.so"
    assert found.versions_needed_from("libplain.so") == ()


# --- dynamic symbols -------------------------------------------------------------------------


def test_dynamic_symbols_defined_and_undefined_matching_a_pattern(built: Built) -> None:
    pattern = r"cdt_api_\d+_\d+$"
    assert dynamic_symbols(built.foo, pattern) == (frozenset({"cdt_api_13_1"}), frozenset())
    assert dynamic_symbols(built.rpath_user, pattern) == (frozenset(), frozenset({"cdt_api_13_1", "cdt_api_13_2"}))
    # a local symbol (hidden by the version script) is not in .dynsym at all
    assert dynamic_symbols(built.foo, r"cdt_hidden$") == (frozenset(), frozenset())
    assert dynamic_symbols(built.foo, r"foo$")[0] == frozenset({"foo"})


def test_dynamic_symbols_of_a_damaged_file_are_empty(tmp_path: Path, built: Built) -> None:
    cut = tmp_path / "cut.so"
    cut.write_bytes(built.foo.read_bytes()[:100])
    assert dynamic_symbols(cut, ".*") == (frozenset(), frozenset())
    assert dynamic_symbols(tmp_path / "missing.so", ".*") == (frozenset(), frozenset())


# --- headers: class and machine --------------------------------------------------------------


def test_read_header_of_64_bit_32_bit_and_patched_machine(built: Built, tmp_path: Path) -> None:
    assert read_header(built.foo) == (64, "EM_X86_64")
    patched = tmp_path / "libarm.so"
    data = bytearray(built.foo.read_bytes())
    data[18:20] = EM_AARCH64
    patched.write_bytes(bytes(data))
    assert read_header(patched) == (64, "EM_AARCH64")
    assert info(patched).machine == "EM_AARCH64"
    text = tmp_path / "text.so"
    text.write_text("x" * 100)
    assert read_header(text) is None
    assert read_header(tmp_path / "missing.so") is None
    assert read_header(tmp_path) is None


def test_a_32_bit_library(built: Built) -> None:
    if built.lib32 is None:
        pytest.skip("gcc -m32 -nostdlib cannot build an i386 shared object here")
    assert read_header(built.lib32) == (32, "EM_386")
    found = info(built.lib32)
    assert (found.elf_class, found.machine) == (32, "EM_386")


# --- bad input: an ElfProblem, never an exception --------------------------------------------


def test_zero_byte_file(tmp_path: Path) -> None:
    empty = tmp_path / "libempty.so"
    empty.touch()
    assert problem(empty) == "file too short"


def test_short_text_is_too_short_like_the_loader_says(tmp_path: Path) -> None:
    # glibc reads a whole ELF header first: a 7-byte file is "file too short", not "invalid ELF header"
    short = tmp_path / "libshort.so"
    short.write_text("notelf\n")
    assert problem(short) == "file too short"


def test_non_elf_text(tmp_path: Path) -> None:
    text = tmp_path / "libtext.so"
    text.write_text("INPUT(libfoo.so.1)\n" * 10)  # a linker script, as some distributions ship for libc.so
    assert problem(text) == "invalid ELF header"


def test_truncated_library(built: Built, tmp_path: Path) -> None:
    cut = tmp_path / "libcut.so"
    cut.write_bytes(built.foo.read_bytes()[:100])
    message = problem(cut)
    assert message.startswith("damaged ELF file")


def test_directory_named_like_a_library(tmp_path: Path) -> None:
    folder = tmp_path / "x.so"
    folder.mkdir()
    assert problem(folder) == "is a directory"


def test_symlink_loop(tmp_path: Path) -> None:
    a, b = tmp_path / "liba.so", tmp_path / "libb.so"
    a.symlink_to(b.name)
    b.symlink_to(a.name)
    assert problem(a) == "cannot be read: Too many levels of symbolic links"


def test_dangling_symlink(tmp_path: Path) -> None:
    link = tmp_path / "libgone.so"
    link.symlink_to("libnothere.so.1")
    assert problem(link) == "cannot be read: No such file or directory"


def test_executable_is_not_a_shared_object(built: Built) -> None:
    assert problem(built.executable) == "not a shared object (e_type ET_EXEC)"


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    """A FIFO named like a library: opening it for reading would wait for a writer forever."""
    fifo = tmp_path / "libfifo.so"
    os.mkfifo(fifo)
    result: list[ElfInfo | ElfProblem] = []
    reader = threading.Thread(target=lambda: result.append(read_elf(fifo)), daemon=True)
    reader.start()
    reader.join(timeout=10)
    if reader.is_alive():  # unblock the stuck reader before failing
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(timeout=10)
        pytest.fail("read_elf blocked on a FIFO")
    assert result == [ElfProblem(fifo, "not a regular file (a FIFO)")]


def test_unreadable_file(built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unreadable library is a problem, not an exception.

    chmod 000 stops only a user without CAP_DAC_OVERRIDE; as root (CI here) the open() that
    read_elf makes is made to fail as the kernel fails it for such a user.
    """
    locked = tmp_path / "liblocked.so"
    shutil.copy(built.foo, locked)
    locked.chmod(0)
    if os.geteuid() != 0:
        assert problem(locked) == "cannot be read: Permission denied"
        return
    import pytest_cudadeps.engine.elf as elf_module

    def denied(path: object, *args: object, **kwargs: object) -> object:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr(elf_module, "open", denied, raising=False)
    assert problem(locked) == "cannot be read: Permission denied"


# --- PT_INTERP: the dynamic loader a program names -------------------------------------------


def _executable_with_interp(path: Path, interp: bytes, *, elf_class: int, little: bool, machine: int) -> Path:
    """An ELF executable header with one PT_LOAD and one PT_INTERP program header, written by hand.

    No cross compiler is needed to check another machine's layout: e_phoff, e_phentsize and
    e_phnum sit where the ELF specification puts them for each class and byte order.
    """
    order = "<" if little else ">"
    if elf_class == 64:
        ehsize, phentsize, phfmt = 64, 56, order + "IIQQQQQQ"
        header = struct.pack(order + "16sHHIQQQIHHHHHH", b"\x7fELF\x02" + (b"\x01" if little else b"\x02") + b"\x01" + b"\0" * 9,
                             2, machine, 1, 0, ehsize, 0, 0, ehsize, phentsize, 2, 0, 0, 0)
    else:
        ehsize, phentsize, phfmt = 52, 32, order + "IIIIIIII"
        header = struct.pack(order + "16sHHIIIIIHHHHHH", b"\x7fELF\x01" + (b"\x01" if little else b"\x02") + b"\x01" + b"\0" * 9,
                             2, machine, 1, 0, ehsize, 0, 0, ehsize, phentsize, 2, 0, 0, 0)
    interp_at = ehsize + 2 * phentsize
    if elf_class == 64:  # p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align
        load = struct.pack(phfmt, 1, 5, 0, 0, 0, 0, 0, 0x1000)
        pt_interp = struct.pack(phfmt, 3, 4, interp_at, 0, 0, len(interp) + 1, len(interp) + 1, 1)
    else:  # p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_flags, p_align
        load = struct.pack(phfmt, 1, 0, 0, 0, 0, 0, 5, 0x1000)
        pt_interp = struct.pack(phfmt, 3, interp_at, 0, 0, len(interp) + 1, len(interp) + 1, 4, 1)
    path.write_bytes(header + load + pt_interp + interp + b"\0")
    return path


@pytest.mark.parametrize(("elf_class", "little", "machine", "interp"), [
    (64, True, 183, b"/lib/ld-linux-aarch64.so.1"),  # EM_AARCH64
    (64, False, 21, b"/lib64/ld64.so.1"),  # EM_PPC64, big-endian
    (32, True, 40, b"/lib/ld-linux-armhf.so.3"),  # EM_ARM
])
def test_program_interpreter_of_other_machines(tmp_path: Path, elf_class: int, little: bool, machine: int,
                                               interp: bytes) -> None:
    exe = _executable_with_interp(tmp_path / "python", interp, elf_class=elf_class, little=little, machine=machine)
    assert program_interpreter(exe) == interp.decode()
    assert read_header(exe) is not None  # the same file is a well-formed ELF header


def test_program_interpreter_of_this_python_is_the_loader_that_runs_it() -> None:
    exe = Path(os.path.realpath(sys.executable))
    found = program_interpreter(exe)
    assert found is not None
    assert os.path.exists(found)
    # the loader it names runs this Python (what --cuda-deps-no-ld-cache relies on in the children)
    out = subprocess.run([found, "--inhibit-cache", str(exe), "-c", "print('ran')"], capture_output=True, text=True)
    assert out.stdout.strip() == "ran", out.stderr


def test_program_interpreter_of_a_library_without_one_or_a_non_elf_file(tmp_path: Path, gcc: str) -> None:
    lib = build_so(gcc, tmp_path / "libplain.so", "int f(void) { return 1; }\n")
    assert program_interpreter(lib) is None  # shared libraries have no PT_INTERP
    (tmp_path / "text").write_text("#!/bin/sh\n")
    assert program_interpreter(tmp_path / "text") is None
    truncated = _executable_with_interp(tmp_path / "cut", b"/lib/ld.so", elf_class=64, little=True, machine=62)
    truncated.write_bytes(truncated.read_bytes()[:70])  # the program headers are cut off
    assert program_interpreter(truncated) is None


def test_needed_names_agrees_with_pyelftools(tmp_path: Path, gxx: str) -> None:
    site = site_with(tmp_path, gxx, (companion("myext", "1.0"), USES_CURRENT, ()))
    ext = site / "myext" / "_C.so"
    info = read_elf(ext)
    assert isinstance(info, ElfInfo)
    assert needed_names(ext) == info.needed
    assert "libc10.so" in needed_names(ext)
    assert needed_names(tmp_path / "site" / "torch" / "version.py") == ()
