"""The plugin never imports torch, and costs nothing when it is off: checked in fresh processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support import sitebuilder as sb

HEAVY = ("torch", "elftools", "pynvml")
# Written into a fake torch package: proves an import happened even if something swallowed the error.
FAKE_TORCH_INIT = """\
import os
open(os.environ["CUDADEPS_TORCH_IMPORTED"], "w").close()
raise ImportError("pytest-cudadeps must read torch, never import it")
"""
# A pytest plugin (loaded with -p) that records which heavy modules the run imported.
PROBE_PLUGIN = f"""\
import json, os, sys

def pytest_unconfigure(config):
    with open(os.environ["CUDADEPS_MODULES_OUT"], "w") as out:
        json.dump(sorted(m for m in {HEAVY!r} if m in sys.modules), out)
    with open(os.environ["CUDADEPS_MODULES_OUT"] + ".ours", "w") as out:
        json.dump(sorted(m for m in sys.modules if m.startswith("pytest_cudadeps")), out)
"""


def child(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


def test_importing_the_plugin_imports_no_heavy_module(tmp_path: Path) -> None:
    code = (
        "import json, sys\n"
        "import pytest_cudadeps.plugin\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} + ('pytest_cudadeps.requirements', 'packaging.requirements')"
        " if m in sys.modules)))\n"
    )
    result = child(["-c", code], tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def fake_torch_tree(tmp_path: Path) -> tuple[Path, Path]:
    site = sb.torch_2_14_1(tmp_path / "site")
    (site / "torch" / "__init__.py").write_text(FAKE_TORCH_INIT, encoding="utf-8")
    (tmp_path / "probe_modules.py").write_text(PROBE_PLUGIN, encoding="utf-8")
    return site, tmp_path / "torch-imported"


def test_a_checked_run_reads_torch_without_importing_it(tmp_path: Path) -> None:
    site, imported = fake_torch_tree(tmp_path)
    modules = tmp_path / "modules.json"
    # The fake torch is importable (on PYTHONPATH) and found through sys.path, as a real install is.
    result = child(["-m", "pytest", "-p", "probe_modules", "-p", "no:cacheprovider", "--cuda-deps-only", "--co", "-q"],
                   tmp_path, PYTHONPATH=os.pathsep.join([str(tmp_path), str(site)]),
                   CUDADEPS_TORCH_IMPORTED=str(imported), CUDADEPS_MODULES_OUT=str(modules))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cudadeps::requires[torch>nvidia-cuda-runtime]" in result.stdout.splitlines()
    assert not imported.exists()
    assert json.loads(modules.read_text()) == []


def test_a_run_without_the_flag_imports_nothing_heavy(tmp_path: Path) -> None:
    site, imported = fake_torch_tree(tmp_path)
    (tmp_path / "test_user.py").write_text("def test_user():\n    pass\n", encoding="utf-8")
    modules = tmp_path / "modules.json"
    result = child(["-m", "pytest", "-p", "probe_modules", "-p", "no:cacheprovider", "-q"], tmp_path,
                   PYTHONPATH=os.pathsep.join([str(tmp_path), str(site)]),
                   CUDADEPS_TORCH_IMPORTED=str(imported), CUDADEPS_MODULES_OUT=str(modules))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert not imported.exists()
    assert json.loads(modules.read_text()) == []
    # installed but off: the plugin and its option reader, not even the settings
    ours = json.loads(Path(f"{modules}.ours").read_text())
    assert ours == ["pytest_cudadeps", "pytest_cudadeps._version", "pytest_cudadeps.options", "pytest_cudadeps.plugin"]
