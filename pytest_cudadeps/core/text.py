"""Text from files we read, made safe for where it goes: a terminal line, a shell command.

:func:`printable` escapes what a terminal or a log viewer must never receive raw; :func:`quote`
makes one inert shell word of a requirement or a path, so that a fix can be pasted as printed.
"""

from __future__ import annotations

import re
import shlex

# What a terminal, a log viewer or an XML report must never receive raw from a file we read:
# C0 controls but tab and newline (ESC starts terminal sequences, CR overwrites the line,
# NUL truncates C strings), DEL, C1 controls (U+009B is a one-character CSI), the bidi
# overrides that reorder what is shown, and lone surrogates (a non-UTF-8 file name decoded with
# surrogateescape; they cannot be encoded, which made xdist's transfer fail).
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with control characters written as escapes (``\\x1b``, ``\\x00``, ``\\udcff``); tabs and newlines kept."""
    return _UNPRINTABLE.sub(_escape, text) if _UNPRINTABLE.search(text) else text


_LINE_BREAKS = re.compile("[\n\r\u2028\u2029]")  # \x85 (NEL) is a C1 control: printable escapes it


def one_line(text: str) -> str:
    """``text`` for a field that is one line (a path, a GPU name, a fix): :func:`printable`, and line breaks
    written as ``\\n`` too, so that a value from a file cannot start a line of its own (a forged
    ``cudadeps: healthy`` verdict, or a ``::warning::`` that GitHub's runner would obey)."""
    text = printable(text)
    return _LINE_BREAKS.sub(_escape_break, text) if _LINE_BREAKS.search(text) else text


def _escape_break(match: re.Match[str]) -> str:
    char = match.group()
    return {"\n": "\\n", "\r": "\\r"}.get(char, f"\\u{ord(char):04x}")


def quote(spec: str) -> str:
    """``spec`` as one inert shell word, always in single quotes: ``'nvidia-cublas==13.1.1.3.*'``.

    Requirement text comes from METADATA files that anyone can write: a Requires-Dist with
    backticks or ``$(...)`` must not run a command when the fix line is pasted into a shell.
    shlex.quote leaves "safe" words bare; we quote those too, so every fix looks alike.
    """
    quoted = shlex.quote(spec)
    return quoted if quoted.startswith("'") else f"'{spec}'"
