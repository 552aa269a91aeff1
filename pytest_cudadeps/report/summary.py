"""The terminal's ``cudadeps summary``: the roots, the driver and GPUs, one line per CUDA library, the verdict,
and each root cause with its one fix."""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from pytest_cudadeps.checks.findings import Outcome
from pytest_cudadeps.core.report_format import DriverDoc
from pytest_cudadeps.core.text import one_line
from pytest_cudadeps.engine.snapshot import Root, Snapshot
from pytest_cudadeps.report.document import Library, driver, libraries
from pytest_cudadeps.report.results import Results

WIDTH = 80
_CUDA_WHEELS = ("nvidia-", "cuda-")  # the keys of NVIDIA's library wheels (nvidia-cufft, cuda-toolkit)


Markup = Mapping[str, bool]


# --- the summary section ----------------------------------------------------------------------------
def summary_lines(snapshot: Snapshot, results: Results, *, width: int = WIDTH, verbose: bool = True,
                  details: bool = True) -> list[tuple[str, Markup]]:
    """The terminal's ``cudadeps summary``: roots, driver and GPUs, the CUDA libraries (one line per library when
    ``verbose``, else one line of counts), a line per note, then the verdict and one line and one fix per root
    cause (with its further lines when ``details`` asks for them)."""
    lines = environment_lines(snapshot, results, width=width, verbose=verbose) + note_lines(results, verbose=verbose)
    lines.append((results.verdict(), {"red": True, "bold": True} if results.failed() else {"green": True}))
    return lines + cause_lines(results, details=details)


def environment_lines(snapshot: Snapshot, results: Results, *, width: int = WIDTH,
                      verbose: bool = True) -> list[tuple[str, Markup]]:
    """The roots, the driver and GPUs, and the CUDA libraries (their table when ``verbose``, else their counts)."""
    found = results.by_name()
    lines: list[tuple[str, Markup]] = [(line, {}) for line in _root_lines(snapshot.roots)]
    lines += _driver_lines(driver(found), probes=snapshot.settings.probes)
    listed = libraries(snapshot, found)
    lines += _library_lines(snapshot, listed, width) if verbose else _library_counts(listed)
    # names, versions and installers come from files: no terminal control sequence reaches the screen
    return [(one_line(text), markup) for text, markup in lines]


def note_lines(results: Results, *, verbose: bool = False) -> list[tuple[str, Markup]]:
    """A line per note (a risk that fails nothing, such as a wheel's shipped DT_RUNPATH entry); its whole text,
    with the hardening, under ``-v``."""
    lines: list[tuple[str, Markup]] = []
    for name, finding in results.by_name().items():
        note = dict(finding.facts).get("note")
        if note:
            lines.append((one_line(f"note: {name}: {finding.message}" + ("" if verbose else " (-v: the note)")), {}))
            lines += [(one_line(f"    {note}"), {})] if verbose else []
    return lines


def cause_lines(results: Results, *, details: bool = True) -> list[tuple[str, Markup]]:
    """One line and one fix per root cause, with its further lines when ``details`` asks for them (the terminal's
    summary does not: the item that heads each cause printed them)."""
    lines: list[tuple[str, Markup]] = []
    for number, rc in enumerate(results.root_causes(), 1):
        count = len(rc.findings)
        lines.append((f"[{number}] {rc.cause.id}: {count} failed check{'s' if count > 1 else ''}: {rc.cause.title}",
                      {"red": True}))
        if details:
            lines += [(f"    {detail}", {}) for detail in rc.cause.details]
        lines.append((f"    fix: {rc.cause.fix or 'see the item above'}", {"bold": True}))
    return [(one_line(text), markup) for text, markup in lines]


def item_lines(results: Results) -> list[tuple[str, Markup]]:
    """Every check, one line each: ``  FAILED  linkage[torch>libcublas.so.13]: libcublas.so.13 is not found...``,
    a consequence naming its cause."""
    lines: list[tuple[str, Markup]] = []
    words = {Outcome.PASS: ("passed", {"green": True}), Outcome.FAIL: ("failed", {"red": True}),
             Outcome.SKIP: ("skipped", {"yellow": True})}
    for finding in sorted(results.findings, key=lambda f: f.name):
        word, markup = words[finding.outcome]
        if finding.cause and finding.cause != finding.name:
            word = f"failed, a consequence of {finding.cause}"
        lines.append((f"  {finding.name}: {word}: {finding.message}", markup))
    return [(one_line(text), markup) for text, markup in lines]


def _library_counts(found: Sequence[Library]) -> list[tuple[str, Markup]]:
    """``CUDA libraries: 13 not found, 2 failed, 1 skipped (-v lists each)``: the table's statuses, counted."""
    if not found:
        return []
    counts = Counter(lib.status for lib in found)
    order = sorted(counts, key=lambda status: (status in ("ok", "skipped", "not checked"), status))
    text = ", ".join(f"{counts[status]} {status}" for status in order)
    worst = next(iter(order))
    return [(f"CUDA libraries: {text} (-v lists each)", _colour(worst))]


def _library_lines(snapshot: Snapshot, found: Sequence[Library], width: int) -> list[tuple[str, Markup]]:
    """``  libcublas.so.13  ok  nvidia-cublas 13.1.1.3  nvidia/cu13/lib`` (the folder, under site-packages), the
    columns as wide as their longest entry and the path cut in the middle to keep the line within ``width``; under
    the name of the root that needs them when more than one root does (each needs its own libcufft.so.12)."""
    if not found:
        return []
    # the search path's folders the listed libraries lie under (not every sys.path entry: the standard library's
    # folders hold none, and naming them says nothing)
    inside = {location.name for lib in found if lib.path
              for location in [_location(Path(lib.path).parent, snapshot)] if location is not None}
    header = f"CUDA libraries (folders under {', '.join(sorted(inside))}/ or absolute):" if inside else "CUDA libraries:"
    lines: list[tuple[str, Markup]] = [(header, {})]
    roots = list(dict.fromkeys(lib.root for lib in found))
    for root in roots:
        mine = [lib for lib in found if lib.root == root]
        if len(roots) > 1:
            lines.append((f"  {root}:", {}))
        lines += _library_rows(snapshot, mine, found, width, "    " if len(roots) > 1 else "  ")
    return lines


def _library_rows(snapshot: Snapshot, rows: Sequence[Library], found: Sequence[Library], width: int,
                  indent: str) -> list[tuple[str, Markup]]:
    """The ``rows``, in columns as wide as the longest entry of all ``found``."""
    soname_width = max(len(lib.soname) for lib in found)
    status_width = max(len(lib.status) for lib in found)
    owner_width = max(len(lib.owner or "-") for lib in found)
    lines: list[tuple[str, Markup]] = []
    for lib in rows:
        head = f"{indent}{lib.soname:<{soname_width}} {lib.status:<{status_width}} {lib.owner or '-':<{owner_width}} "
        where = _folder(Path(lib.path).parent, snapshot) if lib.path else "-"
        room = max(width - len(head), 12)
        if len(where) > room:
            keep = room - 3
            where = where[: keep // 2] + "..." + where[len(where) - (keep - keep // 2):]
        lines.append(((head + where).rstrip(), _colour(lib.status)))
    return lines


def _location(folder: Path, snapshot: Snapshot) -> Path | None:
    """The search path's folder that ``folder`` lies in, if any."""
    return next((location for location in snapshot.env.paths if folder == location or location in folder.parents),
                None)


def _folder(folder: Path, snapshot: Snapshot) -> str:
    location = _location(folder, snapshot)
    return str(folder.relative_to(location)) or "." if location is not None else str(folder)


def _root_lines(roots: Sequence[Root]) -> list[str]:
    """A line per framework root; the CUDA wheels that are roots only because they require other CUDA wheels
    (``nvidia-cufft`` requires ``nvidia-nvjitlink``) on one line after them."""
    frameworks = [root for root in roots if not root.key.startswith(_CUDA_WHEELS)]
    wheels = [root for root in roots if root.key.startswith(_CUDA_WHEELS)]
    if not frameworks:
        frameworks, wheels = wheels, []
    lines = [one_line(_root_line(root)) for root in frameworks]
    if wheels:
        text = "also checked, as CUDA wheels that require others: " + ", ".join(str(root.dist) for root in wheels)
        lines += [one_line(line) for line in textwrap.wrap(text, WIDTH, subsequent_indent="  ", break_on_hyphens=False)]
    return lines


def _root_line(root: Root) -> str:
    build = f"CUDA {root.cuda} build" if root.cuda else ("CPU-only build" if root.key == "torch" and root.build else "")
    installer = f" (installed by {root.dist.installer})" if root.dist.installer else ""
    return f"root {root.dist}{installer}" + (f": {build}" if build else "")


def _driver_lines(info: DriverDoc, *, probes: bool) -> list[tuple[str, Markup]]:
    if not info["checked"]:
        why = "its items were deselected" if probes else "--cuda-deps-no-probes"
        return [(f"driver: not checked ({why})", {"yellow": True})]
    if not info["version"]:
        reason = info["message"].split(":")[0] if info["message"] else info["status"]
        return [(_clip(f"driver: none ({reason})"), {"yellow": True})]
    head = f"driver {info['version']}" + (f", CUDA {info['cuda']}" if info["cuda"] else "")
    lines: list[tuple[str, Markup]] = [(f"{head}, {len(info['gpus'])} GPU(s)", {})]
    lines += [(f"  GPU {g['index']}: {g['name']}, {g['arch']}, MIG {g['mig']}", {}) for g in info["gpus"]]
    return lines


def _colour(status: str) -> Markup:
    return {"ok": {"green": True}, "skipped": {"yellow": True}, "not checked": {}}.get(status, {"red": True})


def _clip(text: str, width: int = WIDTH) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."
