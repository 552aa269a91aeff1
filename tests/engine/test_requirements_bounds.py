"""Requirement parsing and marker evaluation are bounded: deep nesting and long lines are problems, not crashes."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from packaging.markers import Marker, UndefinedComparison
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from pytest_cudadeps.engine import requirements
from pytest_cudadeps.engine.distributions import scan
from pytest_cudadeps.engine.requirements import (
    MAX_MARKER_DEPTH,
    MAX_REQUIREMENT_LENGTH,
    _applies,
    _extra_gate,
    _parse,
    closure,
    requirements_of,
)
from tests.support import sitebuilder as sb
from tests.support.bounds import watchdog


def nested(depth: int) -> str:
    """``x; (os_name == "posix" and (os_name == "posix" and (...)))``: packaging cannot flatten it away."""
    return "x; " + '(os_name == "posix" and ' * depth + 'os_name == "posix"' + ")" * depth


def parens(depth: int) -> str:
    """``x; (((os_name == "posix")))``: short enough for the length bound, deep enough for packaging's recursion."""
    return "x; " + "(" * depth + 'os_name == "posix"' + ")" * depth


@pytest.mark.parametrize("depth", [MAX_MARKER_DEPTH + 1, 300, 1500])  # 1500: RecursionError inside packaging before
def test_a_deeply_nested_marker_is_an_invalid_requirement(depth: int) -> None:
    found = _parse(parens(depth))
    assert found == f"it nests parentheses {depth} deep; at most {MAX_MARKER_DEPTH} are read"


def test_nesting_within_the_bound_is_parsed_and_evaluated() -> None:
    raw = nested(MAX_MARKER_DEPTH)
    assert isinstance(_parse(raw), Requirement)
    assert _applies(raw, "") is True


def test_a_recursion_error_in_evaluation_is_a_marker_that_cannot_be_evaluated(monkeypatch: pytest.MonkeyPatch) -> None:
    def deep(self: Marker, environment: object = None) -> bool:
        raise RecursionError

    monkeypatch.setattr(Marker, "evaluate", deep)
    with pytest.raises(UndefinedComparison, match="nested too deeply to evaluate"):
        _applies.__wrapped__('y; os_name == "posix"', "")


def test_an_over_long_line_is_refused_quickly() -> None:
    raw = "x; os_name == 'a'" + " " * 100_000 + "and" + " " * 100_000 + "extra == 'b' c"
    with watchdog():  # the old gate regex took minutes on this line
        assert _extra_gate(raw) is None
        assert _parse(raw) == f"it is {len(raw)} characters long; at most {MAX_REQUIREMENT_LENGTH} are read"


def test_the_walk_reports_a_nested_marker_and_goes_on(tmp_path: Path) -> None:
    app = sb.Dist("my-cuda-app", "1.0", ("nvidia-cufft", parens(400).replace("x;", "nvidia-curand;", 1)))
    site = sb.build(tmp_path / "site", [app, sb.Dist("nvidia-cufft", "12.0.0.61")])
    env = scan([site])
    found = closure(env, env.distributions[0])
    assert [d.key for d in found.demands] == ["nvidia-cufft"]
    assert [p.problem.split(" is not a valid requirement: ")[1] for p in found.problems] == [
        "it nests parentheses 400 deep; at most 32 are read"]


# The gate shortcut must agree with the regular expression it replaced, on any marker.
_OLD_GATE = re.compile(r"""(?:^|\s+and\s+)extra\s*==\s*['"]([^'"]+)['"]\s*$""")


def _old_extra_gate(raw: str) -> str | None:
    _, semicolon, marker = raw.partition(";")
    if not semicolon or "extra" not in marker:
        return None
    marker = marker.strip()
    match = _OLD_GATE.search(marker)
    if match is None or requirements._has_top_level_or(marker[:match.start()]):
        return None
    return str(canonicalize_name(match.group(1)))


_PIECES = ["extra", " ", "  ", "==", "'a'", '"b_c"', "and", " and ", " or ", "(", ")", "os_name", "'", "\t", "x"]


def test_the_gate_agrees_with_the_old_regular_expression() -> None:
    rng = random.Random(12)
    markers = ["extra == 'a'", "os_name == 'x' and extra == 'a'", "(a or b) and extra == 'a'",
               "a or b and extra == 'a'", "extra == 'a' and extra == 'b'", "andextra == 'a'", "x andextra == 'a'"]
    markers += ["".join(rng.choice(_PIECES) for _ in range(rng.randrange(1, 12))) for _ in range(20_000)]
    for marker in markers:
        raw = f"x; {marker}"
        assert _extra_gate.__wrapped__(raw) == _old_extra_gate(raw), marker


def test_requirements_of_reads_with_the_same_bounds_as_the_walk(tmp_path: Path) -> None:
    """The companion, Triton and framework checks ask requirements_of: a line nested 1500 deep (RecursionError
    inside packaging) is left to the metadata[...] item, the others are read."""
    site = tmp_path / "site"
    nested = "nvidia-curand; " + "(" * 1500 + 'os_name == "posix"' + ")" * 1500
    sb.write_dist(site, sb.Dist("ext", "1.0", ("torch==2.14.1", nested, "numpy; extra == 'images'")))
    ext = scan([site]).get("ext")
    assert ext is not None
    assert [str(r) for r in requirements_of(ext)] == ["torch==2.14.1"]
    assert [str(r) for r in requirements_of(ext, "images")] == ['numpy; extra == "images"']
