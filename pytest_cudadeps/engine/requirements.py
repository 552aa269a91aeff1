"""Declared dependencies: the closure of ``Requires-Dist`` from each root, extras followed.

``pip check`` evaluates every marker with no extra, so it never sees that torch 2.14
asks for ``cuda-toolkit[cudart]`` and through it for ``nvidia-cuda-runtime``.  Here a
node of the walk is a pair (distribution, extra): visiting ``cuda-toolkit`` for the
extra ``cudart`` takes exactly the requirements whose marker is true with
``extra == "cudart"`` and false without it.  The walk is breadth first, so the chain
kept for each requirement is the shortest one, and a visited pair is never visited
again, so cycles end.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from packaging.markers import Marker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from pytest_cudadeps.engine.distributions import Distribution, Environment, MetadataProblem
from pytest_cudadeps.tables.wheels import CUDA_PREFIXES, NOT_CUDA_WHEELS

if TYPE_CHECKING:
    pass

# how such a name can start before it is normalized (nvidia_cublas, NVIDIA.cublas, cuda_toolkit)
_CUDA_HEADS = ("nvidia", "cuda")
# Never a root: this plugin requires nvidia-ml-py for its own driver probe.
NEVER_ROOTS = frozenset({"pytest-cudadeps"})
_EXTRA_IN_MARKER = re.compile(r"""extra\s*==\s*['"]([^'"]+)['"]""")


@dataclass(frozen=True)
class Demand:
    """One requirement met on the walk, with the chain of distributions that led to it."""

    chain: tuple[str, ...]  # "torch 2.14.1", "cuda-toolkit[cudart] 13.0.3.0"
    requirement: Requirement

    @property
    def key(self) -> str:
        return canonicalize_name(self.requirement.name)

    def wanted(self) -> str:
        """``nvidia-cuda-runtime==13.0.96.*``: the requirement without its marker."""
        req = self.requirement
        extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
        return f"{req.name}{extras}{req.specifier}"

    def describe(self) -> str:
        return " > ".join((*self.chain, self.wanted()))


@dataclass(frozen=True)
class Closure:
    """Everything a root asks for, directly or through others, as the running interpreter sees it."""

    root: Distribution
    demands: tuple[Demand, ...]
    problems: tuple[MetadataProblem, ...]

    def by_key(self) -> dict[str, list[Demand]]:
        grouped: dict[str, list[Demand]] = {}
        for demand in self.demands:
            grouped.setdefault(demand.key, []).append(demand)
        return grouped


# Bounds on what packaging is asked to parse.  Real Requires-Dist lines are under 300 characters
# and nest parentheses two or three deep; packaging's parser recurses once per parenthesis and
# raised RecursionError (an INTERNALERROR) for a marker with hundreds of them.
MAX_REQUIREMENT_LENGTH = 4096
MAX_MARKER_DEPTH = 32


def _paren_depth(text: str) -> int:
    depth = deepest = 0
    for char in text:
        if char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")":
            depth -= 1
    return deepest


@cache
def _parse(raw: str) -> Requirement | str:
    """The requirement, or why it is not one (in words; bounded in length and nesting before packaging sees it)."""
    if len(raw) > MAX_REQUIREMENT_LENGTH:
        return f"it is {len(raw)} characters long; at most {MAX_REQUIREMENT_LENGTH} are read"
    depth = _paren_depth(raw)
    if depth > MAX_MARKER_DEPTH:
        return f"it nests parentheses {depth} deep; at most {MAX_MARKER_DEPTH} are read"
    try:
        return Requirement(raw)
    except InvalidRequirement as exc:
        return str(exc).splitlines()[0]
    except RecursionError:  # not reached within the bounds above; kept so that no input can crash the walk
        return "it is nested too deeply to parse"


def _marker_true(marker: Marker | None, extra: str) -> bool:
    return marker is None or marker.evaluate({"extra": extra})


@cache
def _applies(raw: str, extra: str) -> bool:
    """Whether a requirement belongs to the (distribution, extra) node being visited.

    Cached by the requirement's text: torch's closure is walked once per root and once to
    choose the roots, and packaging rebuilds the marker environment on every evaluation.
    Evaluation recurses once per nesting level, which :func:`_parse` bounded already; a
    RecursionError all the same is reported as a marker that cannot be evaluated.
    """
    req = _parse(raw)
    assert isinstance(req, Requirement)
    try:
        if not extra:
            return _marker_true(req.marker, "")
        return _marker_true(req.marker, extra) and not _marker_true(req.marker, "")
    except RecursionError:
        raise UndefinedComparison("the marker is nested too deeply to evaluate") from None


# The gate itself; what precedes it is checked without a regular expression, because
# `(?:^|\s+and\s+)extra...` searched from every position was quadratic in runs of spaces
# (0.44 s for a line with 8,000).
_GATE_AT_END = re.compile(r"""extra\s*==\s*['"]([^'"]+)['"]\s*$""")


def _has_top_level_or(text: str) -> bool:
    depth = 0
    for index, char in enumerate(text):
        depth += (char == "(") - (char == ")")
        if depth == 0 and text.startswith(" or ", index):
            return True
    return False


def _before_gate(marker: str, start: int) -> str | None:
    """A of ``A and extra == "x"`` ("" when the marker is the gate alone); None when the gate does not end an ``and``."""
    before = marker[:start]
    if not before:
        return ""
    stripped = before.rstrip()
    if stripped == before or not stripped.endswith("and") or not stripped[:-3][-1:].isspace():
        return None
    return stripped[:-3]


@cache
def _extra_gate(raw: str) -> str | None:
    """The extra a requirement belongs to when its marker is ``extra == "x"`` or ``A and extra == "x"``
    with no ``or`` outside parentheses in A; None for any other marker.

    Such a requirement is true only for that extra, so the walk skips it elsewhere without
    parsing it (fsspec alone has 60 such lines); any other marker is parsed and evaluated.
    """
    _, semicolon, marker = raw.partition(";")
    if not semicolon or "extra" not in marker or len(raw) > MAX_REQUIREMENT_LENGTH:
        return None  # an over-long line is refused by _parse
    marker = marker.strip()
    match = _GATE_AT_END.search(marker)
    if match is None:
        return None
    before = _before_gate(marker, match.start())
    if before is None or _has_top_level_or(before):
        return None
    return canonicalize_name(match.group(1))


def known_extras(dist: Distribution) -> frozenset[str]:
    """Extras a distribution provides: Provides-Extra, plus those its markers name (old metadata)."""
    named = {canonicalize_name(m) for raw in dist.requires for m in _EXTRA_IN_MARKER.findall(raw)}
    return dist.provides_extras | named


def closure(env: Environment, root: Distribution, extras: Sequence[str] = ()) -> Closure:
    """Walk ``root``'s requirements breadth first through (distribution, extra) pairs (see the module docstring);
    ``extras`` are the root's own extras that are required as well (``jax[cuda13]``)."""
    demands: list[Demand] = []
    problems: dict[tuple[str, str], MetadataProblem] = {}
    queue: deque[tuple[Distribution, str, tuple[str, ...]]] = deque(
        [(root, "", ()), *((root, canonicalize_name(e), ()) for e in extras)])
    visited: set[tuple[str, str]] = set()
    while queue:
        dist, extra, chain = queue.popleft()
        if (dist.key, extra) in visited:
            continue
        visited.add((dist.key, extra))
        label = f"{dist.name}[{extra}] {dist.version}" if extra else str(dist)
        here = (*chain, label)
        meta_file = dist.meta_dir / "METADATA"
        owner = (dist.name, dist.version, dist.installer)  # whose METADATA: its fix reinstalls that one
        for raw in dist.requires:
            gate = _extra_gate(raw)
            if gate is not None and gate != extra:
                continue  # belongs to another extra: not even parsed
            req = _parse(raw)
            if isinstance(req, str):
                problems[(dist.key, raw)] = MetadataProblem(
                    meta_file, f"Requires-Dist {_shown(raw)} is not a valid requirement: {req}", *owner
                )
                continue
            try:
                wanted = _applies(raw, extra)
            except (UndefinedEnvironmentName, UndefinedComparison) as exc:
                problems[(dist.key, raw)] = MetadataProblem(
                    meta_file, f"Requires-Dist {_shown(raw)} has a marker that cannot be evaluated: {exc}", *owner
                )
                continue
            if not wanted:
                continue
            demands.append(Demand(here, req))
            target = env.get(req.name)
            if target is None:
                continue
            for wanted_extra in ("", *sorted(canonicalize_name(e) for e in req.extras)):
                if (target.key, wanted_extra) not in visited:
                    queue.append((target, wanted_extra, here))
    return Closure(root, tuple(demands), tuple(problems.values()))


def _shown(raw: str, limit: int = 200) -> str:
    """A requirement as a message quotes it: a 100,000-character line is cut, not printed whole."""
    return repr(raw) if len(raw) <= limit else f"{raw[:limit]!r}... ({len(raw)} characters)"


def requirements_of(dist: Distribution, extra: str = "") -> list[Requirement]:
    """The requirements of ``dist`` that belong to ``extra`` here ("": those of no extra), read with the walk's
    bounded parser and marker evaluation; a line they refuse is the ``metadata[...]`` item's to report."""
    found = []
    for raw in dist.requires:
        req = _parse(raw)
        if not isinstance(req, Requirement):
            continue
        try:
            if _applies(raw, extra):
                found.append(req)
        except (UndefinedEnvironmentName, UndefinedComparison):
            continue
    return found


def requires_cuda(dist: Distribution) -> bool:
    """Whether a distribution asks for any nvidia-*/cuda-* library distribution (markers ignored).

    Only a requirement whose text starts like such a name is parsed: every distribution of the
    environment is asked, and most of their requirements are not one.
    """
    for raw in dist.requires:
        if not raw.lstrip().lower().startswith(_CUDA_HEADS):
            continue
        req = _parse(raw)
        if isinstance(req, Requirement):
            name = canonicalize_name(req.name)
            if name.startswith(CUDA_PREFIXES) and name not in NOT_CUDA_WHEELS:
                return True
    return False


class Closures:
    """Each distribution's closure in one environment, walked at most once: an object per run, passed along."""

    def __init__(self, env: Environment) -> None:
        self.env = env
        self._walked: dict[str, Closure] = {}

    def of(self, dist: Distribution, extras: Sequence[str] = ()) -> Closure:
        key = f"{dist.key}[{','.join(sorted(extras))}]@{dist.meta_dir}"
        if key not in self._walked:
            self._walked[key] = closure(self.env, dist, extras)
        return self._walked[key]


def default_roots(env: Environment, closures: Closures | None = None) -> list[Distribution]:
    """torch when installed, plus every distribution that requires an nvidia-*/cuda-* one.

    A candidate already reached from another candidate (nvidia-cudnn-cu13 from torch,
    cuda-toolkit from torch) is dropped: its requirements are checked under that root.
    Candidates that reach each other (a dependency cycle) have the same closure, so one of
    them, the lowest name, stands for all: a cycle of 50 such distributions was 50 roots
    and 2,551 items, each member's requirements checked 50 times.
    """
    closures = closures or Closures(env)
    candidates = _candidates(env, closures)
    reach = {d.key: {dem.key for dem in closures.of(d).demands} for d in candidates}
    roots = [dist for dist in candidates if dist.key == "torch" or not _covered(dist, candidates, reach)]
    return sorted(roots, key=lambda d: (d.key != "torch", d.key))


def _candidates(env: Environment, closures: Closures) -> list[Distribution]:
    """torch and each distribution that requires a CUDA wheel, less those torch reaches."""
    firsts = [found[0] for found in env.by_key.values()]
    candidates = [d for d in firsts if d.key not in NEVER_ROOTS and (d.key == "torch" or requires_cuda(d))]
    torch = env.get("torch")
    if torch is None:
        return candidates
    # what torch reaches is checked under torch: those candidates need no walk of their own
    under_torch = {dem.key for dem in closures.of(torch).demands}
    return [d for d in candidates if d.key == "torch" or d.key not in under_torch]


def _covered(dist: Distribution, candidates: list[Distribution], reach: dict[str, set[str]]) -> bool:
    """Whether another candidate's closure holds ``dist``'s, so that ``dist`` needs no item of its own."""
    return any(_covers(other.key, dist.key, reach) for other in candidates if other is not dist)


def _covers(other: str, key: str, reach: dict[str, set[str]]) -> bool:
    """Whether ``other``'s closure holds ``key``'s: it reaches ``key`` and is either not reached
    back, or in a cycle with it and the lower name (the one that stays a root)."""
    return key in reach[other] and (other not in reach[key] or other < key)


def extras_spec(name: str, demands: Mapping[str, Sequence[Demand]]) -> str:
    """``onnxruntime-gpu[cuda,cudnn]``: the root with every extra of it that brings a CUDA wheel."""
    extras = sorted({extra for key, found in demands.items() if key.startswith(CUDA_PREFIXES)
                     and key not in NOT_CUDA_WHEELS for d in found
                     for extra in _EXTRA.findall(str(d.requirement.marker))})
    return f"{name}[{','.join(extras)}]" if extras else name


_EXTRA = re.compile(r"""extra\s*==\s*['"]([^'"]+)['"]""")


def through_root_extra(root: Distribution, demands: Sequence[Demand]) -> str | None:
    """``cupy-cuda13x[ctk]`` when every demand is the root's own extra asking directly (what a user installs to get
    it back: CuPy's documented command, and pip keeps the installed root); None otherwise."""
    extras = set()
    for demand in demands:
        head = demand.chain[0].split(" ")[0] if len(demand.chain) == 1 else ""
        if not head.startswith(f"{root.name}[") or not head.endswith("]"):
            return None
        extras.update(head[len(root.name) + 1:-1].split(","))
    return f"{root.name}[{','.join(sorted(extras))}]" if extras else None
