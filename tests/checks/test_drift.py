"""The drift items' fixes: a distribution's name and version come from a report anyone can write."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_cudadeps.checks.drift import _fix
from pytest_cudadeps.engine.baseline import ABSENT, Difference
from tests.support.shell import HOSTILE_NAME, assert_inert


@pytest.mark.parametrize(("baseline", "here"), [("1.0", "2.0"), (HOSTILE_NAME, "2.0"), (ABSENT, "2.0")])
def test_a_drift_fix_is_inert_when_pasted(tmp_path: Path, baseline: str, here: str) -> None:
    fix = _fix(Difference(f"dist:{HOSTILE_NAME}", baseline, here))
    assert fix.startswith(("pip install 'x$(touch PWNED)", "pip uninstall -y 'x$(touch PWNED)"))
    assert_inert(fix, tmp_path)
