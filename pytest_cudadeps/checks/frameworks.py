"""The findings of roots other than torch: their linkage items told for what they are (an optional plugin's
library, an object without a search path that relies on preloading), the ``plugin[...]`` notes, and the
``shared[...]`` conflicts between roots."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from pytest_cudadeps.checks.findings import Finding, Outcome, failed, passed, skipped
from pytest_cudadeps.core.safe_io import is_regular, read_text
from pytest_cudadeps.engine.distributions import Distribution, Environment
from pytest_cudadeps.engine.elf import ElfInfo, needed_names
from pytest_cudadeps.engine.frameworks import cuda_of_linkage, find_framework_file, optional_plugin, picked_binary
from pytest_cudadeps.engine.installers import install_command, reinstall_command
from pytest_cudadeps.engine.linkage import Linkage, ResolvedLibrary, is_cuda_soname
from pytest_cudadeps.engine.requirements import Demand
from pytest_cudadeps.engine.snapshot import Root, Snapshot
from pytest_cudadeps.tables.frameworks import AFTER_TORCH, AfterTorch, FrameworkFile
from pytest_cudadeps.tables.plugins import Plugin
from pytest_cudadeps.tables.wheels import CUDA_PREFIXES, DRIVER_SONAMES


def preload_finding(snapshot: Snapshot, root: Root, lib: ResolvedLibrary, users: list[Path]) -> Finding:
    """``linkage[ROOT>SONAME]`` of a library whose users have no search path: found only when loaded already."""
    subject = f"{root.key}>{lib.soname}"
    resolver = snapshot.resolver(root)
    declared = resolver.declared(lib.soname, None)
    owners = snapshot.owners
    good = [(how, path) for how, path in _routes(snapshot, root, lib.soname)
            if declared is None or declared.key in owners.owner_keys(path)]
    user = users[0].name
    alone = (f"alone, ld.so finds {lib.path} (via {lib.via})" if lib.path is not None else
             f"alone, ld.so finds nothing (`{lib.soname}: cannot open shared object file`)")
    declared_text = f"declared: {declared.chain}" if declared else f"declared by no requirement of {root.dist}"
    if good:
        how = " or ".join(f"{h} (maps {p}, {_owner(snapshot, p)})" for h, p in good)
        return passed("linkage", subject, f"{user} has no RPATH or RUNPATH: {lib.soname} is found only when it is "
                                          f"loaded already: {how}; {alone}",
                      path=str(good[0][1]), via="preloaded", preload=good[0][0])
    return failed(
        "linkage", subject,
        f"{user} has no RPATH or RUNPATH and relies on {lib.soname} being loaded first, but neither `import torch` "
        f"nor the framework's own preload maps the copy it declares: {alone}",
        f"needed by: {', '.join(str(u) for u in users[:3])}", declared_text,
        fix=resolver.fix(lib.soname, None),
    )


def _owner(snapshot: Snapshot, path: Path) -> str:
    owned = snapshot.owners.of(path)
    return str(owned[0][0]) if owned else "owned by no distribution"


def plugin_findings(snapshot: Snapshot, root: Root) -> list[Finding]:
    """``plugin[ROOT>FILE]``: a note per optional plugin the root ships, with what it lacks even when preloaded."""
    linkage = root.linkage
    if linkage is None:
        return []
    findings = []
    for obj in linkage.objects:
        plugin = optional_plugin(root.dist, obj)
        if plugin is None:
            continue
        missing = sorted(lib.soname for lib in linkage.libraries
                         if obj in lib.needed_by and lib.path is None and not _routes(snapshot, root, lib.soname))
        subject = f"{root.key}>{obj.name}"
        if missing:
            findings.append(skipped("plugin", subject, f"optional: {obj.name} is {plugin.what}; loaded only when a "
                                                       f"session asks for it; it lacks {', '.join(missing)}"))
        else:
            findings.append(passed("plugin", subject, f"{obj.name} ({plugin.what}) finds what it needs"))
    return findings


def _optional_only(root: Root, lib: ResolvedLibrary) -> Plugin | None:
    plugins = [optional_plugin(root.dist, user) for user in lib.needed_by]
    return plugins[0] if plugins and all(plugins) else None


def framework_findings(snapshot: Snapshot, root: Root, linkage_items: Iterable[Finding]) -> list[Finding]:
    """The root's linkage items, with those of optional plugins turned into notes and those of objects without
    search path told as such, plus a ``plugin[...]`` note per optional plugin.  torch's items pass through."""
    linkage = root.linkage
    items = list(linkage_items)
    if linkage is None or root.key == "torch":
        return items
    by_name = {f.name: f for f in items}
    for lib in linkage.cuda_libraries():
        name = f"linkage[{root.key}>{lib.soname}]"
        current = by_name.get(name)
        if current is None or current.outcome is not Outcome.FAIL:
            continue
        plugin = _optional_only(root, lib)
        if plugin is not None:
            by_name[name] = skipped("linkage", f"{root.key}>{lib.soname}",
                                    f"{lib.soname} is needed only by {plugin.file}, an optional plugin (see "
                                    f"plugin[{root.key}>{plugin.file}]): {current.message}")
            continue
        users = _without_search_path(linkage, lib)
        optional = root.framework.optional(lib.soname) if root.framework is not None else ""
        if users and optional and not _routes(snapshot, root, lib.soname):
            by_name[name] = skipped("linkage", f"{root.key}>{lib.soname}",
                                    f"optional: {lib.soname} is not installed; only {optional} needs it "
                                    f"({', '.join(u.name for u in users[:3])})")
        elif users:
            by_name[name] = preload_finding(snapshot, root, lib, users)
    return [*by_name.values(), *plugin_findings(snapshot, root)]


# --- conflicts between roots ------------------------------------------------------------------------
def _base(soname: str) -> str:
    return soname.split(".so", 1)[0]


def major_findings(roots: Sequence[Root]) -> list[Finding]:
    """``shared[LIBRARY]``: roots that need the same library agree on its major (its soname)."""
    needs: dict[str, dict[str, list[str]]] = {}
    for root in roots:
        for lib in root.linkage.cuda_libraries() if root.linkage else ():
            if lib.soname in DRIVER_SONAMES:
                continue  # the driver's: one per host, whoever needs it
            needs.setdefault(_base(lib.soname), {}).setdefault(lib.soname, []).append(root.key)
    findings = []
    for base, sonames in sorted(needs.items()):
        keys = sorted({k for ks in sonames.values() for k in ks})
        if len(keys) < 2:
            continue
        if len(sonames) == 1:
            findings.append(passed("shared", base, f"{' and '.join(keys)} need the same {next(iter(sonames))}"))
            continue
        who = "; ".join(f"{soname}: {', '.join(sorted(set(k)))}" for soname, k in sorted(sonames.items()))
        findings.append(failed(
            "shared", base, f"the roots need different majors of {base}: {who}",
            "each major comes from a wheel of its own CUDA (or cuDNN) series; wheels of two CUDA majors share folders "
            "under nvidia/ and overwrite each other, and one process maps both only by luck",
            fix="install the builds of these frameworks for one CUDA major (the one torch was built for)",
        ))
    return findings


def pin_findings(env: Environment, roots: Sequence[Root]) -> list[Finding]:
    """``shared[DIST]``: a distribution two roots ask for (requirements or extras) is installed at a version all accept."""
    asked: dict[str, list[Demand]] = {}
    for root in roots:
        for key, demands in {**root.extras, **root.demands}.items():
            if key.startswith(CUDA_PREFIXES):
                asked.setdefault(key, []).extend(demands)
    findings = []
    for key, demands in sorted(asked.items()):
        askers = {d.chain[0].split(" ")[0].split("[")[0] for d in demands}
        dist = env.get(key)
        if len(askers) < 2 or dist is None:
            continue  # one root only, or not installed: the requires[...] items say it
        try:
            version = Version(dist.version)
        except InvalidVersion:
            continue  # the requires[...] items name it
        findings.append(_pin_finding(key, dist, version, demands, askers))
    return findings


def _pin_finding(key: str, dist: Distribution, version: Version, demands: Sequence[Demand], askers: set[str]) -> Finding:
    refused = [d for d in demands if not d.requirement.specifier.contains(version, prereleases=True)]
    if not refused:
        specs = "; ".join(dict.fromkeys(f"{d.chain[0]} wants {d.wanted()}" for d in demands))
        return passed("shared", key, f"{dist} satisfies every root ({specs})")
    chains = [f"{d.describe()}" for d in demands[:6]]
    merged = _common_range(demands, version)
    if merged is not None:
        return failed("shared", key, f"{dist} is installed, which {refused[0].chain[0]} refuses ({refused[0].wanted()}); "
                                     f"the roots' ranges overlap ({merged[1]} satisfies every one)",
                      *chains, fix=install_command(dist.installer, f"{dist.name}{merged[0]}"))
    return failed("shared", key, f"no single version of {dist.name} satisfies every root: {dist} is installed, which "
                                 f"{refused[0].chain[0]} refuses ({refused[0].wanted()})", *chains,
                  fix=f"choose versions of {', '.join(sorted(askers))} whose requirements on {dist.name} overlap; "
                      f"then {install_command(dist.installer, dist.name)} at a version every root accepts")


def _common_range(demands: Sequence[Demand], installed: Version) -> tuple[SpecifierSet, Version] | None:
    """(every demand's specifiers together, a version they all accept), or None when no candidate satisfies them all.

    The candidates are the installed version, each version the specifiers name (``==9.24.0.43``, the ``9.20`` of
    ``<9.20``) and one just above each (``9.20.1``): a range that admits none of them admits no release either,
    save ones between two named bounds with nothing named inside, which the ``.1`` above the lower bound covers.
    """
    merged = SpecifierSet(",".join(str(d.requirement.specifier) for d in demands if d.requirement.specifier))
    candidates = {installed}
    for demand in demands:
        for spec in demand.requirement.specifier:
            text = spec.version.removesuffix(".*")
            with contextlib.suppress(InvalidVersion):
                candidates.update((Version(text), Version(f"{text}.1")))
    accepted = sorted(v for v in candidates if merged.contains(v, prereleases=True))
    return (merged, accepted[-1]) if accepted else None


def shared_findings(snapshot: Snapshot) -> list[Finding]:
    """Conflicts between the roots: library majors, then distribution pins; nothing with one root."""
    roots = snapshot.roots
    if len(roots) < 2:
        return []
    return major_findings(roots) + pin_findings(snapshot.env, roots)


INIT_LIMIT = 4 << 20  # onnxruntime 1.31.1's __init__.py is 12 KB


def _preload_dlls(root: Root, soname: str) -> Path | None:
    """The file onnxruntime 1.31.1's ``preload_dlls()`` loads for ``soname`` from the nvidia wheels, if any."""
    package = root.dist.location / "onnxruntime"
    init = package / "__init__.py"
    try:
        if "def preload_dlls" not in read_text(init, INIT_LIMIT, "onnxruntime's __init__.py", errors="replace"):
            return None
    except OSError:
        return None
    major = cuda_of_linkage(root.linkage)
    if major is None:
        return None
    base = soname.split(".so")[0]
    folder = {"libcudnn": "cudnn"}.get(base)
    if folder is None:
        legacy = {"libcublasLt": "cublas", "libcublas": "cublas", "libnvrtc": "cuda_nvrtc", "libcurand": "curand",
                  "libcufft": "cufft", "libcudart": "cuda_runtime"}
        if base not in legacy:
            return None
        folder = f"cu{major}" if int(major) >= 13 else legacy[base]
    path = root.dist.location / "nvidia" / folder / "lib" / soname
    return path if is_regular(path) else None


def _without_search_path(linkage: Linkage, lib: ResolvedLibrary) -> list[Path]:
    """The objects needing ``lib`` that have neither DT_RPATH nor DT_RUNPATH (all of them, or none)."""
    bare = []
    for user in lib.needed_by:
        info = linkage.info(user)
        if not isinstance(info, ElfInfo) or info.rpath or info.runpath:
            return []
        bare.append(user)
    return bare


def _routes(snapshot: Snapshot, root: Root, soname: str) -> list[tuple[str, Path]]:
    """How a preloading process gets ``soname``: (how, the file it maps)."""
    routes = []
    torch = snapshot.torch
    if torch is not None and torch is not root and torch.linkage is not None:
        mapped = torch.linkage.library(soname)
        if mapped is not None and mapped.path is not None:
            routes.append(("`import torch` first", mapped.path))
    preloaded = _preload_dlls(root, soname)
    if preloaded is not None:
        routes.append(("`onnxruntime.preload_dlls()`", preloaded))
    framework = root.framework
    if framework is not None:
        routes += [(f"{framework.label} ({framework.how})", lazy.path) for lazy in root.lazy
                   if lazy.entry.label == framework.label and lazy.soname == soname and lazy.path is not None]
    return routes


# --- packages that load their binary after torch ----------------------------------------------------
AFTER_TORCH_CHECK = "after-torch"


def after_torch_findings(snapshot: Snapshot) -> list[Finding]:
    """``after-torch[PACKAGE>BINARY]``: the one binary the package picks for torch's CUDA, checked in torch's process."""
    findings = []
    for after in AFTER_TORCH:
        dist = snapshot.env.get(after.key)
        if dist is None:
            continue
        torch = snapshot.torch
        if torch is None or not torch.cuda or torch.linkage is None:
            findings.append(skipped(AFTER_TORCH_CHECK, after.key, f"{dist} loads its CPU binary: no CUDA build of "
                                                                  f"torch is installed (or the ELF view is off)"))
            continue
        findings.append(_after_torch_finding(snapshot, torch, dist.name, after))
    return findings


def _after_torch_finding(snapshot: Snapshot, torch: Root, name: str, after: AfterTorch) -> Finding:
    dist = snapshot.env.get(name)
    assert dist is not None
    assert torch.cuda is not None
    assert torch.linkage is not None
    override = os.environ.get(after.override) or None
    path, how = picked_binary(dist, after, torch.cuda, override)
    subject = f"{after.key}>{path.name}"
    if not is_regular(path):
        return failed(AFTER_TORCH_CHECK, subject, f"{dist} has no {path.name}, the binary it loads for {how}: its CUDA "
                                                  f"functions fail (`No compatible CUDA binary found at {path}`)",
                      fix=f"unset {after.override}" if override else
                      reinstall_command(dist.installer, f"{dist.name}=={dist.version}"), source=after.source)
    needed = [n for n in needed_names(path) if is_cuda_soname(n)]
    lacking = [n for n in needed if (lib := torch.linkage.library(n)) is None or lib.path is None]
    if lacking:
        return failed(AFTER_TORCH_CHECK, subject, f"{path.name} ({how}) needs {', '.join(lacking)}, which `import torch` "
                                                  f"does not map: `CUDA SETUP ERROR: Missing dependency: {lacking[0]}`",
                      fix=f"unset {after.override}" if override else snapshot.resolver(torch).fix(lacking[0], None),
                      source=after.source)
    return passed(AFTER_TORCH_CHECK, subject, f"{path.name} ({how}) finds {', '.join(needed) or 'nothing it needs'} "
                                              f"where `import torch` mapped them", path=str(path), source=after.source)


# --- a framework's parts ----------------------------------------------------------------------------


def parts_findings(snapshot: Snapshot) -> list[Finding]:
    """``parts[ROOT]``: a framework built from several distributions (jax, jaxlib, jax-cuda13-plugin,
    jax-cuda13-pjrt) has them all, the binary ones at one version.

    jaxlib/plugin_support.py (jaxlib 0.10.2) uses the plugin only when its version equals jaxlib's (otherwise
    `RuntimeWarning: JAX plugin jax_cuda13_plugin version 0.9.2 is installed, but it is not compatible with the
    installed jaxlib version 0.10.2, so it will not be used.`), and the plugin pins the pjrt; nothing pins the pair
    to jaxlib, so pip check passes with both at 0.9.2 beside jaxlib 0.10.2.
    """
    return [_parts_finding(snapshot, root) for root in snapshot.roots
            if root.framework is not None and root.framework.parts]


def _parts_finding(snapshot: Snapshot, root: Root) -> Finding:
    framework = root.framework
    assert framework is not None
    found = {part: snapshot.env.get(part) for part in framework.parts}
    versions = {part: d.version if d is not None else "missing" for part, d in found.items()}
    first = framework.parts[1]  # jaxlib: the others must be at its version
    version = versions[first] if found[first] is not None else root.dist.version
    wrong = [part for part in framework.parts[1:] if versions[part] != version]
    if not wrong:
        return passed("parts", root.key, f"{', '.join(str(d) for d in found.values() if d)}: all at {version} "
                                         f"where they must agree")
    seen = ", ".join(f"{part} {versions[part]}" for part in framework.parts)
    return failed(
        "parts", root.key, f"{root.dist.name}'s parts do not match: {seen}; {first} uses the others only at its own "
                           f"version {version}",
        f"source: {framework.source}",
        fix=install_command(root.dist.installer, *(f"{part}=={version}" for part in wrong)),
    )


# --- files a framework finds itself ------------------------------------------------------------------
FILE_CHECK = "file"


def file_findings(snapshot: Snapshot, environ: Mapping[str, str], system: Path = Path("/usr/local/cuda")) -> list[Finding]:
    """``file[ROOT>NAME]``: a file other than a shared object that a framework root needs (numba-cuda's
    ``libdevice.10.bc``) is where the framework looks for it."""
    return [_file_finding(snapshot, root, file, environ, system) for root in snapshot.roots
            for file in (root.framework.files if root.framework is not None else ())]


def declared_wheel(root: Root, file: FrameworkFile) -> str | None:
    """The wheel of ``file.wheels`` that the root requires (nvidia-nvvm through numba-cuda[cu13]), if any."""
    return next((key for key, _, _ in file.wheels if key in root.demands), None)


def _file_finding(snapshot: Snapshot, root: Root, file: FrameworkFile, environ: Mapping[str, str],
                  system: Path) -> Finding:
    path, how, places = find_framework_file(snapshot.env, file, environ, system)
    subject = f"{root.key}>{file.name}"
    if path is not None:
        return passed(FILE_CHECK, subject, f"{file.name} -> {path} (found by {file.label} in {how})",
                      path=str(path), source=file.source)
    key = declared_wheel(root, file)
    installed = snapshot.env.get(key) if key else None
    if key is None:
        fix = (f"install the wheel that has {file.name} ({', '.join(k for k, _, _ in file.wheels)}), or set CUDA_HOME "
               f"to a CUDA toolkit that has {file.rel}/{file.name}")
    elif installed is not None:
        fix = reinstall_command(root.dist.installer, f"{installed.name}=={installed.version}")
    else:
        fix = install_command(root.dist.installer, root.demands[key][0].wanted())
    return failed(FILE_CHECK, subject, f"{file.label} finds no {file.name}: {file.what} fails",
                  f"looked in, in its order: {', '.join(places)}", fix=fix, source=file.source)
