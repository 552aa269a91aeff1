"""How an option's value is read: a command-line flag wins over its ini twin. Imports nothing, so that the
plugin, installed but off, costs pytest nothing beyond this check."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest


def option_value(config: pytest.Config, name: str) -> object:
    """The flag's value when given, else the ini file's."""
    given = config.getoption(name, default=None)
    return given if given is not None else config.getini(name)


def asked_for(config: pytest.Config) -> bool:
    """Whether the checks are on: ``--cuda-deps`` or ``--cuda-deps-only`` (or ``cuda_deps``/``cuda_deps_only``)."""
    return bool(option_value(config, "cuda_deps_only") or option_value(config, "cuda_deps"))
