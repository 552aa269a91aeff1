"""Integration tier: cuda-bindings[DIST] on a hard-link copy of the cached cuda-bindings-12 venv (cuda-python 12.9.10)
moved to `pip install 'cuda-python==13.*'` (cuda-bindings 13, without cuda.cudart) beside a package whose code does
`from cuda import cudart`; the printed fix, run as printed with the venv not activated, makes its import work."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.support import fixloop, venvs

pytestmark = pytest.mark.integration
CHECKOUT = Path(__file__).resolve().parents[2]
CODE = "from cuda import cudart\n\n\ndef version():\n    return cudart.cudaRuntimeGetVersion()\n"


def legacy_wheel(folder: Path) -> Path:
    """legacy-user 1.0: Requires-Dist cuda-python>=12, its __init__.py importing cuda.cudart."""
    files = {
        "legacy_user/__init__.py": CODE,
        "legacy_user-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: legacy-user\nVersion: 1.0\n"
                                              "Requires-Dist: cuda-python>=12\n",
        "legacy_user-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(text.encode())}")
    files["legacy_user-1.0.dist-info/RECORD"] = "\n".join([*record, "legacy_user-1.0.dist-info/RECORD,,"]) + "\n"
    wheel = folder / "legacy_user-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return wheel


def imports(venv: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(venv / "bin" / "python"), "-W", "ignore", "-c", "import legacy_user"], cwd="/",
                          capture_output=True, text=True, timeout=300, env={"PATH": "/usr/bin:/bin"})


def test_a_package_importing_cuda_cudart_beside_cuda_bindings_13_is_one_cause_whose_pin_repairs_it(
        tmp_path: Path) -> None:
    cached = venvs.CACHE / "cuda-bindings-12"
    if not (cached / ".complete").exists():
        pytest.skip(f"{cached} is not cached")
    venv = venvs.copy_venv(cached, tmp_path / "venv")
    for args in (("install", "-q", "cuda-python==13.*"), ("install", "-q", "--no-deps", str(legacy_wheel(tmp_path)))):
        done = venvs.pip(venv, *args)
        assert done.returncode == 0, done.stderr[-3000:]
    assert "cannot import name 'cudart' from 'cuda'" in imports(venv).stderr  # the referee
    env = fixloop.job_env({})
    plugin = {"PYTHONPATH": str(CHECKOUT)}
    before = fixloop.check(venv, {**env, **plugin}, tmp_path)
    assert before.returncode == 1, before.output
    assert [c["id"] for c in before.causes] == ["cuda-bindings[legacy-user]"]
    assert before.causes[0]["fix"].endswith(" -m pip install 'cuda-python<13'")  # names the venv's interpreter
    status, env, output = fixloop.run_fix(before.causes[0]["fix"], env, tmp_path)
    assert status == 0, output
    after = fixloop.check(venv, {**env, **plugin}, tmp_path)
    assert after.returncode == 0, after.output
    assert imports(venv).returncode == 0
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    item = next(f for f in report["findings"] if f["id"] == "cuda-bindings[legacy-user]")
    assert item["outcome"] == "pass"
