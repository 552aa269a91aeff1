"""The plugin's settings, read once from the command line and the ini file."""

from __future__ import annotations

import errno
import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_cudadeps.core.safe_io import file_kind, stat_or_reason
from pytest_cudadeps.options import asked_for, option_value

if TYPE_CHECKING:  # the engine runs without pytest (benchmarks, a future CLI)
    import pytest

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
    verify_hashes: bool = False
    probes: bool = True  # False: static checks only, no child process
    host_root: str = "/"  # where /proc and /dev are read (the tests give a fake tree)
    json_path: str | None = None  # --cuda-deps-json: where the report goes
    compare_path: str | None = None  # --cuda-deps-compare: a report of a known-good host

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        """The settings of this run; a bad value is a ``pytest.UsageError`` (exit status 4) saying why."""

        def value(name: str) -> Any:
            return option_value(config, name)

        if not asked_for(config):
            return cls()  # off: the other options are not even checked, pytest runs as if we were absent
        only = bool(value("cuda_deps_only"))
        return cls(
            enabled=True,
            only=only,
            roots=tuple(value("cuda_deps_root") or ()),
            paths=_paths(config),
            no_ld_cache=bool(value("cuda_deps_no_ld_cache")),
            timeout=parse_timeout(value("cuda_deps_timeout")),
            require_gpu=bool(value("cuda_deps_require_gpu")),
            compile=bool(value("cuda_deps_compile")),
            verify_hashes=bool(value("cuda_deps_verify_hashes")),
            probes=not value("cuda_deps_no_probes"),
            host_root=os.path.join(str(config.invocation_params.dir), value("cuda_deps_host_root") or "/"),
            json_path=_given_path(config, value("cuda_deps_json")),
            compare_path=_given_path(config, value("cuda_deps_compare")),
        )

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
        return "; ".join(parts)


def _usage_error(message: str) -> Exception:
    import pytest

    return pytest.UsageError(message)


def parse_timeout(text: object) -> float:
    """Seconds per probe: a finite number above 0 and at most :data:`MAX_TIMEOUT`; empty means the default."""
    if text in (None, ""):
        return DEFAULT_TIMEOUT
    try:
        timeout = float(str(text))
    except ValueError:
        timeout = math.nan
    if not (0 < timeout <= MAX_TIMEOUT):  # also false for nan
        raise _usage_error(
            f"--cuda-deps-timeout / cuda_deps_timeout must be a number of seconds above 0 and at most "
            f"{MAX_TIMEOUT:g}, not {text!r}"
        )
    return timeout


def _paths(config: pytest.Config) -> tuple[str, ...] | None:
    """``--cuda-deps-path`` folders, absolute, each checked to be a folder we can list.

    A relative one given on the command line is taken from the folder pytest was started in
    (as a shell user means it), one from the ini file from the ini file's folder.
    """
    given = config.getoption("cuda_deps_path", default=None)
    if given is not None:
        raw, base, origin = list(given), config.invocation_params.dir, "--cuda-deps-path"
    else:
        raw = list(config.getini("cuda_deps_path") or ())
        base = config.inipath.parent if config.inipath else config.rootpath
        origin = f"cuda_deps_path in {config.inipath}" if config.inipath else "cuda_deps_path"
    paths = []
    for entry in raw:
        path = os.path.abspath(os.path.join(base, entry))
        problem = folder_problem(Path(path))
        if problem:
            shown = repr(entry) if entry == path else f"{entry!r} ({path})"
            raise _usage_error(f"{origin}: {shown} {problem}")
        paths.append(path)
    return tuple(paths) or None


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


def _given_path(config: pytest.Config, given: str | None) -> str | None:
    """A report path as given, relative to where pytest was started."""
    return os.path.join(str(config.invocation_params.dir), given) if given else None
