"""The run's settings as a value: every option of the plugin, already read and checked (see
:func:`pytest_cudadeps.options.settings_from_config`), passed down to every layer."""

from __future__ import annotations

import errno
import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from pytest_cudadeps.core.safe_io import file_kind, stat_or_reason
from pytest_cudadeps.core.text import one_line

DEFAULT_TIMEOUT = 60.0
# An hour per probe: far beyond any real dlopen or CUDA context creation (seconds), and small
# enough that deadlines computed from it stay finite (inf or 1e300 overflow time arithmetic).
MAX_TIMEOUT = 3600.0


@dataclass(frozen=True)
class Settings:
    """Every option of the plugin; a command-line flag wins over its ini twin."""

    enabled: bool = False
    only: bool = False
    roots: tuple[str, ...] = ()
    paths: tuple[str, ...] | None = None  # None: sys.path of this interpreter
    no_ld_cache: bool = False
    timeout: float = DEFAULT_TIMEOUT
    require_gpu: bool = False
    compile: bool = False  # --cuda-deps-compile: the torch child also runs a tiny torch.compile
    strict_notes: bool = False  # --cuda-deps-strict-notes: a note (a risk that fails nothing) fails its item
    verify_hashes: bool = False
    probes: bool = True  # False: static checks only, no child process
    host_root: str = "/"  # where /proc and /dev are read (the tests give a fake tree)
    json_path: str | None = None  # --cuda-deps-json: where the report goes
    compare_path: str | None = None  # --cuda-deps-compare: a report of a known-good host
    prometheus_path: str | None = None  # --cuda-deps-prometheus: a textfile for node_exporter (*.prom)

    def describe(self) -> str:
        parts = ["only the environment checks" if self.only else "environment checks added"]
        parts.append(f"roots: {', '.join(self.roots) if self.roots else 'default'}")
        if self.paths:
            parts.append(f"paths: {', '.join(self.paths)}")
        if self.no_ld_cache:
            parts.append("ld.so.cache ignored")
        if not self.probes:
            parts.append("static checks only")
        if self.host_root != "/":
            parts.append(f"host root: {self.host_root}")
        return one_line("; ".join(parts))  # one header line, whatever the paths hold


class SettingsError(ValueError):
    """An option's value that cannot be used, in words (the pytest face makes it a usage error, exit status 4)."""


def parse_timeout(text: object) -> float:
    """Seconds per probe: a finite number above 0 and at most :data:`MAX_TIMEOUT`; empty means the default."""
    if text in (None, ""):
        return DEFAULT_TIMEOUT
    try:
        timeout = float(str(text))
    except ValueError:
        timeout = math.nan
    if not (0 < timeout <= MAX_TIMEOUT):  # also false for nan
        raise SettingsError(
            f"--cuda-deps-timeout / cuda_deps_timeout must be a number of seconds above 0 and at most "
            f"{MAX_TIMEOUT:g}, not {text!r}"
        )
    return timeout


def folder_problem(path: Path) -> str | None:
    """Why ``path`` cannot be scanned for distributions (None: it is a folder we can list)."""
    found = stat_or_reason(path)
    if isinstance(found, str):
        return "does not exist" if found == os.strerror(errno.ENOENT) else f"cannot be used: {found}"
    if not stat.S_ISDIR(found.st_mode):
        return f"is not a folder (it is {file_kind(found.st_mode)})"
    try:
        with os.scandir(path):
            pass
    except OSError as exc:
        return f"cannot be listed: {exc.strerror or exc}"
    return None
