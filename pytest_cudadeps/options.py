"""How the plugin is named and switched on, and how its options become :class:`~pytest_cudadeps.core.settings.Settings`.

A command-line flag wins over its ini twin.  Importing this module costs pytest nothing beyond
pytest itself: the plugin, installed but off, asks :func:`asked_for` and stops there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_cudadeps.core.settings import Settings

COLLECTOR_NAME = "cudadeps"
MARKER = "cudadeps"
USER_MARKER = "cuda"  # the user's own GPU tests: skipped with the root cause when the environment is broken
PLUGIN_NAME = "cudadeps-plugin"


class CudaDepsWarning(pytest.PytestWarning):
    """The plugin's warning category.  A risk as a wheel ships it (a search path entry meaning the working
    directory) is a note in the summary and the JSON report, not a warning: a warning on every healthy run teaches
    users to ignore warnings; ``--cuda-deps-strict-notes`` makes such a note fail its item."""


def option_value(config: pytest.Config, name: str) -> object:
    """The flag's value when given, else the ini file's."""
    given = config.getoption(name, default=None)
    return given if given is not None else config.getini(name)


def asked_for(config: pytest.Config) -> bool:
    """Whether the checks are on: ``--cuda-deps`` or ``--cuda-deps-only`` (or ``cuda_deps``/``cuda_deps_only``)."""
    return bool(option_value(config, "cuda_deps_only") or option_value(config, "cuda_deps"))


def settings_from_config(config: pytest.Config) -> Settings:
    """The settings of this run; a bad value is a ``pytest.UsageError`` (exit status 4) saying why."""
    from pytest_cudadeps.core.settings import Settings, SettingsError, parse_timeout

    def value(name: str) -> Any:
        return option_value(config, name)

    if not asked_for(config):
        return Settings()  # off: the other options are not even checked, pytest runs as if we were absent
    try:
        return Settings(
            enabled=True,
            only=bool(value("cuda_deps_only")),
            roots=tuple(value("cuda_deps_root") or ()),
            paths=_paths(config),
            no_ld_cache=bool(value("cuda_deps_no_ld_cache")),
            timeout=parse_timeout(value("cuda_deps_timeout")),
            require_gpu=bool(value("cuda_deps_require_gpu")),
            compile=bool(value("cuda_deps_compile")),
            strict_notes=bool(value("cuda_deps_strict_notes")),
            verify_hashes=bool(value("cuda_deps_verify_hashes")),
            probes=not value("cuda_deps_no_probes"),
            host_root=os.path.join(str(config.invocation_params.dir), value("cuda_deps_host_root") or "/"),
            json_path=_given_path(config, value("cuda_deps_json")),
            compare_path=_given_path(config, value("cuda_deps_compare")),
            prometheus_path=_textfile_path(config, value("cuda_deps_prometheus")),
        )
    except SettingsError as exc:
        raise pytest.UsageError(str(exc)) from None


def _paths(config: pytest.Config) -> tuple[str, ...] | None:
    """``--cuda-deps-path`` folders, absolute, each checked to be a folder we can list.

    A relative one given on the command line is taken from the folder pytest was started in
    (as a shell user means it), one from the ini file from the ini file's folder.
    """
    from pytest_cudadeps.core.settings import SettingsError, folder_problem

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
            raise SettingsError(f"{origin}: {shown} {problem}")
        paths.append(path)
    return tuple(paths) or None


def _textfile_path(config: pytest.Config, given: str | None) -> str | None:
    """node_exporter's textfile collector reads only ``*.prom`` files: another name would never be scraped."""
    from pytest_cudadeps.core.settings import SettingsError

    if given and not given.endswith(".prom"):
        raise SettingsError(f"--cuda-deps-prometheus / cuda_deps_prometheus must end in .prom (node_exporter's "
                            f"textfile collector reads only *.prom files), not {given!r}")
    return _given_path(config, given)


def _given_path(config: pytest.Config, given: str | None) -> str | None:
    """A report path as given, relative to where pytest was started."""
    return os.path.join(str(config.invocation_params.dir), given) if given else None
