"""Real ELF files for the tests: C sources compiled into shared objects with the machine's gcc."""

from __future__ import annotations

import subprocess
from pathlib import Path


def build_so(gcc: str, target: Path, source: str, *flags: str) -> Path:
    """Compile ``source`` (C) into a shared object at ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    c_file = target.parent / f".{target.name}.c"
    c_file.write_text(source)
    subprocess.run([gcc, "-shared", "-fPIC", "-o", str(target), str(c_file), *flags], check=True,
                   capture_output=True, text=True)
    return target
