"""The plugin's settings, read once from the command line and the ini file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the engine runs without pytest (benchmarks, a future CLI)
    import pytest

DEFAULT_TIMEOUT = 60.0


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
    verify_hashes: bool = False
    probes: bool = True  # False: static checks only, no child process
    host_root: str = "/"  # where /proc and /dev are read (the tests give a fake tree)
    json_path: str | None = None  # --cuda-deps-json: where the report goes
    compare_path: str | None = None  # --cuda-deps-compare: a report of a known-good host

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        import pytest

        def value(name: str) -> Any:
            given = config.getoption(name, default=None)
            return given if given is not None else config.getini(name)

        only = bool(value("cuda_deps_only"))
        paths = tuple(value("cuda_deps_path") or ())
        timeout_text = value("cuda_deps_timeout")
        try:
            timeout = float(timeout_text) if timeout_text not in (None, "") else DEFAULT_TIMEOUT
            if timeout <= 0:
                raise ValueError
        except ValueError:
            raise pytest.UsageError(
                f"--cuda-deps-timeout / cuda_deps_timeout must be a positive number of seconds, not {timeout_text!r}"
            ) from None
        return cls(
            enabled=only or bool(value("cuda_deps")),
            only=only,
            roots=tuple(value("cuda_deps_root") or ()),
            paths=tuple(os.path.abspath(os.path.join(str(config.rootpath), p)) if not os.path.isabs(p) else p
                        for p in paths) or None,
            no_ld_cache=bool(value("cuda_deps_no_ld_cache")),
            timeout=timeout,
            require_gpu=bool(value("cuda_deps_require_gpu")),
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


def _given_path(config: pytest.Config, given: str | None) -> str | None:
    """A report path as given, relative to where pytest was started."""
    return os.path.join(str(config.invocation_params.dir), given) if given else None
