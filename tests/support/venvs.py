"""Real torch venvs for the integration tier: built once, cached, copied per scenario with hard links.

A scenario is ``cp -al`` of the cached venv (instant, no extra disk) changed with
``pip uninstall`` or by deleting and recreating a file: a hard-linked file is never
written in place, so the cached venv stays intact.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

CACHE = Path(os.environ.get("CUDADEPS_VENV_CACHE", Path.home() / ".cache" / "pytest-cudadeps"))
PYTHON = os.environ.get("CUDADEPS_VENV_PYTHON", "python3.11")  # the torch wheels on this machine are cp311
CUDA_TORCH = "2.14.1"
CPU_TORCH = "2.13.0"


def base_venv(torch_version: str) -> Path:
    """The cached venv with ``torch==torch_version``, built on first use (under a lock)."""
    venv = CACHE / f"torch-{torch_version}"
    done = venv / ".complete"
    if done.exists():
        return venv
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".lock-{torch_version}", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([PYTHON, "-m", "venv", str(venv)], check=True)
            subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                            "--disable-pip-version-check", f"torch=={torch_version}"], check=True)
            done.touch()
    return venv


def wheel(name: str, version: str) -> Path:
    """A wheel from the registry, downloaded once (``pip download --no-deps``) into the cache; never installed there."""
    folder = CACHE / "wheels"
    prefix = f"{name.replace('-', '_')}-{version}-"
    found = sorted(folder.glob(f"{prefix}*.whl"))
    if found:
        return found[0]
    folder.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock-wheels", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = sorted(folder.glob(f"{prefix}*.whl"))
        if not found:
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
                            "--python-version", "3.11", "--only-binary", ":all:", f"{name}=={version}", "-d",
                            str(folder)], check=True)
            found = sorted(folder.glob(f"{prefix}*.whl"))
    assert found, f"no wheel of {name} {version} in {folder}"
    return found[0]


def site_packages(venv: Path) -> Path:
    found = sorted((venv / "lib").glob("python3*/site-packages"))
    assert found, f"no site-packages in {venv}"
    return found[0]


def copy_venv(source: Path, target: Path) -> Path:
    """A hard-link copy: every file shared with ``source``, every folder new."""
    subprocess.run(["cp", "-al", str(source), str(target)], check=True)
    return target


def pip(venv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True)


def replace_file(path: Path, text: str) -> None:
    """Write new contents without touching the hard-linked original: unlink, then create."""
    path.unlink()
    path.write_text(text, encoding="utf-8")


def run_plugin(site: Path, *args: str, cwd: Path, env: dict[str, str] | None = None,
               activated: bool = True, replace_env: bool = False) -> subprocess.CompletedProcess[str]:
    """pytest of this checkout's venv with the plugin inspecting ``site`` (not sys.path).

    ``activated``: the checked venv's bin first on PATH and in VIRTUAL_ENV, as after `source bin/activate`, so
    that bare `pip`/`uv pip` fixes reach it and are printed bare; not activated, fixes name its interpreter.
    ``replace_env``: ``env`` is the whole environment (a job's shell), not additions to this process's."""
    base = {} if replace_env else dict(os.environ)
    venv = site.parents[2]
    if activated and (venv / "bin" / "python").exists():
        base["PATH"] = f"{venv / 'bin'}:{base.get('PATH', '')}"
        base["VIRTUAL_ENV"] = str(venv)
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--cuda-deps-only",
               f"--cuda-deps-path={site}", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True,
                          env={**base, **(env or {})}, timeout=600)
