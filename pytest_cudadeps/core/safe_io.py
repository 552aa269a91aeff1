"""The one way the engine opens and stats files it did not write: never blocking, never unbounded.

Everything the plugin reads (METADATA, RECORD, ``torch/version.py``, ``/etc/ld.so.cache``,
ELF files) lies in a tree someone else controls.  A FIFO there makes a plain ``open()``
wait for a writer forever; a device or a 95 MB "METADATA" makes ``read()`` block or
allocate without bound.  :func:`read_regular` therefore opens with ``O_NONBLOCK`` (so a
FIFO open returns at once), checks with ``fstat`` on the open descriptor (no window
between the check and the read) that the file is a regular one and not larger than the
caller's cap, and only then reads it.  Symbolic links are followed: site-packages has
legitimate ones (``libfoo.so -> libfoo.so.1``).

:func:`safe_stat` is ``os.stat`` for the search-path walks: the errors ld.so meets and
skips (EACCES on a folder it cannot search, ENAMETOOLONG, ELOOP, ENOTDIR, ENOENT) come back
as a reason instead of an exception, so the caller can skip the entry or report it.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Union

StrPath = Union[str, "os.PathLike[str]"]

# The errors ld.so treats as "not here, try the next folder" (elf/dl-load.c open_path):
# it skips such an entry instead of failing the whole load.
SKIPPED_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EACCES, errno.ENAMETOOLONG, errno.ELOOP, errno.EPERM})

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)


class UnsafeFile(OSError):
    """A file that exists but is not safe to read: not a regular file, or larger than the cap.

    An :class:`OSError` so that callers which already turn ``OSError`` into a finding
    ("cannot be read: ...") report it without a new ``except`` clause; ``str()`` is the reason alone.
    """

    def __init__(self, path: StrPath, reason: str) -> None:
        super().__init__(errno.EINVAL, reason, os.fspath(path))
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


def file_kind(mode: int) -> str:
    """A file type in words, for messages: "a FIFO", "a directory"..."""
    for test, words in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                        (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                        (stat.S_ISLNK, "a symbolic link"), (stat.S_ISREG, "a regular file")):
        if test(mode):
            return words
    return f"of unknown type (mode {mode:#o})"


def human_size(size: int) -> str:
    """``95 MB``, ``1.4 MB``, ``4 KB`` (powers of 1024; rounded up, so that a size over a cap never reads as equal to it)."""
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= scale:
            tenths = -(-size * 10 // scale)
            if tenths >= 100 or tenths % 10 == 0:
                return f"{-(-size // scale)} {unit}"
            return f"{tenths // 10}.{tenths % 10} {unit}"
    return f"{size} bytes"


def check_regular(path: StrPath, st: os.stat_result, limit: int | None = None, what: str = "this file") -> None:
    """Raise :class:`UnsafeFile` unless ``st`` is a regular file of at most ``limit`` bytes."""
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeFile(path, f"not a regular file ({file_kind(st.st_mode)})")
    if limit is not None and st.st_size > limit:
        raise UnsafeFile(path, f"is {human_size(st.st_size)}, more than the {human_size(limit)} {what} may be")


def open_regular(path: StrPath, limit: int | None = None, what: str = "this file") -> int:
    """An O_RDONLY descriptor of ``path`` once fstat says it is a regular file within ``limit``.

    The caller closes it (``os.fdopen(fd, "rb")`` hands it to a file object).  O_NONBLOCK
    matters only for the open itself: on a regular file it changes nothing for reads.
    """
    fd = os.open(path, _OPEN_FLAGS)
    try:
        check_regular(path, os.fstat(fd), limit, what)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: StrPath, limit: int, what: str = "this file") -> bytes:
    """The bytes of ``path``, which must be a regular file of at most ``limit`` bytes.

    Raises :class:`UnsafeFile` for a FIFO, socket, device or directory (never blocks on
    one) and for a file over ``limit``; other ``OSError`` as ``open`` does.  ``what`` names
    the file in the size message: "is 95 MB, more than the 16 MB a METADATA file may be".
    The read itself is capped too, so a file that grows after the check cannot exceed it.
    """
    fd = open_regular(path, limit, what)
    with os.fdopen(fd, "rb") as stream:
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise UnsafeFile(path, f"grew past the {human_size(limit)} {what} may be while it was read")
    return data


def read_text(path: StrPath, limit: int, what: str = "this file", errors: str = "strict") -> str:
    """:func:`read_regular` decoded as UTF-8; a file that is not UTF-8 is a ``ValueError`` saying where
    (``errors="replace"``: decoded anyway, for a file only searched for a word)."""
    data = read_regular(path, limit, what)
    try:
        return data.decode("utf-8", errors)
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def safe_stat(path: StrPath, *, follow_symlinks: bool = True) -> os.stat_result | None:
    """``os.stat``, or None for an entry ld.so would skip (missing, EACCES, ENAMETOOLONG, ELOOP, ENOTDIR).

    Other errors (EIO...) are raised: they are not a property of the search path.
    """
    found = stat_or_reason(path, follow_symlinks=follow_symlinks)
    return found if isinstance(found, os.stat_result) else None


def stat_or_reason(path: StrPath, *, follow_symlinks: bool = True) -> os.stat_result | str:
    """``os.stat``, or the reason in words ("Permission denied") for an entry ld.so would skip."""
    try:
        return os.stat(path, follow_symlinks=follow_symlinks)
    except OSError as exc:
        if exc.errno in SKIPPED_ERRNOS:
            return exc.strerror or os.strerror(exc.errno or 0)
        raise
    except ValueError:  # an embedded NUL byte: no such file can exist
        return "the path contains a NUL byte"


def is_dir(path: StrPath) -> bool:
    """``Path.is_dir`` that is false, not an exception, for an entry ld.so would skip."""
    found = safe_stat(path)
    return found is not None and stat.S_ISDIR(found.st_mode)


def is_regular(path: StrPath) -> bool:
    """``Path.is_file`` that is false, not an exception, for an entry ld.so would skip."""
    found = safe_stat(path)
    return found is not None and stat.S_ISREG(found.st_mode)


# For the lead: /etc/ld.so.cache is read with read_regular(path, LD_SO_CACHE_LIMIT, "ld.so.cache").
# A real cache is 20-200 KB (about 40 bytes per library and its name); 64 MB leaves ample room
# for a host with hundreds of thousands of libraries and still refuses a device, a FIFO or a
# sparse multi-gigabyte file.
LD_SO_CACHE_LIMIT = 64 << 20

__all__ = [
    "LD_SO_CACHE_LIMIT", "SKIPPED_ERRNOS", "UnsafeFile", "check_regular", "file_kind", "human_size", "is_dir",
    "is_regular", "open_regular", "read_regular", "read_text", "safe_stat", "stat_or_reason",
]
