"""Installed packages that import the modules cuda-bindings 13 removed: ``cuda.cudart``, ``cuda.cuda`` and
``cuda.nvrtc`` (now ``cuda.bindings.runtime``, ``.driver`` and ``.nvrtc``).

cuda-bindings 12.9.10 still ships ``cuda/cudart.cpython-311-x86_64-linux-gnu.so`` (and ``cuda.so``, ``nvrtc.so``),
which warn ``FutureWarning: The cuda.cudart module is deprecated``; cuda-bindings 13.5.0 has none of them, and
``from cuda import cudart`` raises ``ImportError: cannot import name 'cudart' from 'cuda' (unknown location)``.

Only the distributions whose ``Requires-Dist`` names cuda-python or cuda-bindings are read, and of those only the
``.py`` files their RECORD lists at most :data:`DEPTH` folders deep (``pkg/sub/module.py``), each up to
:data:`FILE_LIMIT` bytes and :data:`BYTES_LIMIT` bytes a distribution (torch 2.14.1: 0.1 s).
A file that also names ``cuda.bindings`` is taken to choose between both spellings (``try: from cuda.bindings
import runtime`` / ``except ImportError: from cuda import cudart``) and is not reported.  Nothing is imported.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from pytest_cudadeps.core.safe_io import is_regular, read_regular
from pytest_cudadeps.engine.distributions import Distribution, Environment

LEGACY = ("cudart", "cuda", "nvrtc")
NEW = {"cudart": "cuda.bindings.runtime", "cuda": "cuda.bindings.driver", "nvrtc": "cuda.bindings.nvrtc"}
BINDINGS = ("cuda-python", "cuda-bindings")
FILE_LIMIT = 1 << 20  # bytes read of one .py file
BYTES_LIMIT = 8 << 20  # bytes read of one distribution's files
DEPTH = 2  # folders above a file read (pkg/sub/module.py)
_FROM = re.compile(r"^[ \t]*from[ \t]+cuda[ \t]+import[ \t]+\(?([\w \t,\\]+)", re.MULTILINE)
_WORDS = (b"from cuda ", b"from cuda\t", b"cuda.cudart", b"cuda.cuda", b"cuda.nvrtc")  # what a match must contain
_DOTTED = re.compile(r"^[ \t]*(?:import|from)[ \t]+cuda\.(cudart|cuda|nvrtc)\b", re.MULTILINE)


@dataclass(frozen=True)
class LegacyImport:
    """One import of a removed module: the file, its line, the module (``cudart``) and the statement as written."""

    path: Path
    line: int
    module: str
    statement: str


_NAME = re.compile(r"\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")


def bindings_users(env: Environment) -> list[tuple[Distribution, str]]:
    """The distributions that require cuda-python or cuda-bindings, with the first one they name."""
    found = []
    for dist in sorted(env.distributions, key=lambda d: d.key):
        if dist.key in BINDINGS or env.get(dist.key) is not dist:
            continue
        # the name alone, read as PEP 508 begins (a requirement is never parsed here: its marker may nest 1,500 deep)
        names = [canonicalize_name(match.group(1)) for match in map(_NAME.match, dist.requires) if match]
        named = next((name for name in BINDINGS if name in names), None)
        if named is not None:
            found.append((dist, named))
    return found


def legacy_module(paths: tuple[Path, ...], module: str) -> Path | None:
    """The installed ``cuda/<module>`` module (cuda-bindings 12's extension or a .py file), if any."""
    for site in paths:
        folder = site / "cuda"
        if not folder.is_dir():
            continue
        for entry in sorted(os.listdir(folder)):
            if entry == f"{module}.py" or (entry.startswith(f"{module}.") and entry.endswith(".so")):
                return folder / entry
    return None


def _imports(text: str) -> list[tuple[int, str, str]]:
    """(line, module, statement) of each import of a removed module in ``text``."""
    found = []
    for match in _FROM.finditer(text):
        names = [part.split()[0] for part in match.group(1).replace("\\", " ").split(",") if part.split()]
        for name in names:
            if name in LEGACY:
                found.append((text.count("\n", 0, match.start()) + 1, name, match.group(0).strip()))
    for match in _DOTTED.finditer(text):
        found.append((text.count("\n", 0, match.start()) + 1, match.group(1), match.group(0).strip()))
    return sorted(found)


def legacy_imports(dist: Distribution) -> list[LegacyImport]:
    """The imports of removed modules in the distribution's own .py files, files that name cuda.bindings left out."""
    found: list[LegacyImport] = []
    read = 0
    for path, entry in dist.owned_files(".py"):
        if not entry.path.endswith(".py") or entry.path.count("/") > DEPTH or read >= BYTES_LIMIT \
                or not is_regular(path):
            continue
        try:
            data = read_regular(path, FILE_LIMIT, "a .py file")
        except OSError:
            continue  # too large or unreadable: not this check's to report
        read += len(data)
        if b"cuda.bindings" in data or not any(word in data for word in _WORDS):
            continue
        text = data.decode("utf-8", "replace")
        found += [LegacyImport(path, line, module, statement) for line, module, statement in _imports(text)]
    return found
