"""Run a command as the unprivileged user ``nobody``, for the cases root never meets (EACCES)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

NOBODY = 65534
REPO = Path(__file__).resolve().parents[2]


def command(args: Sequence[str]) -> list[str]:
    """``args`` run as nobody (setpriv) when we are root, as they are otherwise; skips when impossible."""
    if os.geteuid() != 0:
        return list(args)
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot drop to an unprivileged user")
    probe = subprocess.run([setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                            sys.executable, "-c", "import pytest, pytest_cudadeps"], capture_output=True, cwd=REPO)
    if probe.returncode != 0:
        pytest.skip(f"nobody cannot run this interpreter and checkout: {probe.stderr.decode()[-200:]}")
    return [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *args]


@contextmanager
def shared_dir() -> Iterator[Path]:
    """A folder outside pytest's tmp_path (which only root may enter) that nobody can search."""
    path = Path(tempfile.mkdtemp(prefix="cudadeps-nobody-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for folder, _, _ in os.walk(path):
            os.chmod(folder, 0o755)
        shutil.rmtree(path)
