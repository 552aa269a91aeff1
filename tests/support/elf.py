"""What the ELF reader says of a file: its facts, or its problem in words."""

from __future__ import annotations

from pathlib import Path

from pytest_cudadeps.engine.elf import ElfInfo, ElfProblem, read_elf


def info(path: Path) -> ElfInfo:
    found = read_elf(path)
    assert isinstance(found, ElfInfo), found
    return found


def problem(path: Path) -> str:
    found = read_elf(path)
    assert isinstance(found, ElfProblem), found
    assert found.path == path
    return found.problem
