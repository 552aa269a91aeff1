"""What we print is safe to paste and to show: fix commands are inert shell words, control characters escaped."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from pytest_cudadeps.checks.findings import failed, skipped
from pytest_cudadeps.core.text import quote
from pytest_cudadeps.engine.installers import install_command, reinstall_command, uninstall_command

HOSTILE = [
    "nvidia-cublas==13.1.1.3.*",
    "x`touch MARK1`",
    "x$(touch MARK2)",
    "x'; touch MARK3; echo '",
    "x\"$(touch MARK4)\"",
    "x\ntouch MARK5",
    "",
]


@pytest.mark.parametrize("spec", HOSTILE)
def test_a_quoted_spec_is_one_inert_shell_word(tmp_path: Path, spec: str) -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is needed to run the fix line")
    line = install_command("pip", spec).replace("pip install", "printf %s", 1)
    result = subprocess.run([bash, "-c", line], cwd=tmp_path, capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    assert result.stdout == spec
    assert list(tmp_path.iterdir()) == []  # nothing ran


@pytest.mark.parametrize("spec", HOSTILE)
def test_every_fix_command_splits_back_into_the_spec(spec: str) -> None:
    assert shlex.split(install_command("uv", spec)) == ["uv", "pip", "install", spec]  # the command, nothing else
    assert shlex.split(reinstall_command("pip", spec)) == ["pip", "install", "--force-reinstall", "--no-deps", spec]
    assert shlex.split(uninstall_command("pip", spec)) == ["pip", "uninstall", "-y", spec]
    assert shlex.split(uninstall_command("uv", spec)) == ["uv", "pip", "uninstall", spec]


def test_plain_specs_look_as_before() -> None:
    assert quote("jax") == "'jax'"
    assert install_command("pip", "nvidia-cuda-runtime==13.0.96.*") == "pip install 'nvidia-cuda-runtime==13.0.96.*'"
    assert uninstall_command("pip", "nvidia-nccl-cu12") == "pip uninstall -y nvidia-nccl-cu12"


def test_a_finding_never_carries_a_raw_control_character() -> None:
    finding = failed("requires", "torch>x\x1b", "x is not installed (torch was installed by \x1b]0;pwned\x07)",
                     "installed: \x00nothing", fix=install_command("\x1b[2J", "x"), summary="a\x1bb")
    text = finding.text()
    assert "\x1b" not in text
    assert "\x00" not in text
    assert "\x07" not in text
    assert "torch was installed by \\x1b]0;pwned\\x07" in text
    assert finding.subject == "torch>x\\x1b"
    assert dict(finding.facts)["summary"] == "a\\x1bb"
    assert skipped("c", "s", "why \x1b").message == "why \\x1b"
    assert failed("c", "s", "two\nlines").text() == "two\nlines"
