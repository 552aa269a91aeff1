"""Fake host roots for ``--cuda-deps-host-root``: /proc/driver/nvidia/version and /dev with real character devices.

The version texts are real ones, from public threads (versions kept as reported).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

PROPRIETARY = ("NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.90.07  Fri May 31 09:35:42 UTC 2024\n"
               "GCC version:  gcc version 12.3.0 (Ubuntu 12.3.0-1ubuntu1~22.04)\n")  # oddmario/NVIDIA-Ubuntu-Driver-Guide#4


OPEN = ("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  565.57.01  Release Build  "
        "(dvs-builder@U16-A24-9-2)  Thu Oct 10 12:15:00 UTC 2024\n"
        "GCC version:  gcc version 13.3.0 (Ubuntu 13.3.0-6ubuntu2~24.04)\n")  # nix-community/nixGL#186


def needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("real character devices need root (os.mknod)")


def make_root(
    tmp_path: Path, version: str | None = OPEN.replace("565.57.01", "580.65.06"), *,
    char: tuple[str, ...] = ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia0"), caps: bool = False,
) -> Path:
    """A fake host root: /proc/driver/nvidia/version and /dev with real character devices (major 195)."""
    root = tmp_path / "root"
    (root / "dev" / "shm").mkdir(parents=True)
    if version is not None:
        (root / "proc" / "driver" / "nvidia").mkdir(parents=True)
        (root / "proc" / "driver" / "nvidia" / "version").write_text(version)
    if char:
        needs_root()
    for minor, name in enumerate(char):
        os.mknod(root / "dev" / name, stat.S_IFCHR | 0o666, os.makedev(195, minor))
    if caps:
        (root / "dev" / "nvidia-caps").mkdir()
        os.mknod(root / "dev" / "nvidia-caps" / "nvidia-cap1", stat.S_IFCHR | 0o400, os.makedev(236, 1))
    return root
