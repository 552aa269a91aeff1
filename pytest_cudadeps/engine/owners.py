"""Who owns a file: the RECORD files of the installed distributions, indexed once per run.

A distribution's RECORD lists every file its installer wrote (PEP 376/627), relative
to the site-packages folder that holds it.  Only shared objects are indexed: torch
alone lists some 20,000 files, and only libraries are ever asked about.  An editable install
(``pip install -e``, `setup.py develop`) lists none of its files: it owns what lies in its source folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from pytest_cudadeps.engine.distributions import Distribution, Environment, RecordEntry, editable_source


def is_shared_object_name(name: str) -> bool:
    return name.endswith(".so") or ".so." in name


class Owners:
    """Which distributions' RECORD files list each shared object.

    Built from the copies Python uses: a hidden duplicate's files are not the ones loaded.
    """

    def __init__(self, env: Environment) -> None:
        self._index: dict[str, list[tuple[Distribution, RecordEntry]]] = {}
        self._by_name: dict[str, list[tuple[Path, Distribution]]] = {}
        for dist in env.distributions:
            if env.get(dist.key) is not dist:
                continue
            # only files inside its own site-packages: a RECORD line naming /usr/local/cuda/... owns nothing
            for path, entry in dist.owned_files(".so"):
                if ".so" in entry.path:
                    key = str(path)
                    self._index.setdefault(key, []).append((dist, entry))
                    self._by_name.setdefault(path.name, []).append((path, dist))

        self._entries = env.paths
        self._editable = [(source, dist) for dist in env.distributions
                          if env.get(dist.key) is dist and (source := editable_source(dist)) is not None]

    def of(self, path: Path) -> list[tuple[Distribution, RecordEntry]]:
        """The distributions whose RECORD lists ``path`` (as written, else as its links resolve); else the editable
        install whose source folder holds it."""
        found = self._index.get(os.path.normpath(path))
        if found:
            return found
        return self._index.get(os.path.realpath(path)) or self._editable_owner(Path(os.path.normpath(path)))

    def _editable_owner(self, path: Path) -> list[tuple[Distribution, RecordEntry]]:
        """The editable install whose source folder holds ``path``, unless a path entry lies between them (a venv
        inside the project folder: its site-packages' files are its wheels', not the project's); no hash to check."""
        for source, dist in self._editable:
            if source in path.parents and not any(source in entry.parents and entry in path.parents
                                                  for entry in self._entries):
                return [(dist, RecordEntry(os.path.relpath(path, dist.location), "", ""))]
        return []

    def owner_keys(self, path: Path | None) -> list[str]:
        return [dist.key for dist, _ in self.of(path)] if path is not None else []

    def files_named(self, name: str) -> list[tuple[Path, Distribution]]:
        """Every indexed file with this base name, and whose RECORD lists it."""
        return list(self._by_name.get(name, ()))
