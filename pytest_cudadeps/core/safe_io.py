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

import contextlib
import errno
import os
import re
import stat
import tempfile
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


def _umask() -> int:
    """The process's umask, read without changing it where /proc says it (os.umask sets it to read it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o22)
    os.umask(mask)
    return mask


def write_output(path: StrPath, text: str) -> str:
    """Write ``text`` to an output file the user named, and say how: "replaced" or "written through".

    A regular file (or none yet) is replaced atomically: a temporary file in the same folder, mode
    ``0666 & ~umask`` as ``open()`` would create it, then ``os.replace``, so that a reader sees the
    old file or the whole new one.  A symbolic link to a regular file is kept: its target is replaced.
    A FIFO or a character device (``/dev/stdout``, ``/dev/null``, a pipe that ``/proc/self/fd/1``
    names) is opened for writing and written through: renaming a file over it would destroy it (as
    root, over ``/dev/full``, the device node).  A FIFO is opened without blocking, so one that nobody
    reads is refused at once instead of waiting for a reader; a directory, a socket or a block
    device is refused.  Errors are :class:`OSError` (:class:`UnsafeFile` for a refusal).
    """
    descriptor = _own_descriptor(os.fspath(path))
    if descriptor is not None:  # /dev/stdout: write where the process's own stdout goes, at its offset
        with os.fdopen(os.dup(descriptor), "w", encoding="utf-8") as stream:
            stream.write(text)
        return "written through"
    found = stat_or_reason(path)
    if isinstance(found, str) or stat.S_ISREG(found.st_mode):
        _replace(os.path.realpath(path), text)
        return "replaced"
    if not (stat.S_ISFIFO(found.st_mode) or stat.S_ISCHR(found.st_mode)):
        raise UnsafeFile(path, f"is {file_kind(found.st_mode)}: give a regular file, a FIFO or a character device")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a FIFO that no process has open for reading
            raise UnsafeFile(path, "is a FIFO that nothing reads") from None
        raise
    os.set_blocking(fd, True)  # the reader sets the pace of a large report
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        stream.write(text)
    return "written through"


def append_output(path: StrPath, text: str) -> None:
    """Append ``text`` to a regular file an environment variable names (``$GITHUB_STEP_SUMMARY``), creating it.

    Opened without blocking: a FIFO there, with nobody reading, made a plain ``open(path, "a")`` wait forever.
    Anything but a regular file is refused with :class:`UnsafeFile`, before a byte is written.
    """
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a FIFO that nothing reads
            raise UnsafeFile(path, "not a regular file (a FIFO)") from None
        raise
    try:
        check_regular(path, os.fstat(fd))
    except BaseException:
        os.close(fd)
        raise
    os.set_blocking(fd, True)
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        stream.write(text)


_OWN_FD = re.compile(r"/(?:proc/(?:self|thread-self|{pid})|dev)/fd/(\d+)")


def _own_descriptor(path: str) -> int | None:
    """N when ``path`` is, or links to, ``/proc/self/fd/N`` or ``/dev/fd/N`` (``/dev/stdout`` is one).

    Such a link opens the descriptor's file anew: renaming over its target would take a redirected
    stdout's file from under the shell, and writing through a new descriptor would start at offset 0,
    over what the process printed.  Writing to a duplicate of N shares its offset, as ``>&N`` does.
    """
    own = re.compile(_OWN_FD.pattern.format(pid=os.getpid()))
    for _ in range(40):  # ELOOP's limit
        match = own.fullmatch(os.path.normpath(path))
        if match:
            return int(match.group(1))
        try:
            link = os.readlink(path)
        except OSError:  # not a link (EINVAL), or missing: not one of ours
            return None
        path = os.path.join(os.path.dirname(path), link)
    return None


def _replace(target: str, text: str) -> None:
    folder = os.path.dirname(target) or "."
    os.makedirs(folder, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp", dir=folder)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes it 0600
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


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
    "LD_SO_CACHE_LIMIT", "SKIPPED_ERRNOS", "UnsafeFile", "append_output", "check_regular", "file_kind", "human_size", "is_dir",
    "is_regular", "open_regular", "read_regular", "read_text", "safe_stat", "stat_or_reason", "write_output",
]
