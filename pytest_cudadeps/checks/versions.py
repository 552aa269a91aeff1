"""``versions[ROOT]``: the symbol versions every library outside the CUDA wheels must define for its users.

The CUDA libraries' versions are their ``linkage[...]`` items' (checks/linkage.py).  The others are the
system's or whatever a search path puts first: an old ``libstdc++.so.6`` first on ``LD_LIBRARY_PATH`` (a
conda ``lib`` folder, the most common case) makes ``import torch`` fail with ``version `GLIBCXX_3.4.30' not
found`` (pytorch/pytorch#157709), and every library that needs it fails to load with the same words.  This
item reads each user's DT_VERNEED against the DT_VERDEF of the file the loader picks, names the file, where it
came from, and the change that puts a file with the versions first; the root causes fold every error that
names that file into this item.
"""

from __future__ import annotations

from collections.abc import Sequence

from pytest_cudadeps.checks.findings import Finding, failed, passed
from pytest_cudadeps.checks.linkage import missing_version_nodes
from pytest_cudadeps.engine.elf import ElfInfo, read_elf
from pytest_cudadeps.engine.ldso import Step, variable_without
from pytest_cudadeps.engine.linkage import Linkage, ResolvedLibrary, is_cuda_soname
from pytest_cudadeps.tables.wheels import DRIVER_SONAMES

CHECK = "versions"


def versions_finding(root_key: str, linkage: Linkage) -> Finding:
    """One item per root: pass with the number of files read, or fail naming the first file that lacks a version."""
    checked = 0
    short: list[tuple[ResolvedLibrary, list[str]]] = []
    for lib in linkage.libraries:
        if lib.path is None or is_cuda_soname(lib.soname) or lib.soname in DRIVER_SONAMES:
            continue
        info = linkage.info(lib.path) or read_elf(lib.path)  # the walk keeps the files of the environment only
        if not isinstance(info, ElfInfo):
            continue
        checked += 1
        problems, _ = missing_version_nodes(linkage, lib, info)
        if problems:
            short.append((lib, problems))
    if not short:
        return passed(CHECK, root_key, f"the {checked} libraries outside the CUDA wheels define every symbol version "
                                       f"their users need")
    lib, problems = short[0]
    assert lib.path is not None
    versions = sorted({problem.split("`", 1)[1].split("'", 1)[0] for problem in problems})
    others = [f"also short: {other.soname} at {other.path}: {found[0]}" for other, found in short[1:3]]
    return failed(
        CHECK, root_key,
        f"{lib.soname} at {lib.path} (via {lib.via}) lacks {_count(versions)} that its users need: {problems[0]}",
        *problems[1:3], *others, *_origin(lib),
        fix=_fix(lib, linkage),
        soname=lib.soname, path=str(lib.path), versions=",".join(versions),
    )


def _count(versions: Sequence[str]) -> str:
    """``version `GLIBCXX_3.4.30'``, or ``18 versions, up to GLIBCXX_3.4.32 and CXXABI_1.3.15`` (the newest of each
    family: what the replacement must define)."""
    if len(versions) == 1:
        return f"version `{versions[0]}'"
    newest: dict[str, tuple[tuple[int, ...], str]] = {}
    for version in versions:
        family, _, number = version.partition("_")
        key = tuple(int(part) for part in number.split(".") if part.isdigit())
        if family not in newest or key > newest[family][0]:
            newest[family] = (key, version)
    return f"{len(versions)} versions (up to {' and '.join(name for _, name in sorted(newest.values(), reverse=True))})"


def _origin(lib: ResolvedLibrary) -> list[str]:
    assert lib.path is not None
    folder = lib.path.parent
    if (folder.parent / "conda-meta").is_dir():
        return [f"{folder} is the lib folder of a conda-managed environment ({folder.parent})"]
    return []


def _fix(lib: ResolvedLibrary, linkage: Linkage) -> str:
    """A command that puts a file with the versions first: drop its folder from the variable that put it there."""
    assert lib.path is not None
    folder = lib.path.parent
    if lib.via.step is Step.LD_LIBRARY_PATH:
        return variable_without("LD_LIBRARY_PATH", linkage.ld_library_path, folder)
    if lib.via.step is Step.PRELOAD:
        return variable_without("LD_PRELOAD", linkage.preload, lib.path)
    return (f"{lib.path} is the system's own and older than its users need: use an image whose libstdc++/glibc is at "
            f"least that new (or one from conda-forge's libstdcxx-ng in a conda-managed environment)")

