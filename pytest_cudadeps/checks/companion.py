"""The ``companion[...]`` findings: packages whose extensions link torch's libraries (torchvision, xformers...)
agree with the installed torch: its pin, its build tags, the symbols they import, and their import."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from packaging.version import InvalidVersion, Version

from pytest_cudadeps.checks.findings import Finding, failed, passed
from pytest_cudadeps.core.text import quote
from pytest_cudadeps.engine.companions import (
    _CXX11_STRING,
    TORCH_SYMBOL,
    Companion,
    TorchSide,
    _local,
    built_for_torch,
    import_names,
    matching_release,
    recorded_versions,
    torch_requirements,
    torch_side,
    torch_uses_cxx11_abi,
)
from pytest_cudadeps.engine.distributions import Distribution, Environment, installed_from
from pytest_cudadeps.engine.elf import defined_among, imported_symbols
from pytest_cudadeps.engine.installers import install_command, reinstall_command
from pytest_cudadeps.engine.requirements import requirements_of

CHECK = "companion"


# What a package that catches the loader's error shows instead (measured with torchvision 0.28.0 beside torch 2.14.1).
_SEEN_AS = {"torchvision": "`import torchvision` catches it, then fails with "
                           "`RuntimeError: operator torchvision::nms does not exist`"}


def companion_findings(env: Environment, companions: Sequence[Companion]) -> list[Finding]:
    """The three items per companion; nothing when torch or every companion is absent."""
    torch = torch_side(env)
    if torch is None or not torch.libraries or not companions:  # a torch without lib/ fails elsewhere
        return []
    wanted = {c.dist.key: _imports(c) for c in companions}
    needed: frozenset[str] = frozenset().union(*(names for per_file in wanted.values() for names in per_file.values()))
    defined = _torch_defines(torch, needed)
    findings: list[Finding] = []
    for companion in companions:
        findings.append(pin_finding(companion, torch))
        build = build_finding(companion, torch)
        if build is not None:
            findings.append(build)
        findings.append(symbols_finding(companion, torch, wanted[companion.dist.key], defined))
    return findings


def pin_finding(companion: Companion, torch: TorchSide) -> Finding:
    """``companion[NAME>torch-pin]``: the installed torch satisfies what the companion declares."""
    dist = companion.dist
    subject = f"{dist.key}>torch-pin"
    requirements = torch_requirements(dist)
    if not requirements:
        return passed(CHECK, subject, f"{dist} declares no requirement on torch (the symbols item still compares "
                                      f"its extensions with torch {torch.dist.version})")
    try:
        installed = Version(torch.dist.version)
    except InvalidVersion:
        return failed(CHECK, subject, f"torch's version {torch.dist.version!r} is not a valid version",
                      fix=reinstall_command(torch.dist.installer, "torch"))
    refused = [r for r in requirements if not r.specifier.contains(installed, prereleases=True)]
    if not refused:
        spec = ", ".join(str(r.specifier) or "(any version)" for r in requirements)
        return passed(CHECK, subject, f"{dist} requires torch{spec}; torch {torch.dist.version} is installed")
    release = matching_release(dist, torch.dist.version)
    fix = (install_command(dist.installer, release) if release else
           f"install a release of {dist.name} built for torch {torch.dist.version}, or rebuild it against this "
           f"torch ({install_command(dist.installer, dist.name)} with --upgrade, or --no-binary {dist.name})")
    return failed(
        CHECK, subject,
        f"{dist} requires torch{refused[0].specifier}, but torch {torch.dist.version} is installed: its extensions "
        f"were built against another torch",
        f"extensions: {_extensions_text(companion)}",
        f"torch: {torch.dist} in {torch.dist.location}",
        fix=fix, required=str(refused[0].specifier), torch=torch.dist.version,
    )


def build_finding(companion: Companion, torch: TorchSide) -> Finding | None:
    """``companion[NAME>build]``: local tags and build records agree with torch's; None when nothing is recorded."""
    dist = companion.dist
    subject = f"{dist.key}>build"
    record = built_for_torch(companion)
    if record is not None and record[1] != torch.full_version:
        record_file, built = record
        return failed(
            CHECK, subject,
            f"{dist} was built for torch {built}, but torch {torch.full_version} is installed "
            f"(its import says \"{dist.name} was built for: PyTorch {built}\" and its C++/CUDA ops are unavailable)",
            f"recorded in: {record_file}", fix=_rebuild_fix(dist, torch), built_for=built, torch=torch.full_version,
        )
    tags = [(where, version, _local(version)) for where, version in recorded_versions(companion)]
    tagged = [t for t in tags if t[2] is not None]
    if torch.local is None or not tagged:
        if record is None:
            return None
        return passed(CHECK, subject, f"{dist} was built for torch {record[1]} ({record[0]})")
    where, version, tag = tagged[-1]  # version.py, when present, says what was really built
    if tag != torch.local:
        return failed(
            CHECK, subject,
            f"{dist.name} {version} is a {_describe(tag)} build, but torch {torch.full_version} is a "
            f"{_describe(torch.local)} build",
            f"read from: {where}",
            fix=_rebuild_fix(dist, torch), companion=version, torch=torch.full_version,
        )
    return passed(CHECK, subject, f"{dist.name} {version} and torch {torch.full_version} are both {_describe(tag)} "
                                  f"builds ({where})")


def _describe(tag: str | None) -> str:
    match = re.fullmatch(r"cu(\d+)(\d)", tag or "")
    if match:
        return f"CUDA {match.group(1)}.{match.group(2)} (+{tag})"
    return f"+{tag}" if tag != "cpu" else "CPU-only (+cpu)"


def _rebuild_fix(dist: Distribution, torch: TorchSide) -> str:
    """Its build for the installed torch: from its own source when it was built locally or from a VCS (no index
    has it: PyTorch's has only its own projects' wheels), else the matching release from PyTorch's index."""
    source = installed_from(dist)
    if source is not None and source.kind == "editable":
        return f"cd {quote(source.where)} && pip install --no-build-isolation --force-reinstall --no-deps -e ."
    if source is not None and source.kind == "folder":
        return f"cd {quote(source.where)} && pip install --no-build-isolation --force-reinstall --no-deps ."
    if source is not None:
        return f"pip install --no-build-isolation --force-reinstall --no-deps {quote(source.where)}"
    release = matching_release(dist, torch.dist.version) or dist.name
    tag = torch.local
    if tag and re.fullmatch(r"cu\d+|cpu", tag):
        return f"{install_command(dist.installer, release)} --force-reinstall --index-url https://download.pytorch.org/whl/{tag}"
    return f"reinstall {dist.name} built for torch {torch.full_version}: {install_command(dist.installer, release)}"


# --- the symbols the extensions import from torch ------------------------------------------------
def _imports(companion: Companion) -> dict[Path, frozenset[str]]:
    """Per extension, the strong undefined symbols that torch is to provide."""
    return {ext.path: imported_symbols(ext.path, TORCH_SYMBOL) for ext in companion.extensions}


def _torch_defines(torch: TorchSide, names: frozenset[str]) -> frozenset[str]:
    """Which of ``names`` torch's libraries define: one pass over each library, for every companion at once."""
    found: set[str] = set()
    for library in torch.libraries:
        if len(found) == len(names):
            break
        found |= defined_among(library, names - found)
    return frozenset(found)


def symbols_finding(
    companion: Companion, torch: TorchSide, imports: Mapping[Path, frozenset[str]], defined: frozenset[str],
) -> Finding:
    """``companion[NAME>symbols]``: every symbol its extensions take from torch is defined there."""
    dist = companion.dist
    subject = f"{dist.key}>symbols"
    missing = {path: sorted(names - defined) for path, names in imports.items() if names - defined}
    count = sum(len(names) for names in imports.values())
    if not missing:
        return passed(CHECK, subject, f"torch {torch.full_version} defines all {count} symbols that {dist}'s "
                                      f"{len(imports)} extension(s) import from it", symbols=str(count))
    first, names = next(iter(sorted(missing.items())))
    lines = [f"{_rel(p, dist)}: {len(n)} missing, first {n[0]}" for p, n in sorted(missing.items())]
    cause = _abi_cause(torch, imports[first], names)
    return failed(
        CHECK, subject,
        f"loading {_rel(first, dist)} fails with `{first}: undefined symbol: {names[0]}`: {cause}",
        *lines, *([_SEEN_AS[dist.key]] if dist.key in _SEEN_AS else []),
        f"torch: {torch.full_version} in {torch.dist.location}",
        fix=_rebuild_fix(dist, torch), missing=names[0],
    )


def _abi_cause(torch: TorchSide, imported: frozenset[str], missing: list[str]) -> str:
    """The C++ ABI flip when the spellings of ``std::string`` disagree, else version skew."""
    extension_cxx11 = any(_CXX11_STRING in name for name in imported)
    old_string = any(re.search(r"Ss(?:[A-Z_0-9]|E|$)", name) for name in missing)
    torch_cxx11 = torch_uses_cxx11_abi(torch)
    if torch_cxx11 and not extension_cxx11 and old_string:
        return ("it was built with the other C++ ABI (_GLIBCXX_USE_CXX11_ABI=0, `std::string`), torch with "
                "_GLIBCXX_USE_CXX11_ABI=1 (`std::__cxx11::basic_string`)")
    if torch_cxx11 is False and any(_CXX11_STRING in name for name in missing):
        return ("it was built with the other C++ ABI (_GLIBCXX_USE_CXX11_ABI=1, `std::__cxx11::basic_string`), "
                "torch with _GLIBCXX_USE_CXX11_ABI=0 (`std::string`)")
    return f"it was built against another torch (the symbol is not in torch {torch.full_version}'s libraries)"


def _rel(path: Path, dist: Distribution) -> str:
    try:
        return str(path.relative_to(dist.location))
    except ValueError:
        return str(path)


def _extensions_text(companion: Companion, limit: int = 3) -> str:
    names = [f"{_rel(e.path, companion.dist)} (needs {', '.join(e.torch_needed[:2])})"
             for e in companion.extensions[:limit]]
    more = f" and {len(companion.extensions) - limit} more" if len(companion.extensions) > limit else ""
    return ", ".join(names) + more


def import_finding(env: Environment, companion: Companion, errors: Mapping[str, str | None]) -> Finding:
    """``companion[NAME>import]``: each of its packages imports beside torch, in the child that imported torch.

    ``errors`` maps each module to the exception its import raised (None: it imported).
    """
    subject = f"{companion.dist.key}>import"
    names = import_names(companion)
    failed_ones = [(name, errors[name]) for name in names if errors.get(name)]
    torch = torch_side(env)
    if failed_ones:
        name, error = failed_ones[0]
        fix = _missing_requirements_fix(env, companion.dist, error or "")
        if fix is None:
            fix = _rebuild_fix(companion.dist, torch) if torch is not None else f"reinstall {companion.dist.name}"
        return failed(CHECK, subject, f"import {name} fails beside torch: {error}",
                      *(f"import {other}: {text}" for other, text in failed_ones[1:]), fix=fix)
    shown = ", ".join(f"import {name}" for name in names)
    return passed(CHECK, subject, f"{shown} works beside torch {torch.full_version if torch else ''}".rstrip())


def _missing_requirements_fix(env: Environment, dist: Distribution, error: str) -> str | None:
    """``No module named 'numpy'``: dependencies left out (``pip install --no-deps``), not a wrong build.

    The fix installs, in one command, every requirement of the companion that applies here and is
    not installed, as it declares them: the module named is one of them (``PIL`` is pillow's).
    """
    if not error.startswith("ModuleNotFoundError:"):
        return None
    missing = [f"{req.name}{req.specifier}" for req in requirements_of(dist) if env.get(req.name) is None]
    return install_command(dist.installer, *missing) if missing else None
