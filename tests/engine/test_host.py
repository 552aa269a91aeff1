"""Reading the host: fake /proc and /dev trees (real character devices, a FIFO) and the capped reader of small files.

What the host[...] items make of it is tests/checks/test_host.py's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_cudadeps.engine import host
from pytest_cudadeps.engine.host import parse_kernel_module_version, read_host, read_small_file
from tests.support.host_tree import OPEN, PROPRIETARY, make_root


@pytest.mark.parametrize(("text", "version"), [
    (PROPRIETARY, "550.90.07"),
    (OPEN, "565.57.01"),
    ("NVRM version: NVIDIA UNIX Open Kernel Module for aarch64  580.65.06  Release Build  (x@y)  Sun Jul 27\n",
     "580.65.06"),
    ("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  555.58  Release Build  (portage@localhost)\n", "555.58"),
    ("GCC version:  gcc version 12.2.0 (GCC)\n", None),
    ("NVRM version: something else entirely\n", None),
])
def test_both_kernel_module_formats_are_parsed(text: str, version: str | None) -> None:
    assert parse_kernel_module_version(text) == version


def test_read_host_on_a_fake_tree(tmp_path: Path) -> None:
    root = make_root(tmp_path, PROPRIETARY, char=("nvidiactl", "nvidia-uvm", "nvidia2", "nvidia10", "nvidia1"),
                     caps=True)
    (root / "dev" / "nvidia-uvm-tools").write_text("")  # a regular file where a device belongs
    facts = read_host(root, {"CUDA_VISIBLE_DEVICES": "1", "NVIDIA_VISIBLE_DEVICES": "all", "LD_LIBRARY_PATH": "/x"})
    assert facts.kernel_module == "550.90.07"
    assert facts.kernel_module_text == PROPRIETARY.splitlines()[0]
    assert [(Path(n.path).name, n.kind) for n in facts.nodes] == [
        ("nvidiactl", "char"), ("nvidia-uvm", "char"), ("nvidia-uvm-tools", "regular file")]
    assert [Path(n.path).name for n in facts.gpu_nodes] == ["nvidia1", "nvidia2", "nvidia10"]  # numeric order
    assert facts.mig_caps == ("nvidia-cap1",)
    assert (facts.cuda_visible_devices, facts.nvidia_visible_devices, facts.ld_library_path) == ("1", "all", "/x")
    bare = read_host(make_root(tmp_path / "bare", None, char=()), {})
    assert bare.kernel_module is None
    assert bare.mig_caps is None
    assert bare.cuda_visible_devices is None
    assert bare.kernel_module_text == f"{tmp_path / 'bare' / 'root'}/proc/driver/nvidia/version: not found"
    assert [n.kind for n in bare.nodes] == ["missing"] * 3
    assert bare.gpu_nodes == ()


def test_a_fifo_in_place_of_the_version_file_does_not_hang(tmp_path: Path) -> None:
    root = make_root(tmp_path, None, char=())
    (root / "proc" / "driver" / "nvidia").mkdir(parents=True)
    os.mkfifo(root / "proc" / "driver" / "nvidia" / "version")  # no writer: a blocking open would wait forever
    code = ("import sys; from pathlib import Path; from pytest_cudadeps.engine.host import read_host; "
            "f = read_host(Path(sys.argv[1]), {}); print(f.kernel_module, '|', f.kernel_module_text)")
    out = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True, timeout=20,
                         check=True)
    assert out.stdout.strip() == f"None | {root}/proc/driver/nvidia/version: not a regular file"


def test_small_file_reads_are_capped_and_refuse_what_is_not_a_regular_file(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"x" * (host.READ_CAP + 1))
    assert read_small_file(big) == (None, f"larger than {host.READ_CAP} bytes")
    exact = tmp_path / "exact"
    exact.write_bytes(b"y" * host.READ_CAP)
    assert read_small_file(exact) == ("y" * host.READ_CAP, "")
    assert read_small_file(tmp_path) == (None, "not a regular file")
    assert read_small_file(tmp_path / "absent") == (None, "not found")
    # the real /proc: size 0 in stat, content on read
    text, why = read_small_file(Path("/proc/self/status"))
    assert why == ""
    assert text is not None
    assert text.startswith("Name:")
