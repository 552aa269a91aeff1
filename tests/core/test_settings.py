"""The run's settings as a value: how they describe themselves, and why a folder cannot be scanned.

How the options become settings (and a bad one a usage error) is the pytest face's: tests/face/test_settings.py.
"""

from __future__ import annotations

from pathlib import Path

from pytest_cudadeps.core.settings import Settings, folder_problem


def test_describe_names_what_differs_from_the_default() -> None:
    assert Settings().describe() == "environment checks added; roots: default"
    changed = Settings(only=True, roots=("torch", "jax"), paths=("/a", "/b"), no_ld_cache=True, probes=False,
                       host_root="/fake")
    assert changed.describe() == ("only the environment checks; roots: torch, jax; paths: /a, /b; ld.so.cache "
                                  "ignored; static checks only; host root: /fake")


def test_folder_problem(tmp_path: Path) -> None:
    assert folder_problem(tmp_path) is None
    assert folder_problem(tmp_path / "missing") == "does not exist"
    (tmp_path / "file").write_text("x")
    assert folder_problem(tmp_path / "file") == "is not a folder (it is a regular file)"
    assert folder_problem(tmp_path / "file" / "below") == "cannot be used: Not a directory"


def test_the_header_line_stays_one_line_whatever_the_paths_hold() -> None:
    described = Settings(paths=("/tmp/x\n::warning::forged/site",)).describe()
    assert described.splitlines() == [described]
    assert described.endswith("paths: /tmp/x\\n::warning::forged/site")
