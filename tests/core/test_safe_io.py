"""The safe reader: regular files only, never blocking, never past the cap; stats that skip as ld.so does."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_cudadeps.core.safe_io import UnsafeFile, human_size, is_dir, is_regular, read_regular, safe_stat, stat_or_reason
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
