"""The frameworks' table rows, for the tests that need one by key."""

from __future__ import annotations

from pytest_cudadeps.tables.frameworks import Framework, framework_for


def known_framework(key: str) -> Framework:
    """The row of ``key`` in tables/frameworks.py; a test asking for a key the table lacks fails here."""
    found = framework_for(key)
    assert found is not None, key
    return found
