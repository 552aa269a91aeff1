"""Every printed fix, run exactly as printed from a shell where the venv is not on PATH, repairs what it names.

The states and the loop are tests/support/fixloop.py's.  The states that download gigabytes to repair run only
with CUDADEPS_FIX_LOOP=all (the README's table is made that way: ``python -m tests.support.fixloop``).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support import fixloop, venvs

pytestmark = pytest.mark.integration

ALL = os.environ.get("CUDADEPS_FIX_LOOP") == "all"


@pytest.mark.parametrize("state", fixloop.STATES, ids=[s.name for s in fixloop.STATES])
def test_the_printed_fix_repairs_the_state(state: fixloop.State, cuda_venv: Path, tmp_path: Path) -> None:
    if state.cost == "large" and not ALL:
        pytest.skip("downloads gigabytes to repair: CUDADEPS_FIX_LOOP=all")
    row = fixloop.loop(state, tmp_path)
    assert row.before.returncode == (1 if state.causes else 0), row.before.output
    assert len(row.before.causes) == state.causes, row.before.causes
    python = str(tmp_path / "venv" / "bin" / "python")
    for fix, status in row.fixes:
        assert status == 0, fix
        if " pip " in fix:  # the venv is not on PATH: a pip fix must name its interpreter to reach it
            assert python in fix
    if state.causes:
        assert row.repaired, row.after.output if row.after else row.before.output
    if state.truth is not None:  # the real loader agrees: broken before, working after (healthy states: working)
        assert row.truth_before == (1 if state.causes else 0)
        assert row.truth_after in (None, 0)


def test_the_old_libstdcxx_is_what_the_real_loader_refuses(cuda_venv: Path, tmp_path: Path) -> None:
    """The referee: `import torch` with the built libstdc++ first fails with the loader's version error."""
    folder = fixloop.old_libstdcxx(tmp_path / "old").parent
    done = subprocess.run([str(cuda_venv / "bin" / "python"), "-c", "import torch"], capture_output=True, text=True,
                          env=fixloop.job_env({"LD_LIBRARY_PATH": str(folder)}), timeout=300)
    assert done.returncode == 1
    assert f"{folder}/libstdc++.so.6: version `" in done.stderr
    assert "' not found (required by " in done.stderr
    assert venvs.site_packages(cuda_venv).exists()
