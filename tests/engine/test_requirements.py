"""The closure of Requires-Dist: which distributions are roots by default, and requirements gated by one extra.

What the declared-dependency check says of the closure is tests/checks/test_requires.py's; the property tests of the
closure are test_requirements_properties.py, its bounds test_requirements_bounds.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from pytest_cudadeps.checks.findings import Outcome
from pytest_cudadeps.engine.distributions import scan
from pytest_cudadeps.engine.requirements import _extra_gate, default_roots
from tests.support import sitebuilder as sb
from tests.support.declared import requires_subjects, run


def test_default_roots_are_torch_and_cuda_users_not_reached_from_it(tmp_path: Path) -> None:
    app = sb.Dist("my-cuda-app", "1.0", ("nvidia-cufft",))
    site = sb.torch_2_14_1(tmp_path / "site", extra=[app, sb.Dist("unrelated", "1.0", ("filelock",))])
    env = scan([site])
    # cuda-toolkit, cuda-bindings, nvidia-cudnn-cu13, nvidia-cusolver... require nvidia-*/cuda-* but torch reaches them
    assert [str(d) for d in default_roots(env)] == ["torch 2.14.1", "my-cuda-app 1.0"]
    found = run(site)
    assert found["requires[my-cuda-app>nvidia-cufft]"].outcome is Outcome.PASS
    assert found["requires[my-cuda-app>nvidia-nvjitlink]"].outcome is Outcome.PASS
    assert not any(name.startswith(("requires[cuda-toolkit>", "requires[nvidia-cudnn-cu13>")) for name in found)


def ring(names: Sequence[str], *, wheel: str = "nvidia-cufft") -> list[sb.Dist]:
    """Distributions that each require the next (the last the first) and ``wheel``."""
    return [sb.Dist(name, "1.0", (names[(i + 1) % len(names)], wheel)) for i, name in enumerate(names)]


def test_a_cycle_of_50_cuda_users_is_one_root_the_lowest_name(tmp_path: Path) -> None:
    names = [f"ring-{i:02d}" for i in range(50)]
    site = sb.build(tmp_path / "site", [*ring(names[::-1]), sb.Dist("nvidia-cufft", "12.0.0.61")])
    found = run(site)
    assert [str(d) for d in default_roots(scan([site]))] == ["ring-00 1.0"]
    # the one root's closure: the 49 other members, itself through the cycle, and the wheel
    assert requires_subjects(found, "ring-00") == {*names, "nvidia-cufft"}
    assert len(found) == 52  # was 2,551: every member a root with the same 51 requirements


def test_two_cycles_are_two_roots_and_a_user_of_a_cycle_covers_it(tmp_path: Path) -> None:
    dists = [*ring(["b", "a"]), *ring(["y", "x"]), sb.Dist("nvidia-cufft", "12.0.0.61")]
    site = sb.build(tmp_path / "site", dists)
    assert [d.key for d in default_roots(scan([site]))] == ["a", "x"]
    other = sb.build(tmp_path / "other", [*dists, sb.Dist("user", "1.0", ("y", "nvidia-curand"))])
    assert [d.key for d in default_roots(scan([other]))] == ["a", "user"]


def test_this_plugin_and_nvml_bindings_are_never_roots(tmp_path: Path) -> None:
    """pytest-cudadeps requires nvidia-ml-py, which carries no CUDA library: neither makes it a root."""
    site = tmp_path / "site"
    sb.build(site, [
        sb.Dist("pytest-cudadeps", "0.1.0", requires=("pytest>=8", "nvidia-ml-py>=12")),
        sb.Dist("gpustat", "1.1", requires=("nvidia-ml-py>=12",)),
        sb.Dist("nvidia-ml-py", "13.615.71"),
        sb.Dist("cupy-cuda13x", "14.0", requires=("cuda-pathfinder>=1",)),
    ])
    env = scan([site])
    assert [d.name for d in default_roots(env)] == ["cupy-cuda13x"]


@pytest.mark.parametrize(("raw", "gate"), [
    ("nvidia-cublas==13.1.1.3.*; (sys_platform == 'linux' or sys_platform == 'win32') and extra == 'all'", "all"),
    ('optree>=0.13.0; extra == "optree"', "optree"),
    ("e (>=1.0) ; extra == 'X_Y'", "x-y"),
    ('g; (a == "1" or b == "2") and c == "3" and extra == "w"', "w"),
    ('a; python_version < "3" or extra == "x"', None),  # true without the extra
    ('c; python_version >= "3.8" or sys_platform == "x" and extra == "z"', None),
    ('f; (python_version >= "3") or (os_name == "nt") and extra == "q"', None),
    ('d; extra == "x" and python_version > "3"', None),  # not in the recognised form: parsed in full
    ("torch", None),
])
def test_a_requirement_gated_by_one_extra_is_recognised_without_parsing(raw: str, gate: str | None) -> None:
    assert _extra_gate(raw) == gate
