"""Property tests of the Requires-Dist closure, marker evaluation and the choice of roots.

Random environments of up to six in-memory distributions whose requirements name each other
(spelled ``Pkg_A``, ``pkg.a``...), uninstalled names and ``nvidia-*`` wheels, with extras
(provided or not), markers on ``extra`` and on the interpreter, and cycles.  Each is checked
against :func:`reference`, a plain fixpoint over (distribution, extra) pairs written from the
rule in requirements.py's docstring alone: no queue, no visited set, no shortcut for
``extra == "x"`` markers, no cache.

Examples per test: 150 by default (the file runs in a few seconds); ``HYPOTHESIS_PROFILE=thorough``
runs 3,000 (about a minute), for CI's nightly job or after a change to requirements.py.
"""

from __future__ import annotations

import os
from collections import Counter, deque
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from pytest_cudadeps.engine.distributions import Distribution, Environment
from pytest_cudadeps.engine.requirements import _applies, _extra_gate, closure, default_roots, requires_cuda
from tests.support.bounds import watchdog

settings.register_profile("default", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

NAMES = ("pkg-a", "pkg-b", "pkg-c", "pkg-d", "pkg-e", "pkg-f")
EXTRAS = ("x", "y")  # provided by every distribution; "z" by none
SITE = Path("/nonexistent/site-packages")  # nothing is read: the distributions live in memory
ATOMS = (
    'extra == "x"', 'extra == "y"', "extra == 'X'", 'extra != "x"', '"y" == extra',
    'os_name == "posix"', 'os_name == "nt"', 'python_version >= "3.9"', 'sys_platform == "win32"',
)


def spellings(name: str) -> list[str]:
    """Ways a requirement may spell an installed name (all canonicalize to it)."""
    return [name, name.upper().replace("-", "_"), name.replace("-", "."), name.capitalize()]


markers = st.recursive(
    st.sampled_from(ATOMS),
    lambda inner: st.tuples(inner, st.sampled_from((" and ", " or ")), inner).map(lambda t: f"({t[0]}{t[1]}{t[2]})"),
    max_leaves=4,
)
# a third each: an installed name (cycles are frequent), a CUDA wheel (makes a root candidate), anything else
targets = st.one_of(st.sampled_from(NAMES).flatmap(lambda n: st.sampled_from(spellings(n))), st.just("nvidia-cufft"),
                    st.sampled_from(("not-installed", "nvidia-ml-py")))


@st.composite
def requirement_lines(draw: st.DrawFn) -> str:
    name = draw(targets)
    extras = draw(st.lists(st.sampled_from(("x", "y", "z", "X")), max_size=2, unique=True))
    line = name + (f"[{','.join(extras)}]" if extras else "") + draw(st.sampled_from(("", ">=1", "<0")))
    marker = draw(st.none() | markers)
    return f"{line}; {marker}" if marker else line


def make_dist(name: str, requires: Iterable[str]) -> Distribution:
    return Distribution(name, "1.0", SITE, SITE / f"{name.replace('-', '_')}-1.0.dist-info", tuple(requires),
                        frozenset(EXTRAS), "pip")


def make_env(dists: Iterable[Distribution]) -> Environment:
    ordered = tuple(dists)
    return Environment((SITE,), ordered, (), {d.key: (d,) for d in ordered})


@st.composite
def environments(draw: st.DrawFn) -> list[Distribution]:
    """Installed distributions; the first is the root.  Cycles arise whenever two name each other."""
    count = draw(st.integers(1, len(NAMES)))
    return [make_dist(name, draw(st.lists(requirement_lines(), max_size=4))) for name in NAMES[:count]]


@st.composite
def cuda_users(draw: st.DrawFn) -> list[Distribution]:
    """Distributions that name each other often and require a CUDA wheel half the time: candidate roots in cycles."""
    count = draw(st.integers(2, len(NAMES)))
    dists = []
    for name in NAMES[:count]:
        others = draw(st.lists(st.sampled_from(NAMES[:count]).flatmap(lambda n: st.sampled_from(spellings(n))),
                               min_size=1, max_size=3))
        lines = [f"{other}; {draw(markers)}" if draw(st.booleans()) else other for other in others]
        dists.append(make_dist(name, [*lines, *(["nvidia-cufft"] if draw(st.booleans()) else [])]))
    return dists


# --- the reference --------------------------------------------------------------------------------


def marker_true(marker: Marker | None, extra: str) -> bool:
    return marker is None or marker.evaluate({"extra": extra})


def belongs(raw: str, extra: str) -> bool:
    """The rule: node (D, "") takes what is true with no extra; (D, e) what is true with e and false without."""
    marker = Requirement(raw).marker
    if not extra:
        return marker_true(marker, "")
    return marker_true(marker, extra) and not marker_true(marker, "")


def edges(env: Environment, node: tuple[str, str]) -> Iterable[tuple[str, str]]:
    dist = env.get(node[0])
    assert dist is not None
    for raw in dist.requires:
        if belongs(raw, node[1]):
            req = Requirement(raw)
            target = env.get(req.name)
            if target is not None:
                yield from ((target.key, e) for e in ("", *(canonicalize_name(x) for x in req.extras)))


def reference(env: Environment, root: Distribution) -> tuple[Counter[tuple[str, str, str]], dict[tuple[str, str], int]]:
    """(node key, node extra, requirement) of every demand, counted; and each node's distance from the root."""
    nodes = {(root.key, "")}
    while True:  # the fixpoint: add every pair an edge reaches until nothing changes
        grown = nodes | {target for node in nodes for target in edges(env, node)}
        if grown == nodes:
            break
        nodes = grown
    demands: Counter[tuple[str, str, str]] = Counter()
    for key, extra in nodes:
        dist = env.get(key)
        assert dist is not None
        demands.update((key, extra, str(Requirement(raw))) for raw in dist.requires if belongs(raw, extra))
    distance, queue = {(root.key, ""): 0}, deque([(root.key, "")])
    while queue:  # plain BFS distances, for the claim that the chain kept is a shortest one
        node = queue.popleft()
        for target in edges(env, node):
            if target not in distance:
                distance[target] = distance[node] + 1
                queue.append(target)
    assert set(distance) == nodes
    return demands, distance


def node_of(label: str) -> tuple[str, str]:
    """("pkg-a", "x") from a chain label "pkg-a[x] 1.0" ("pkg-a 1.0": no extra)."""
    name = label.rsplit(" ", 1)[0]
    if "[" in name:
        base, extra = name[:-1].split("[")
        return canonicalize_name(base), extra
    return canonicalize_name(name), ""


# --- the properties -------------------------------------------------------------------------------


@given(environments())
def test_the_closure_is_the_reference_fixpoint_with_shortest_chains(dists: list[Distribution]) -> None:
    env = make_env(dists)
    with watchdog():  # a cycle the walk failed to close would hang here, not pass
        found = closure(env, dists[0])
    assert found.problems == ()  # every generated line and marker is valid
    expected, distance = reference(env, dists[0])
    got = Counter((*node_of(d.chain[-1]), str(d.requirement)) for d in found.demands)
    assert got == expected
    for demand in found.demands:
        assert len(demand.chain) - 1 == distance[node_of(demand.chain[-1])]


@given(environments(), st.permutations(range(len(NAMES))))
def test_the_closure_is_deterministic_whatever_the_order_of_the_path(dists: list[Distribution],
                                                                     order: list[int]) -> None:
    shuffled = [dists[i] for i in order if i < len(dists)]
    first = [d.describe() for d in closure(make_env(dists), dists[0]).demands]
    again = [d.describe() for d in closure(make_env(dists), dists[0]).demands]
    other = [d.describe() for d in closure(make_env(shuffled), dists[0]).demands]
    assert first == again == other


@given(requirement_lines(), st.sampled_from(("", "x", "y", "z")))
def test_marker_evaluation_and_the_extra_gate_agree_with_the_rule(raw: str, extra: str) -> None:
    assert _applies(raw, extra) == belongs(raw, extra)
    gate = _extra_gate(raw)
    if gate is not None:  # skipped unparsed for every other extra: the marker must be false there
        assert not any(belongs(raw, other) for other in ("", "x", "y", "z") if other != gate)


@given(cuda_users() | environments(), st.permutations(range(len(NAMES))))
def test_every_cuda_user_is_checked_under_exactly_one_kind_of_root(dists: list[Distribution], order: list[int]) -> None:
    env = make_env(dists)
    roots = default_roots(env)
    reach = {d.key: demanded(env, d) for d in dists}
    candidates = {d.key for d in dists if requires_cuda(d)}
    keys = [r.key for r in roots]
    assert set(keys) <= candidates
    for key in candidates:  # checked as a root, or inside a root's closure
        assert key in keys or any(key in reach[root] for root in keys)
    for root in keys:  # and never twice: no root reaches another (a cycle keeps its lowest name only)
        assert not any(root in reach[other] for other in keys if other != root)
    shuffled = make_env([dists[i] for i in order if i < len(dists)])
    assert [r.key for r in default_roots(shuffled)] == keys


def demanded(env: Environment, dist: Distribution) -> set[str]:
    """The installed distributions ``dist``'s closure asks for (itself only when a cycle comes back to it)."""
    return {target[0] for node in reference(env, dist)[1] for target in edges(env, node)}


@pytest.mark.parametrize(("requires", "expected"), [
    (["NVIDIA_CuBLAS>=13"], True),  # spelled as a wheel's METADATA may: normalized to nvidia-cublas
    ([" cuda.toolkit[cudart]==13.0.3; extra == 'cuda'"], True),
    (["nvidia-ml-py>=12"], False),  # NVML's bindings: no CUDA library
    (["numpy", "typing-extensions; python_version < '3.10'"], False),
    (["nvidia-cudnn-cu13 @@ not a requirement", "torch"], False),  # unparsable: not a CUDA requirement
])
def test_requires_cuda_reads_names_as_normalized(requires: list[str], expected: bool) -> None:
    assert requires_cuda(make_dist("user", requires)) is expected
