"""Run a printed fix as a user would paste it, with the installers stubbed out: nothing else may run."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

# a name or version from a file, or a root from the command line, that runs a command when pasted unquoted
# (no backtick: some fixes name a command in backticks, and quote() makes a backtick as inert as a "$")
HOSTILE_NAME = "x$(touch PWNED)'$(touch PWNED2)'\"$(touch PWNED3)\";touch PWNED4"
_STUBS = "pip() { :; }; uv() { :; }; poetry() { :; }; pdm() { :; }; pipenv() { :; }; sudo() { :; }\n"


def commands_in(fix: str) -> list[str]:
    """The shell commands of a fix: those in backticks when it has any, else the fix up to its prose (", or ...")."""
    quoted = re.findall(r"`([^`]*)`", fix)
    return quoted or [fix.split(", or ")[0]]


def assert_inert(fix: str, folder: Path) -> None:
    """Each command of ``fix`` runs in bash (installers stubbed) and creates nothing in ``folder``."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is needed to run the fix as printed")
    for command in commands_in(fix):
        result = subprocess.run([bash, "-c", _STUBS + command], cwd=folder, capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, (command, result.stderr)
    assert list(folder.iterdir()) == [], f"pasting {fix!r} ran a command"
