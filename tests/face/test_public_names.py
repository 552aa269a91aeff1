"""The public names of the package: importable from ``pytest_cudadeps`` itself, each the class its module defines,
and imported only when asked (pytest imports the package in every run where the plugin is installed)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import pytest_cudadeps
from pytest_cudadeps.checks.findings import Finding, Outcome
from pytest_cudadeps.fixture import CudaEnv
from pytest_cudadeps.options import CudaDepsWarning
from pytest_cudadeps.plugin import CudaDepsWarning as PluginWarning
from pytest_cudadeps.report.causes import Cause


def test_each_public_name_is_its_modules_class() -> None:
    found = {name: getattr(pytest_cudadeps, name) for name in pytest_cudadeps.__all__ if name != "__version__"}
    assert found == {"Cause": Cause, "CudaDepsWarning": CudaDepsWarning, "CudaEnv": CudaEnv, "Finding": Finding,
                     "Outcome": Outcome}
    assert PluginWarning is CudaDepsWarning  # -W error::pytest_cudadeps.plugin.CudaDepsWarning, as documented
    assert sorted(dir(pytest_cudadeps)) == sorted(pytest_cudadeps.__all__)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'Nothing'"):
        pytest_cudadeps.Nothing  # noqa: B018


def test_importing_the_package_imports_none_of_them() -> None:
    code = ("import json, sys; import pytest_cudadeps; "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('pytest_cudadeps'))))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert loaded == ["pytest_cudadeps", "pytest_cudadeps._version"]
