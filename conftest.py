"""Options of this project's own test suite (not of the plugin)."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--integration",
        action="store_true",
        help="also run the integration tier against a real torch 2.14.1 venv "
        "(built once into $CUDADEPS_VENV_CACHE, default ~/.cache/pytest-cudadeps: about 90 s, 5.4 GB)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--integration"):
        return
    skip = pytest.mark.skip(reason="integration tier: run with --integration")
    for item in items:
        if "integration" in item.keywords:
            item.add_marker(skip)
