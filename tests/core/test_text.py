"""Text from files made safe for where it goes: escaped for a terminal (printable), one inert shell word (quote)."""

from __future__ import annotations

import shlex

import pytest

from pytest_cudadeps.core.text import printable, quote


@pytest.mark.parametrize(("raw", "shown"), [
    ("pip\x1b[31m red \x1b[0m", "pip\\x1b[31m red \\x1b[0m"),
    ("torch\x00", "torch\\x00"),
    ("over\rwrite", "over\\x0dwrite"),
    ("c1 \x9b2J csi", "c1 \\x9b2J csi"),
    ("bidi \u202eevil", "bidi \\u202eevil"),
    ("bad \udcff name", "bad \\udcff name"),
    ("del \x7f", "del \\x7f"),
    ("lines\nand\ttabs stay", "lines\nand\ttabs stay"),
    ("ünïcödé stays", "ünïcödé stays"),
])
def test_printable(raw: str, shown: str) -> None:
    assert printable(raw) == shown
    assert printable(shown) == shown  # escaping twice changes nothing more


@pytest.mark.parametrize(("spec", "quoted"), [
    ("jax", "'jax'"),  # shlex.quote would leave it bare
    ("nvidia-cublas==13.1.1.3.*", "'nvidia-cublas==13.1.1.3.*'"),
    ("a$(b)", "'a$(b)'"),
    ("torch; python_version < '3.10'", "'torch; python_version < '\"'\"'3.10'\"'\"''"),
    ("", "''"),
], ids=["bare-word", "spec", "command-substitution", "single-quotes", "empty"])
def test_quote_is_always_one_single_quoted_word(spec: str, quoted: str) -> None:
    assert quote(spec) == quoted
    assert shlex.split(quote(spec)) == [spec]
