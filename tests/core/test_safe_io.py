"""The safe reader: regular files only, never blocking, never past the cap; stats that skip as ld.so does."""

from __future__ import annotations

import errno
import os
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pytest_cudadeps.core.safe_io import (
    UnsafeFile,
    append_output,
    human_size,
    is_dir,
    is_regular,
    read_regular,
    safe_stat,
    stat_or_reason,
    write_output,
)
from tests.support import nobody
from tests.support.bounds import watchdog


def test_a_regular_file_is_read(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"abc")
    assert read_regular(tmp_path / "f", 3) == b"abc"


def test_a_symlink_to_a_regular_file_is_followed(tmp_path: Path) -> None:
    (tmp_path / "libfoo.so.1").write_bytes(b"elf")
    (tmp_path / "libfoo.so").symlink_to("libfoo.so.1")
    assert read_regular(tmp_path / "libfoo.so", 10) == b"elf"


def test_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "METADATA")
    with watchdog(), pytest.raises(UnsafeFile, match=r"^not a regular file \(a FIFO\)$"):
        read_regular(tmp_path / "METADATA", 100)


def test_a_symlink_to_a_fifo_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "RECORD").symlink_to("fifo")
    with watchdog(), pytest.raises(UnsafeFile, match="a FIFO"):
        read_regular(tmp_path / "RECORD", 100)


def test_a_directory_and_a_device_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsafeFile, match=r"not a regular file \(a directory\)"):
        read_regular(tmp_path, 100)
    with pytest.raises(UnsafeFile, match=r"not a regular file \(a character device\)"):
        read_regular("/dev/zero", 100)  # a plain read would never end


def test_a_socket_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s"
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(path))
        # open() of a socket fails with ENXIO before fstat can say what it is
        with pytest.raises(OSError, match=r"No such device or address|not a regular file") as caught:
            read_regular(path, 100)
        assert isinstance(caught.value, UnsafeFile) or caught.value.errno == errno.ENXIO
    finally:
        server.close()


def test_a_file_over_the_cap_is_refused_with_both_sizes(tmp_path: Path) -> None:
    big = tmp_path / "METADATA"
    with open(big, "wb") as stream:
        stream.truncate(95 << 20)  # sparse: costs no disk
    with pytest.raises(UnsafeFile) as caught:
        read_regular(big, 16 << 20, "a METADATA file")
    assert str(caught.value) == "is 95 MB, more than the 16 MB a METADATA file may be"
    assert isinstance(caught.value, OSError)
    assert caught.value.filename == str(big)


def test_a_file_of_exactly_the_cap_is_read(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x" * 4096)
    assert len(read_regular(tmp_path / "f", 4096)) == 4096


def test_a_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_regular(tmp_path / "missing", 10)


@pytest.mark.parametrize(("size", "words"), [(0, "0 bytes"), (1023, "1023 bytes"), (4096, "4 KB"),
                                             (4097, "4.1 KB"),
                                             (int(1.4 * (1 << 20)), "1.4 MB"), ((95 << 20) + 1, "96 MB"), (16 << 20, "16 MB"),
                                             (3 << 30, "3 GB")])
def test_human_size(size: int, words: str) -> None:
    assert human_size(size) == words


def test_safe_stat_skips_what_ld_so_skips(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "loop").symlink_to("loop")
    assert safe_stat(tmp_path / "missing") is None
    assert stat_or_reason(tmp_path / "file" / "below") == "Not a directory"
    assert stat_or_reason(tmp_path / "loop") == "Too many levels of symbolic links"
    assert stat_or_reason(tmp_path / ("x" * 300)) == "File name too long"
    assert stat_or_reason(str(tmp_path) + "/a\0b") == "the path contains a NUL byte"
    assert safe_stat(tmp_path / "file") is not None
    assert is_regular(tmp_path / "file")
    assert not is_dir(tmp_path / "file")
    assert is_dir(tmp_path)
    assert not is_regular(tmp_path)
    assert not is_dir(tmp_path / ("x" * 300))
    assert not is_regular(tmp_path / "loop")


def test_safe_stat_skips_a_folder_it_may_not_search() -> None:
    with nobody.shared_dir() as shared:
        locked = shared / "locked"
        (locked / "inner").mkdir(parents=True)
        locked.chmod(0o700)
        code = ("from pytest_cudadeps.core.safe_io import stat_or_reason, is_dir, safe_stat; import sys; "
                "p = sys.argv[1]; print(stat_or_reason(p), is_dir(p), safe_stat(p))")
        result = subprocess.run(nobody.command([sys.executable, "-c", code, str(locked / "inner")]),
                                capture_output=True, text=True, cwd=nobody.REPO, timeout=60)
    assert result.stdout.strip() == "Permission denied False None", result.stderr


# --- writing an output file the user named (--cuda-deps-json) ---------------------------------------


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_regular_file_is_replaced_with_the_mode_the_umask_gives(tmp_path: Path, mask: int, mode: int) -> None:
    target = tmp_path / "report.json"
    target.write_text("old")
    before = target.stat().st_ino
    previous = os.umask(mask)
    try:
        assert write_output(target, "new") == "replaced"
    finally:
        os.umask(previous)
    assert target.read_text() == "new"
    assert target.stat().st_ino != before  # renamed over: a reader saw the old file or the new one
    assert stat.S_IMODE(target.stat().st_mode) == mode  # was always 0600
    assert os.listdir(tmp_path) == ["report.json"]  # no temporary file left


def test_a_symlink_to_a_regular_file_stays_a_link(tmp_path: Path) -> None:
    (tmp_path / "real.json").write_text("old")
    (tmp_path / "report.json").symlink_to("real.json")
    assert write_output(tmp_path / "report.json", "new") == "replaced"
    assert os.readlink(tmp_path / "report.json") == "real.json"
    assert (tmp_path / "real.json").read_text() == "new"


def test_a_fifo_with_a_reader_is_written_through(tmp_path: Path) -> None:
    fifo = tmp_path / "report.json"
    os.mkfifo(fifo)
    text = "x" * (1 << 20)  # 16 pipe buffers: the writer waits for the reader, who must be there
    received = bytearray()
    opened = threading.Event()

    def read() -> None:
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # open at once, before any writer
        opened.set()
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb") as stream:
            while len(received) < len(text):  # a read before the writer opened returns b"" at once
                received.extend(stream.read1(1 << 16) or b"")

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    opened.wait()
    with watchdog():
        assert write_output(fifo, text) == "written through"
        reader.join()
    assert bytes(received) == text.encode()
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # not replaced by a regular file


def test_a_fifo_that_nothing_reads_is_refused_at_once(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "report.json")
    with watchdog(), pytest.raises(UnsafeFile, match=r"^is a FIFO that nothing reads$"):
        write_output(tmp_path / "report.json", "{}")
    assert stat.S_ISFIFO(os.lstat(tmp_path / "report.json").st_mode)


def test_a_character_device_and_a_link_to_one_are_written_through(tmp_path: Path) -> None:
    (tmp_path / "sink").symlink_to("/dev/null")
    assert write_output("/dev/null", "{}") == "written through"
    assert write_output(tmp_path / "sink", "{}") == "written through"
    assert os.readlink(tmp_path / "sink") == "/dev/null"
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)
    with pytest.raises(OSError, match="No space left on device"):  # written, not renamed over: the device stays
        write_output("/dev/full", "{}")
    assert stat.S_ISCHR(os.lstat("/dev/full").st_mode)


def test_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsafeFile, match="is a directory: give a regular file, a FIFO or a character device"):
        write_output(tmp_path, "{}")


def test_dev_stdout_redirected_to_a_file_keeps_what_was_printed(tmp_path: Path) -> None:
    """``--cuda-deps-json=/dev/stdout > out.txt``: the report follows the output, as ``>&1`` would write it;
    a rename over /proc/self/fd/1's target took out.txt from under the shell."""
    script = ("import sys; from pytest_cudadeps.core.safe_io import write_output\n"
              "print('before', flush=True); print(write_output(sys.argv[1], 'report\\n')); print('after')\n")
    for name in ("/dev/stdout", "/proc/self/fd/1", "/dev/fd/1"):
        out = tmp_path / "out.txt"
        with open(out, "w") as stream:
            subprocess.run([sys.executable, "-c", script, name], stdout=stream, check=True, timeout=60)
        assert out.read_text() == "before\nreport\nwritten through\nafter\n", name
    assert os.readlink("/dev/stdout") == "/proc/self/fd/1"


def test_append_output_appends_to_a_regular_file_and_creates_one(tmp_path: Path) -> None:
    (tmp_path / "summary.md").write_text("earlier step\n")
    append_output(tmp_path / "summary.md", "ours\n")
    append_output(tmp_path / "new.md", "ours\n")
    assert (tmp_path / "summary.md").read_text() == "earlier step\nours\n"
    assert (tmp_path / "new.md").read_text() == "ours\n"


def test_append_output_refuses_a_fifo_and_a_device_at_once(tmp_path: Path) -> None:
    """$GITHUB_STEP_SUMMARY naming a FIFO made open(path, "a") wait for a reader forever."""
    os.mkfifo(tmp_path / "summary.md")
    with watchdog(), pytest.raises(UnsafeFile, match=r"not a regular file \(a FIFO\)"):
        append_output(tmp_path / "summary.md", "x")
    with pytest.raises(UnsafeFile, match=r"not a regular file \(a character device\)"):
        append_output("/dev/null", "x")
