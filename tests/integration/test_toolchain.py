"""Integration tier: toolchain[cuda-home] and toolchain[host-compiler] on a hard-link copy of the cached torch 2.14.1
venv with the real nvidia-cuda-nvcc wheel and a real JIT builder (flashinfer-python, installed without its
dependencies), the fix run as printed in a job's shell, and torch's own ``CUDA_HOME`` as the referee.

This host has /usr/local/cuda (which torch falls back to), so the check is asked with the fallback moved to a folder
that does not exist, as on a host without a system toolkit; torch is asked the same way, with its
``_find_cuda_home`` minus that fallback.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pytest_cudadeps.checks.findings import Outcome
from pytest_cudadeps.checks.toolchain import cuda_home_finding, host_compiler_finding
from pytest_cudadeps.core.text import quote
from pytest_cudadeps.engine.distributions import scan
from pytest_cudadeps.engine.toolchain import gnu_bound, host_config
from tests.support import fixloop, venvs

pytestmark = pytest.mark.integration

# torch 2.14.1's torch/utils/cpp_extension.py _find_cuda_home(), with /usr/local/cuda taken as absent
TORCH_CUDA_HOME = """\
import os, shutil
import torch.utils.cpp_extension as ext
home = os.environ.get('CUDA_HOME') or os.environ.get('CUDA_PATH')
if home is None and shutil.which('nvcc'):
    home = os.path.dirname(os.path.dirname(shutil.which('nvcc')))
fallback = '/usr/local/cuda' if os.path.exists('/usr/local/cuda') else None  # torch's guess #3, left out above
print(home, os.access(os.path.join(home, 'bin', 'nvcc'), os.X_OK) if home else False,
      ext._find_cuda_home() == (home or fallback))
"""


@pytest.fixture(scope="module")
def jit_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """torch 2.14.1 with `pip install --no-deps nvidia-cuda-nvcc flashinfer-python`."""
    venv = venvs.copy_venv(venvs.base_venv(venvs.CUDA_TORCH), tmp_path_factory.mktemp("jit") / "venv")
    done = venvs.pip(venv, "install", "-q", "--no-deps", "nvidia-cuda-nvcc", "nvidia-cuda-crt",
                     str(venvs.wheel("flashinfer-python", "0.7.4")))
    assert done.returncode == 0, done.stderr[-3000:]
    return venv


def torch_cuda_home(venv: Path, env: dict[str, str]) -> str:
    done = subprocess.run([str(venv / "bin" / "python"), "-c", TORCH_CUDA_HOME], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_the_wheels_nvcc_torch_does_not_find_fails_and_the_printed_export_makes_torch_find_it(
        jit_venv: Path, tmp_path: Path) -> None:
    site = venvs.site_packages(jit_venv)
    env = fixloop.job_env({})  # PATH=/usr/bin:/bin: no nvcc on it, no CUDA_HOME
    assert torch_cuda_home(jit_venv, env) == "None False True"  # OSError: CUDA_HOME environment variable is not set
    found = cuda_home_finding(scan([site]), env, default=tmp_path / "no-system-cuda")
    assert found is not None
    assert found.outcome is Outcome.FAIL
    assert found.fix == f"export CUDA_HOME={quote(str(site / 'nvidia' / 'cu13'))}"
    status, env, output = fixloop.run_fix(found.fix, env, tmp_path)
    assert status == 0, output
    after = cuda_home_finding(scan([site]), env, default=tmp_path / "no-system-cuda")
    assert after is not None
    assert after.outcome is Outcome.PASS
    assert torch_cuda_home(jit_venv, env) == f"{site / 'nvidia' / 'cu13'} True True"


def test_the_wheels_host_config_bounds_the_gcc_on_path(jit_venv: Path, tmp_path: Path) -> None:
    site = venvs.site_packages(jit_venv)
    bound = gnu_bound(host_config(site / "nvidia" / "cu13" / "bin" / "nvcc"))
    assert bound is not None
    assert bound >= 14  # nvidia-cuda-crt 13.x: `#if __GNUC__ > 15` or later
    env = {**fixloop.job_env({}), "CUDA_HOME": str(site / "nvidia" / "cu13")}
    found = host_compiler_finding(scan([site]), env)
    assert found is not None
    gcc = subprocess.run(["gcc", "-dumpfullversion"], capture_output=True, text=True, timeout=60, check=True).stdout
    expected = Outcome.PASS if int(gcc.split(".")[0]) <= bound else Outcome.FAIL
    assert found.outcome is expected, found.message
