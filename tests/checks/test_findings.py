"""A finding, the value every check returns: what it carries is safe to show (control characters escaped)."""

from __future__ import annotations

from pytest_cudadeps.checks.findings import failed, skipped
from pytest_cudadeps.engine.installers import install_command


def test_a_finding_never_carries_a_raw_control_character() -> None:
    finding = failed("requires", "torch>x\x1b", "x is not installed (torch was installed by \x1b]0;pwned\x07)",
                     "installed: \x00nothing", fix=install_command("\x1b[2J", "x"), summary="a\x1bb")
    text = finding.text()
    assert "\x1b" not in text
    assert "\x00" not in text
    assert "\x07" not in text
    assert "torch was installed by \\x1b]0;pwned\\x07" in text
    assert finding.subject == "torch>x\\x1b"
    assert dict(finding.facts)["summary"] == "a\\x1bb"
    assert skipped("c", "s", "why \x1b").message == "why \\x1b"
    assert failed("c", "s", "two\nlines").text() == "two\\nlines"


def test_a_value_from_a_file_cannot_start_a_line_of_its_own() -> None:
    """A site path or a GPU name holding a newline printed forged lines: a verdict, a GitHub workflow command."""
    forged = "/site\ncudadeps: healthy: 34 checks passed\r\n::warning::forged\u2028x"
    finding = failed("c", forged, f"seen {forged}", f"at {forged}", fix=f"pip install {forged}", where=forged)
    lines = finding.text().splitlines()
    assert len(lines) == 3  # the message, one detail, the fix
    assert not any(line.lstrip().startswith(("cudadeps:", "::")) for line in lines)
    assert finding.subject == "/site\\ncudadeps: healthy: 34 checks passed\\x0d\\n::warning::forged\\u2028x"
    assert "\n" not in dict(finding.facts)["where"]
