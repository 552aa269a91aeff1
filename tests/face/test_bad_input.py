"""The bad-input corpus: hostile trees and options, each run through the real plugin in a subprocess.

Every case builds a small site-packages tree (torch 2.14.1 with its ``version.py``, a gcc-built
``torch/lib/libtorch_cuda.so`` and the wheel it requires), breaks one thing, runs
``python -m pytest --cuda-deps-only --cuda-deps-no-probes --cuda-deps-path=SITE`` from an empty
folder, and asserts:

- the exit status: 1 (a failing item) or 4 (a usage error), never 2 or 3 (a traceback), and 0
  for the intact tree;
- a fragment of the message, naming the file and the problem, and no traceback;
- the work: the run may use at most :data:`MEMORY_BOUND` of address space (before the fixes a
  65,535-section ELF header took 4.2 GB), and a watchdog stops it after a minute (a FIFO hung forever);
- no raw ESC byte in the output;
- that the tree is byte-for-byte unchanged (content hash and mode of every entry) and that
  nothing was written to the working folder.
"""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import stat
import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import nobody
from tests.support import sitebuilder as sb
from tests.support.bounds import WATCHDOG_SECONDS
from tests.support.build import build_so
from tests.support.elfpatch import SH_SIZE, of_type, patch_section, section_bytes_at

MEMORY_BOUND = 1536 << 20  # RLIMIT_AS of a run; pytest with the plugin maps about 300 MB here
TORCH_INFO = "torch-2.14.1.dist-info"


@dataclass(frozen=True)
class Case:
    """One bad input: how to break the tree, the exit status and a fragment of the output expected."""

    make: Callable[[Path], None]
    status: int
    fragment: str  # "{site}" and "{cwd}" are filled in
    args: tuple[str, ...] = ()
    as_nobody: bool = False
    xfail: str = ""
    env: tuple[tuple[str, str], ...] = ()  # variables for the run; "{site}", "{tree}" and "{cwd}" are filled in


# --- building and breaking the tree -------------------------------------------------------------


def base_tree(site: Path, gcc: str) -> None:
    torch = sb.torch_dist("2.14.1", "13.0", requires=("nvidia-cufft",))
    sb.build(site, [torch, sb.Dist("nvidia-cufft", "12.0.0.61")])
    build_so(gcc, site / "torch" / "lib" / "libtorch_cuda.so", "int f(void) { return 1; }\n")
    (site / "torch" / "lib" / ".libtorch_cuda.so.c").unlink()


def replace(rel: str, how: str, content: bytes = b"", size: int = 0) -> Callable[[Path], None]:
    """Turn ``site/rel`` into a FIFO, a folder, a file of ``content``, or a sparse file of ``size`` bytes."""

    def make(site: Path) -> None:
        target = site / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        if how == "fifo":
            os.mkfifo(target)
        elif how == "dir":
            target.mkdir()
        elif how == "sparse":
            with open(target, "wb") as stream:
                stream.truncate(size)
        else:
            target.write_bytes(content)

    return make


def both(*makers: Callable[[Path], None]) -> Callable[[Path], None]:
    def make(site: Path) -> None:
        for maker in makers:
            maker(site)

    return make


def fifo_behind_a_link(site: Path) -> None:
    os.mkfifo(site / "elsewhere")
    meta = site / TORCH_INFO / "METADATA"
    meta.unlink()
    meta.symlink_to("../elsewhere")


def egg(requires: Callable[[Path], None]) -> Callable[[Path], None]:
    """A legacy egg-info distribution that asks for nvidia-curand, with a broken requires.txt."""

    def make(site: Path) -> None:
        info = site / "legacy-1.0.egg-info"
        info.mkdir()
        (info / "PKG-INFO").write_text("Metadata-Version: 1.1\nName: legacy\nVersion: 1.0\n\n")
        requires(site)

    return make


def torch_metadata(*lines: bytes) -> Callable[[Path], None]:
    return replace(f"{TORCH_INFO}/METADATA", "file", b"Metadata-Version: 2.1\n" + b"\n".join(lines) + b"\n\n")


def app(requirement: str) -> Callable[[Path], None]:
    def make(site: Path) -> None:
        sb.write_dist(site, sb.Dist("my-cuda-app", "1.0", ("nvidia-cufft", requirement)))

    return make


def elf_patch(offset: int, fmt: str, *values: int, size: int = 0) -> Callable[[Path], None]:
    """Overwrite header fields of torch/lib/libtorch_cuda.so (and make it a sparse file of ``size``)."""

    def make(site: Path) -> None:
        with open(site / "torch" / "lib" / "libtorch_cuda.so", "r+b") as stream:
            stream.seek(offset)
            stream.write(struct.pack("<" + fmt, *values))
            if size:
                stream.truncate(size)

    return make


def dynamic_section_past_the_end(site: Path) -> None:
    patch_section(site / "torch" / "lib" / "libtorch_cuda.so", of_type(6), SH_SIZE, 1 << 40)  # SHT_DYNAMIC


def non_utf8_folder(site: Path) -> None:
    info = site / os.fsdecode(b"broken\xff-1.0.dist-info")
    info.mkdir()
    (info / "METADATA").write_bytes(b"Metadata-Version: 2.1\nName: broken\n\n")


def listed_but_deleted(site: Path) -> None:
    """torch's RECORD lists torch/lib/libtorch_cuda.so, and the file is gone (a half-finished uninstall)."""
    with open(site / TORCH_INFO / "RECORD", "a", encoding="utf-8") as record:
        record.write("torch/lib/libtorch_cuda.so,,\n")
    (site / "torch" / "lib" / "libtorch_cuda.so").unlink()


def nothing(site: Path) -> None:
    pass


def a_file(site: Path) -> None:
    site.write_text("x")


def removed(site: Path) -> None:
    shutil.rmtree(site)


def version_py(source: str) -> Callable[[Path], None]:
    return replace("torch/version.py", "file", source.encode())


def folder(rel: str, mode: int) -> Callable[[Path], None]:
    """A folder beside site-packages (``tree/rel``) with ``mode``: a place named on LD_LIBRARY_PATH."""

    def make(site: Path) -> None:
        path = site.parent / rel
        path.mkdir(parents=True)
        path.chmod(mode)

    return make


def relink(*flags: str) -> Callable[[Path], None]:
    """torch/lib/libtorch_cuda.so built again with these linker flags (its DT_RPATH or DT_RUNPATH)."""

    def make(site: Path) -> None:
        gcc = shutil.which("gcc")
        assert gcc is not None  # the gcc fixture skipped the test otherwise
        build_so(gcc, site / "torch" / "lib" / "libtorch_cuda.so", "int f(void) { return 1; }\n", *flags)
        (site / "torch" / "lib" / ".libtorch_cuda.so.c").unlink()

    return make


def chown_nobody(rel: str) -> Callable[[Path], None]:
    def make(site: Path) -> None:
        os.chown(site / rel, nobody.NOBODY, nobody.NOBODY)

    return make


def chmod(rel: str, mode: int) -> Callable[[Path], None]:
    def make(site: Path) -> None:
        (site / rel).chmod(mode)

    return make


def cycle_of_50(site: Path) -> None:
    """50 distributions that each require the next and nvidia-cufft: 2,551 items before, one root now."""
    names = [f"ring-{i:02d}" for i in range(50)]
    for i, name in enumerate(names):
        sb.write_dist(site, sb.Dist(name, "1.0", (names[(i + 1) % 50], "nvidia-cufft")))


def dynamic_section_garbage(site: Path) -> None:
    """The bytes of libtorch_cuda.so's .dynamic overwritten (its header intact): dlopen crashes on it."""
    lib = site / "torch" / "lib" / "libtorch_cuda.so"
    offset, size = section_bytes_at(lib, of_type(6))  # SHT_DYNAMIC
    with open(lib, "r+b") as stream:
        stream.seek(offset)
        stream.write(bytes((7 * i + 3) % 256 for i in range(size)))


# --- the corpus ---------------------------------------------------------------------------------

FIFO = "cannot be read: not a regular file (a FIFO)"
FOLDER = "cannot be read: not a regular file (a directory)"
VERSION_PY = "cannot tell which CUDA torch 2.14.1 was built for: {site}/torch/version.py cannot be read: "
NESTED = "cuda = " + "-" * 200_000 + "1\n"
TIMEOUT = "must be a number of seconds above 0 and at most 3600, not "

CASES: dict[str, Case] = {
    "intact": Case(nothing, 0, "passed"),
    # FIFOs: a plain open() waits for a writer forever
    "fifo-METADATA": Case(replace(f"{TORCH_INFO}/METADATA", "fifo"), 1, f"{TORCH_INFO}/METADATA: {FIFO}"),
    "fifo-METADATA-behind-a-symlink": Case(fifo_behind_a_link, 1, f"{TORCH_INFO}/METADATA: {FIFO}"),
    "fifo-RECORD": Case(replace(f"{TORCH_INFO}/RECORD", "fifo"), 1, f"{TORCH_INFO}/RECORD: {FIFO}"),
    "fifo-INSTALLER": Case(replace(f"{TORCH_INFO}/INSTALLER", "fifo"), 1, f"{TORCH_INFO}/INSTALLER: {FIFO}"),
    "fifo-requires.txt": Case(egg(replace("legacy-1.0.egg-info/requires.txt", "fifo")), 1,
                              f"legacy-1.0.egg-info/requires.txt: {FIFO}"),
    "fifo-version.py": Case(replace("torch/version.py", "fifo"), 1, VERSION_PY + "not a regular file (a FIFO)"),
    "fifo-libtorch_cuda.so": Case(replace("torch/lib/libtorch_cuda.so", "fifo"), 1,
                                  "torch/lib/libtorch_cuda.so: not a regular file (a FIFO)"),
    "folder-libtorch_cuda.so": Case(replace("torch/lib/libtorch_cuda.so", "dir"), 1,
                                    "torch/lib/libtorch_cuda.so: is a directory"),
    # folders where files belong
    "folder-METADATA": Case(replace(f"{TORCH_INFO}/METADATA", "dir"), 1, f"{TORCH_INFO}/METADATA: {FOLDER}"),
    "folder-RECORD": Case(replace(f"{TORCH_INFO}/RECORD", "dir"), 1, f"{TORCH_INFO}/RECORD: {FOLDER}"),
    "folder-INSTALLER": Case(replace(f"{TORCH_INFO}/INSTALLER", "dir"), 1, f"{TORCH_INFO}/INSTALLER: {FOLDER}"),
    "folder-version.py": Case(replace("torch/version.py", "dir"), 1, VERSION_PY + "not a regular file (a directory)"),
    # oversized files (sparse: they cost no disk)
    "oversized-METADATA": Case(replace(f"{TORCH_INFO}/METADATA", "sparse", size=95 << 20), 1,
                               f"{TORCH_INFO}/METADATA: cannot be read: is 95 MB, more than the 16 MB a METADATA file "
                               f"may be"),
    "oversized-RECORD": Case(replace(f"{TORCH_INFO}/RECORD", "sparse", size=65 << 20), 1,
                             f"{TORCH_INFO}/RECORD: cannot be read: is 65 MB, more than the 64 MB a RECORD file may be"),
    "oversized-INSTALLER": Case(replace(f"{TORCH_INFO}/INSTALLER", "file", b"pip" * 2000), 1,
                                f"{TORCH_INFO}/INSTALLER: cannot be read: is 5.9 KB, more than the 4 KB an INSTALLER "
                                f"file may be"),
    "oversized-requires.txt": Case(egg(replace("legacy-1.0.egg-info/requires.txt", "sparse", size=2 << 20)), 1,
                                   "requires.txt: cannot be read: is 2 MB, more than the 1 MB a requires.txt file may be"),
    "oversized-version.py": Case(replace("torch/version.py", "sparse", size=1 << 20), 1,
                                 VERSION_PY + "is 1 MB, more than the 256 KB a version.py file may be"),
    # parsers
    "csv-field-over-128KiB": Case(
        replace(f"{TORCH_INFO}/RECORD", "file", b"torch/a.py,,\ntorch/" + b"x" * (130 << 10) + b".so,,\n"), 1,
        f"{TORCH_INFO}/RECORD: line 2 cannot be parsed: field larger than field limit (131072)"),
    "NUL-in-Name": Case(torch_metadata(b"Name: torch\x00", b"Version: 2.14.1"), 1,
                        "bad metadata: the Name field contains a control character ('\\x00')"),
    "ESC-in-Name": Case(torch_metadata(b"Name: tor\x1b[2Jch", b"Version: 2.14.1"), 1,
                        "bad metadata: the Name field contains a control character ('\\x1b')"),
    "BEL-in-Version": Case(torch_metadata(b"Name: torch", b"Version: 2.14.1\x07"), 1,
                           "bad metadata: the Version field contains a control character ('\\x07')"),
    "not-UTF-8-METADATA": Case(torch_metadata(b"Name: torch", b"Version: 2.14.1", b"Summary: \xff"), 1,
                               f"{TORCH_INFO}/METADATA: cannot be read: not UTF-8 text"),
    "control-characters-in-INSTALLER": Case(
        both(replace(f"{TORCH_INFO}/INSTALLER", "file", b"pip\x1b[2J\x1b]0;pwned\x07\r\n"),
             lambda site: shutil.rmtree(site / "nvidia_cufft-12.0.0.61.dist-info")), 1,
        "installer: torch was installed by pip\\x1b[2J\\x1b]0;pwned\\x07"),
    "marker-nested-300-deep": Case(app("nvidia-curand; " + "(" * 300 + 'os_name == "posix"' + ")" * 300), 1,
                                   "is not a valid requirement: it nests parentheses 300 deep; at most 32 are read"),
    "marker-nested-1500-deep": Case(app("nvidia-curand; " + "(" * 1500 + 'os_name == "posix"' + ")" * 1500), 1,
                                    "is not a valid requirement: it nests parentheses 1500 deep; at most 32 are read"),
    "requirement-100k-characters": Case(
        app("nvidia-curand; os_name == 'a'" + " " * 50_000 + "and" + " " * 50_000 + "extra == 'b' c"), 1,
        "... (100046 characters) is not a valid requirement: it is 100046 characters long; at most 4096 are read"),
    "version.py-nested-unary": Case(version_py(NESTED), 1,
                                    VERSION_PY + "an expression is nested too deeply for Python's parser (MemoryError)"),
    # Python 3.11+ builds the AST recursively (RecursionError); 3.9 and 3.10 parse the chain, which is no literal
    "version.py-attribute-chain": Case(version_py("cuda = a" + ".a" * 100_000 + "\n"), 1,
                                       VERSION_PY + "an expression is nested too deeply for Python's parser "
                                                    "(RecursionError)" if sys.version_info >= (3, 11) else
                                       "{site}/torch/version.py has no `cuda = ...` line"),
    "version.py-syntax-error": Case(version_py("cuda = (\n"), 1, VERSION_PY),  # the wording is Python's own
    "version.py-cuda-abc": Case(version_py("cuda = 'abc'\n"), 1, VERSION_PY.replace(" cannot be read: ", " has ") +
                                "cuda = 'abc', not a CUDA version such as '13.0'"),
    # ELF headers that contradict the file's size
    "libtorch_cuda.so-in-RECORD-but-deleted": Case(listed_but_deleted, 1,
                                                   "torch/lib/libtorch_cuda.so: listed in torch 2.14.1's RECORD but missing"),
    "ELF-65535-sections-on-1MB": Case(elf_patch(0x3C, "H", 0xFFFF, size=1 << 20), 1,
                                      "libtorch_cuda.so: damaged ELF file: 65535 section headers of 64 bytes at offset "),
    "ELF-section-header-size-65535": Case(elf_patch(0x3A, "HH", 0xFFFF, 0xFFFF, size=1 << 20), 1,
                                          "damaged ELF file: section headers of 65535 bytes, not the 64 of ELF class 64"),
    "ELF-phentsize": Case(elf_patch(0x36, "H", 57), 1, "damaged ELF file: ELF file's phentsize not the expected size"),
    "ELF-65535-program-headers": Case(elf_patch(0x38, "H", 0xFFFF), 1,
                                      "damaged ELF file: 65535 program headers of 56 bytes at offset 64 lie past the end"),
    "ELF-dynamic-section-past-the-end": Case(dynamic_section_past_the_end, 1,
                                             "damaged ELF file: the dynamic section (1099511627776 bytes at offset "),
    # output safety
    "Requires-Dist-with-backticks": Case(
        both(app("nvidia-curand===`touch${IFS}PWNED`$HOME"), nothing), 1,
        "fix: pip install 'nvidia-curand===`touch${{IFS}}PWNED`$HOME'"),
    "non-UTF-8-folder-name-under-xdist": Case(non_utf8_folder, 1, "broken\\udcff-1.0.dist-info", ("-n", "2")),
    # options
    "path-missing": Case(removed, 4, "ERROR: --cuda-deps-path: '{site}' does not exist"),
    "path-is-a-file": Case(both(removed, a_file), 4,
                           "ERROR: --cuda-deps-path: '{site}' is not a folder (it is a regular file)"),
    "path-relative-missing": Case(nothing, 4, "ERROR: --cuda-deps-path: 'site' ({cwd}/site) does not exist",
                                  ("--cuda-deps-path=site",)),
    "path-relative-to-the-working-folder": Case(nothing, 0, "8 passed", ("--cuda-deps-path=../tree/site",)),
    "path-unlistable": Case(lambda site: site.chmod(0o711), 4,
                            "ERROR: --cuda-deps-path: '{site}' cannot be listed: Permission denied", as_nobody=True),
    # the search path's dangers (pytest_cudadeps/security.py)
    "LD_LIBRARY_PATH-world-writable-folder": Case(
        folder("scratch", 0o777), 1, "{tree}/scratch is world-writable (mode 0777, owner root (0)); matters as: "
        "LD_LIBRARY_PATH entry 1", env=(("LD_LIBRARY_PATH", "{tree}/scratch"),)),
    "LD_LIBRARY_PATH-sticky-scratch-folder": Case(
        folder("scratch", 0o1777), 1, "fix: export LD_LIBRARY_PATH={tree}/lib",
        env=(("LD_LIBRARY_PATH", "{tree}/scratch:{tree}/lib"),)),
    "LD_LIBRARY_PATH-missing-folder-anyone-can-create": Case(
        folder("scratch", 0o1777), 1, "and {tree}/scratch/cuda/lib does not exist yet: another user can create it",
        env=(("LD_LIBRARY_PATH", "{tree}/scratch/cuda/lib"),)),
    "LD_LIBRARY_PATH-empty-entry": Case(
        nothing, 1, "entry 2 '': an empty entry (a doubled, leading or trailing ':') is the working directory, now "
        "{cwd}\n  LD_LIBRARY_PATH='{site}:'\n  fix: export LD_LIBRARY_PATH={site}", env=(("LD_LIBRARY_PATH", "{site}:"),)),
    "LD_LIBRARY_PATH-dot-and-relative": Case(
        nothing, 1, "LD_LIBRARY_PATH has 2 entries that ld.so looks up from the working directory",
        env=(("LD_LIBRARY_PATH", "lib;."),)),
    "LD_PRELOAD-dot": Case(nothing, 1, "entry 1 '.': '.' is the working directory, now {cwd}",
                           env=(("LD_PRELOAD", "."),)),
    "LD_PRELOAD-relative-path": Case(
        nothing, 1, "entry 2 './libhook.so': a relative path, looked up from the working directory: now "
        "{cwd}/libhook.so", env=(("LD_PRELOAD", "libm.so.6 ./libhook.so"),)),
    "RUNPATH-relative-entry": Case(
        relink("-Wl,--enable-new-dtags,-rpath,$ORIGIN/../../nvidia/cu13/lib:lib"), 1,
        "{site}/torch/lib/libtorch_cuda.so (of torch 2.14.1): DT_RUNPATH entry 'lib': a relative path"),
    "RPATH-component-over-255-bytes": Case(relink("-Wl,--disable-new-dtags,-rpath,/" + "x" * 300), 0, "8 passed"),
    "torch-lib-owned-by-nobody": Case(
        chown_nobody("torch/lib"), 1, "{site}/torch/lib is owned by another user (mode 0755, owner nobody (65534)); "
        "matters as: holds torch 2.14.1's libtorch_cuda.so\n  fix: chown root {site}/torch/lib"),
    "libtorch_cuda.so-world-writable": Case(
        chmod("torch/lib/libtorch_cuda.so", 0o777), 1, "libtorch_cuda.so is world-writable: its code can be rewritten "
        "(mode 0777, owner root (0))"),
    "LD_LIBRARY_PATH-root-only-folder-as-nobody": Case(
        folder("private/lib", 0o700), 0, "8 passed", as_nobody=True, env=(("LD_LIBRARY_PATH", "{tree}/private/lib"),)),
    "LD_LIBRARY_PATH-component-over-255-bytes": Case(nothing, 0, "8 passed",
                                                     env=(("LD_LIBRARY_PATH", "/" + "x" * 300),)),
    # cost
    "cycle-of-50-cuda-users": Case(cycle_of_50, 0, "60 passed"),
    "fifo-METADATA-under-xdist": Case(replace(f"{TORCH_INFO}/METADATA", "fifo"), 1, f"{TORCH_INFO}/METADATA: {FIFO}",
                                      ("-n", "2")),
    "ELF-dynamic-section-garbage": Case(dynamic_section_garbage, 1, "libtorch_cuda.so: damaged ELF file"),
    **{f"timeout-{text}": Case(nothing, 4, f"ERROR: --cuda-deps-timeout / cuda_deps_timeout {TIMEOUT}{text!r}",
                               (f"--cuda-deps-timeout={text}",))
       for text in ("inf", "nan", "-1", "0", "1e300", "abc")},
}


# --- running -------------------------------------------------------------------------------------


def snapshot(top: Path) -> dict[str, tuple[int, str]]:
    """Mode and content hash (link target for links) of every entry under ``top``; FIFOs are never opened."""
    found: dict[str, tuple[int, str]] = {}
    for folder, dirs, files in os.walk(top):
        for name in (*dirs, *files):
            path = os.path.join(folder, name)
            info = os.lstat(path)
            digest = ""
            if stat.S_ISLNK(info.st_mode):
                digest = os.readlink(path)
            elif stat.S_ISREG(info.st_mode):
                sha = hashlib.sha256()
                with open(path, "rb") as stream:
                    for block in iter(lambda: stream.read(1 << 20), b""):
                        sha.update(block)
                digest = sha.hexdigest()
            found[os.path.relpath(path, top)] = (info.st_mode, digest)
    return found


def clean_env() -> dict[str, str]:
    # the outer run's xdist and addopts settings must not leak into the inner pytest, nor this
    # shell's LD_LIBRARY_PATH or LD_PRELOAD (a trailing ':' in it would fail the security items)
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("PYTEST_", "PYTHONPATH")) and k not in ("LD_LIBRARY_PATH", "LD_PRELOAD")}


def run_case(case: Case, root: Path, gcc: str) -> tuple[subprocess.CompletedProcess[bytes], Path, Path]:
    site, cwd = root / "tree" / "site", root / "cwd"
    cwd.mkdir(parents=True)
    base_tree(site, gcc)
    case.make(site)
    before = snapshot(root / "tree")
    args = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--cuda-deps-only", "--cuda-deps-no-probes",
            *(case.args if any(a.startswith("--cuda-deps-path") for a in case.args) else
              (f"--cuda-deps-path={site}", *case.args))]
    command = nobody.command(args) if case.as_nobody else args
    env = clean_env() | {name: value.format(site=site, tree=site.parent, cwd=cwd) for name, value in case.env}
    result = subprocess.run(command, cwd=cwd, capture_output=True, timeout=WATCHDOG_SECONDS, env=env,
                            preexec_fn=_bounded_memory)
    assert snapshot(root / "tree") == before, "the run changed the tree"
    assert list(cwd.iterdir()) == [], "the run wrote into the working folder"
    return result, site, cwd


def _bounded_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BOUND, MEMORY_BOUND))


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name: str, gcc: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    case = CASES[name]
    if case.xfail:
        request.applymarker(pytest.mark.xfail(reason=case.xfail, strict=True))
    if case.as_nobody:
        with nobody.shared_dir() as shared:
            result, site, cwd = run_case(case, shared, gcc)
            shutil.rmtree(shared / "tree" / "site", ignore_errors=True)
    else:
        result, site, cwd = run_case(case, tmp_path, gcc)
    output = (result.stdout + result.stderr).decode("utf-8", "replace")
    assert result.returncode == case.status, output[-3000:]
    assert case.fragment.format(site=site, tree=site.parent, cwd=cwd) in output, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert "INTERNALERROR" not in output, output[-3000:]
    assert b"\x1b" not in result.stdout + result.stderr
    if name == "Requires-Dist-with-backticks":
        pasted_fix_is_inert(output, tmp_path)


def pasted_fix_is_inert(output: str, tmp_path: Path) -> None:
    """Paste the printed fix line into bash (``pip`` a function that prints its arguments): nothing runs."""
    bash = shutil.which("bash")
    if bash is None:
        return
    line = next(line for line in output.splitlines() if "fix: pip install 'nvidia-curand" in line)
    command = line.split("fix: ", 1)[1].split("  (", 1)[0]
    paste = tmp_path / "paste"
    paste.mkdir()
    shown = subprocess.run([bash, "-c", 'pip() { printf "%s\\n" "$@"; }; ' + command], cwd=paste,
                           capture_output=True, text=True, timeout=10)
    assert shown.stdout.splitlines() == ["install", "nvidia-curand===`touch${IFS}PWNED`$HOME"]
    assert list(paste.iterdir()) == []
