"""The Markdown report (``cudadeps report``): its sections on a fake tree, run as a user would, and the redaction."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_cudadeps.report.markdown import Redactor
from tests.support.plugin import cuda_site


def report(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest_cudadeps", "report", "--cuda-deps-no-probes", *args], cwd=cwd,
                          capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=300)


def test_redaction_of_home_user_and_host() -> None:
    redact = Redactor("/home/alice", "alice", "gpu-node-17.example.org")
    text = ("/home/alice/venv/lib/python3.11/site-packages/torch/version.py on gpu-node-17.example.org; "
            "/data/alice/cache; alice@gpu-node-17.example.org; /home/alicex/other; malice; alice's root cause")
    assert redact(text) == ("~/venv/lib/python3.11/site-packages/torch/version.py on <host>; /data/<user>/cache; "
                            "<user>@<host>; /home/alicex/other; malice; alice's root cause")


def test_a_user_named_root_keeps_the_root_causes() -> None:
    redact = Redactor("/root", "root", "vm")
    assert redact("root cause missing[torch] in /root/venv and /srv/root/x; roots: 1; nvml") == \
        "root cause missing[torch] in ~/venv and /srv/<user>/x; roots: 1; nvml"


def test_the_report_of_a_broken_tree_whose_torch_cannot_be_imported(pytester: pytest.Pytester) -> None:
    site = cuda_site(pytester, omit=["nvidia-cuda-runtime", "nvidia-cublas"])
    # torch on the path, and importing it fails: the report is made from files, never from `import torch`
    (site / "torch" / "__init__.py").write_text("raise ImportError('libcudnn.so.9: cannot open shared object file')\n")
    result = report(pytester.path, f"--cuda-deps-path={site}",
                    env={"HOME": str(pytester.path), "PYTHONPATH": os.pathsep.join([str(site), *sys.path])})
    assert result.returncode == 1, result.stdout + result.stderr
    text = result.stdout
    assert text.startswith("## CUDA environment report (pytest-cudadeps ")
    assert "**Verdict:** cudadeps: 2 failed checks from 1 root cause\n" in text
    assert "1. `missing[torch]` (2 failed checks): torch 2.14.1 is installed without 2 of the distributions" in text
    assert "   pip install 'nvidia-cublas==13.1.1.3.*' 'nvidia-cuda-runtime==13.0.96.*'\n   ```" in text
    assert "| torch | 2.14.1 | CUDA 13.0 | ~/site/torch/version.py | pip |" in text
    assert "### Driver and GPUs\n\nnot checked (--cuda-deps-no-probes)" in text
    assert "\n| pip | " in text  # the installers
    assert str(pytester.path) not in text  # the home folder, redacted
    assert socket.gethostname() not in text.replace("<host>", "")


def test_check_markdown_is_the_report(pytester: pytest.Pytester) -> None:
    site = cuda_site(pytester)
    result = subprocess.run([sys.executable, "-m", "pytest_cudadeps", "check", "--markdown", "--cuda-deps-no-probes",
                             f"--cuda-deps-path={site}"], cwd=pytester.path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0
    assert "**Verdict:** cudadeps: healthy: " in result.stdout
    assert "### Root causes" not in result.stdout
