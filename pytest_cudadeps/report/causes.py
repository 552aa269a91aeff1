"""Root causes: which failing findings follow from the same thing, and the one fix for all of them.

One missing wheel fails its ``requires`` item, the ``linkage`` item of every library it
provides, their ``load`` items and the smoke test; torch installed without its
dependencies fails all of that for every wheel at once.  :class:`Causes` is built once per
process from the snapshot and its static findings (files only, so every xdist worker
builds the same one) and gives each failing finding, static or from a probe, the id of
its cause.  The rules, in order:

1. the distributions a root requires and that are not installed: one cause per root
   (``missing[torch]``, one install command for all of them), or the ``requires`` item
   itself when only one is missing; it explains the linkage and load items of every
   library those distributions provide;
2. a required distribution installed at a refused version or without an extra: its
   ``requires`` item, which explains the items of its libraries;
3. libraries that no requirement of the root declares (metadata of another platform):
   one cause per root (``undeclared[torch]``);
4. libraries resolved into one folder outside their wheels (``LD_LIBRARY_PATH``,
   ``LD_PRELOAD``, a system CUDA): one cause per folder (``shadowed[/usr/local/cuda/lib64]``);
5. a companion whose pin refuses the installed torch (``companion[torchvision>torch-pin]``): its other
   items (its import, its symbols) follow from it, since its extensions were built against another torch;
6. a failure whose error names what a failing static item explains follows from that item's cause: a
   library whose linkage item failed (``ImportError: libcudnn.so.9: cannot open ...``), a file that lacks a
   symbol version (``libstdc++.so.6: version `GLIBCXX_3.4.30' not found``: the ``versions[...]`` item), or a
   symbol of a CUDA library (``undefined symbol: ncclCommShrink``: NCCL's) whose wheel's ``requires``
   item failed (installed at a version the root refuses);
7. one driver fault, one cause: when a ``driver[...]`` item fails on a driver that is there (too old for the
   runtime, a kernel module of another version, NVML failing), the first of them (libcuda, NVML, then the
   runtime's compatibility) explains the other driver items, every item that found no GPU (the driver saw
   none because of the fault), every failure worded as a driver fault (``CUDA driver version is insufficient``,
   the fault's own error name) and every failure with the same fix; with no driver at all, the items that
   need one are one cause under ``--cuda-deps-require-gpu`` (``no-driver``);
8. anything else is its own cause.

A group of one finding is that finding itself: its id is the finding's name.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from pytest_cudadeps.checks.findings import INSTALL_DRIVER, REQUIRE_GPU, Finding, Outcome
from pytest_cudadeps.core.text import quote
from pytest_cudadeps.engine.installers import install_command
from pytest_cudadeps.engine.ldso import Step
from pytest_cudadeps.engine.linkage import ResolvedLibrary
from pytest_cudadeps.engine.snapshot import Root, Snapshot
from pytest_cudadeps.tables.cuda_errors import DRIVER_FAULT_WORDS
from pytest_cudadeps.tables.wheels import DRIVER_SONAMES, library_of_symbol

_SONAME = re.compile(r"\blib[\w+-]+(?:\.[\w+-]+)*?\.so(?:\.\d+)*")
_UNDEFINED = re.compile(r"undefined symbol: ([A-Za-z_]\w*)")
_PLACEHOLDER = "SPECS"  # one spec in the installer's template, replaced by all of them (quoted alike)
NO_DRIVER = "no-driver"
# the driver's own items, in the order a fault shows through them: libcuda first, then NVML, then the runtime's check
DRIVER_ITEMS = ("driver[libcuda]", "driver[nvml]", "driver[runtime-compat]")


@dataclass(frozen=True)
class Cause:
    """A root cause: what went wrong once (``title``, one line), why (``details``), and the one ``fix``
    that repairs every finding that follows from it."""

    id: str
    title: str
    details: tuple[str, ...] = ()
    fix: str = ""

    @classmethod
    def of(cls, finding: Finding) -> Cause:
        """A finding that is its own cause."""
        return cls(finding.name, finding.message, finding.details, finding.fix)

    def text(self) -> str:
        lines = [self.title, *(f"  {line}" for line in self.details)]
        if self.fix:
            lines.append(f"  fix: {self.fix}")
        return "\n".join(lines)


@dataclass
class _Group:
    """Static findings that follow from one cause; ``head`` names the finding that is the cause, if one is."""

    members: dict[str, None] = field(default_factory=dict)  # in the order added; a dict: a root can lack 20,000
    cause: Cause | None = None
    head: str | None = None


def install_all(installer: str, specs: Sequence[str]) -> str:
    """One install command for several requirements, in the root's installer's words."""
    command = install_command(installer, _PLACEHOLDER)
    return command.replace(quote(_PLACEHOLDER), " ".join(quote(spec) for spec in specs), 1)


def merge_specs(specs: Iterable[str]) -> list[str]:
    """One requirement per distribution: extras united, specifiers joined (``cuda-toolkit[a]==13.0.*`` and
    ``cuda-toolkit[b]==13.0.*`` make ``cuda-toolkit[a,b]==13.0.*``), in the order first seen."""
    merged: dict[str, tuple[str, set[str], list[str]]] = {}
    unparsed: list[str] = []
    for spec in specs:
        try:
            req = Requirement(spec)
        except InvalidRequirement:
            unparsed.append(spec)
            continue
        name, extras, specifiers = merged.setdefault(canonicalize_name(req.name), (req.name, set(), []))
        extras.update(req.extras)
        if req.specifier and str(req.specifier) not in specifiers:
            specifiers.append(str(req.specifier))
    out = []
    for name, extras, specifiers in merged.values():
        extra_text = f"[{','.join(sorted(extras))}]" if extras else ""
        out.append(f"{name}{extra_text}{SpecifierSet(','.join(specifiers)) if specifiers else ''}")
    return out + unparsed


class Causes:
    """The cause of every failing finding of a run (see the module docstring for the rules).

    ``driver`` gives the findings of the ``driver[...]`` items (the same child's answers in every process), asked
    only when a failure may follow from the driver: rule 7 takes the driver's fault from them.
    """

    def __init__(self, snapshot: Snapshot, static: Sequence[Finding],
                 driver: Callable[[], Sequence[Finding]] | None = None) -> None:
        self.snapshot = snapshot
        self._driver = driver
        self._fault: list[tuple[Cause, tuple[str, ...]] | None] = []  # the driver's fault and its words, once known
        self._fault_lock = threading.Lock()
        self._failed = {f.name: f for f in static if f.outcome is Outcome.FAIL}
        self._groups: dict[str, _Group] = {}
        self._missing: dict[str, str] = {}  # root key -> its missing group's key
        self._soname_root: dict[str, Root] = {}  # load[SONAME] -> the root whose load child opens it
        self._wheel_item: dict[str, str] = {}  # soname -> the failing requires[...] item of the wheel declaring it
        self._lazy_names: dict[str, str] = {}  # SONAME -> its failed lazy[...] item, for probes that name it
        for root in snapshot.roots:
            self._group_root(root)
        self._group_companions()
        self._static: dict[str, Cause] = {}
        self._members: dict[str, list[str]] = {}  # cause id -> its static findings, the one to show it first
        for key, group in self._groups.items():
            cause = self._finish(key, group)
            members = self._members.setdefault(cause.id, [])
            first = cause.id if cause.id in group.members else group.head
            members += [first] if first in group.members else []
            for name in group.members:
                self._static[name] = cause
                if name != first:
                    members.append(name)
        # what a failing static item explains, by the words an error would use: a file's soname and path
        self._explains: dict[str, Cause] = {}
        for finding in self._failed.values():
            self._explain(finding)
        for name, cause in list(self._static.items()):
            if cause.id == name:  # its own cause: another item's words may explain it (a file of a wheel it names)
                explained = self._explained(self._failed[name], cause)
                if explained is not cause:  # it and what it explained, shown after the item of the cause that explains it
                    self._move(cause, explained)
        self._lock = threading.Lock()
        self.seen: dict[str, Cause] = {}  # every cause handed out in this process, by id

    def _move(self, cause: Cause, explained: Cause) -> None:
        """Every static item of ``cause`` (a missing wheel's ``requires`` item and the lazy items it explains)
        follows from ``explained`` instead."""
        moved = [other for other, theirs in self._static.items() if theirs is cause]
        for other in moved:
            self._static[other] = explained
        members = self._members.setdefault(explained.id, [explained.id] if explained.id in self._failed else [])
        members += [m for m in self._members.pop(cause.id, moved) if m not in members]

    # --- the static groups ------------------------------------------------------------------------

    def _add(self, key: str, name: str, *, cause: Cause | None = None, head: str | None = None) -> None:
        group = self._groups.setdefault(key, _Group(cause=cause, head=head))
        if name in self._failed:
            group.members.setdefault(name)

    def _group_root(self, root: Root) -> None:
        env = self.snapshot.env
        missing = sorted(key for key in root.demands if env.get(key) is None)
        absent = set(missing)
        dist_causes: dict[str, str] = {}
        lacking: list[str] = []  # the failing requires[...] items of the missing distributions
        parts = self._group_parts(root)
        for key in sorted(root.demands):
            name = f"requires[{root.key}>{key}]"
            if name not in self._failed or name in parts:
                continue
            if key in absent:
                lacking.append(name)
            else:
                dist_causes[key] = name
                self._add(name, name, head=name)
        if lacking:
            self._add_missing(root, missing, lacking)
        self._group_files(root, dist_causes)
        if root.linkage is None:
            return
        resolver = self.snapshot.resolver(root) if dist_causes else None
        for lib in root.linkage.cuda_libraries():
            self._soname_root.setdefault(lib.soname, root)
            name = f"linkage[{root.key}>{lib.soname}]"
            if name in self._failed:
                self._group_library(root, lib, name, missing, dist_causes)
            declared = resolver.declared(lib.soname, lib.path) if resolver is not None else None
            if declared is not None and declared.key in dist_causes:
                self._wheel_item.setdefault(lib.soname, dist_causes[declared.key])
        self._group_lazy(root, dist_causes)

    def _group_parts(self, root: Root) -> set[str]:
        """A framework's parts at different versions (``parts[jax]``) explain the requires items of those parts."""
        name = f"parts[{root.key}]"
        if name not in self._failed or root.framework is None:
            return set()
        members = {f"requires[{root.key}>{part}]" for part in root.framework.parts}
        self._add(name, name, head=name)
        for member in sorted(members):
            self._add(name, member)
        return members

    def _group_lazy(self, root: Root, dist_causes: dict[str, str]) -> None:
        """A ``lazy[...]`` item of a library whose wheel is missing or refused follows from that wheel's cause."""
        resolver = self.snapshot.resolver(root)
        for lazy in root.lazy:
            name = f"lazy[{root.key}>{lazy.entry.label or lazy.opener.name}>{lazy.soname}]"
            provision = resolver.provision(lazy.soname, lazy.path) if name in self._failed else None
            if provision is None:
                continue
            self._lazy_names.setdefault(lazy.soname, name)
            if provision.installed is None and root.key in self._missing:
                self._add(self._missing[root.key], name)
            elif provision.key in dist_causes:
                self._add(dist_causes[provision.key], name)

    def _group_files(self, root: Root, dist_causes: dict[str, str]) -> None:
        """A ``file[...]`` item (numba-cuda's libdevice) follows from the cause of the wheel that has the file."""
        for file in root.framework.files if root.framework is not None else ():
            name = f"file[{root.key}>{file.name}]"
            key = next((k for k, _, _ in file.wheels if k in root.demands), None)
            if name not in self._failed or key is None:
                continue
            if key in dist_causes:
                self._add(dist_causes[key], name)
            elif self.snapshot.env.get(key) is None and root.key in self._missing:
                self._add(self._missing[root.key], name)

    def _group_companions(self) -> None:
        """A companion built against another torch: its pin's item explains its other failing items."""
        for name in self._failed:
            if name.startswith("companion[") and name.endswith(">torch-pin]"):
                prefix = name[:-len("torch-pin]")]
                self._add(name, name, head=name)
                for other in self._failed:
                    if other.startswith(prefix) and other != name:
                        self._add(name, other)

    def _add_missing(self, root: Root, missing: Sequence[str], names: Sequence[str]) -> None:
        """The root's items of missing distributions (``names``): one cause, made once, with one install command."""
        key = f"missing[{root.key}]"
        self._missing[root.key] = key
        if len(missing) == 1:
            self._add(key, names[0], head=names[0])
            return
        demands = [demand for dist in missing for demand in root.demands[dist]]
        specs = merge_specs(demand.wanted() for demand in demands)
        cause = Cause(
            key,
            f"{root.dist} is installed without {len(missing)} of the distributions it requires "
            f"(installed with --no-deps, or by a tool that skipped them)",
            tuple(f"missing: {root.demands[dist][0].describe()}" for dist in missing),
            self._aimed(install_all(root.dist.installer, specs)),
        )
        for name in names:
            self._add(key, name, cause=cause)

    def _group_library(self, root: Root, lib: ResolvedLibrary, name: str, missing: Sequence[str],
                       dist_causes: dict[str, str]) -> None:
        resolver = self.snapshot.resolver(root)
        declared = resolver.declared(lib.soname, lib.path)
        provision = resolver.provision(lib.soname, lib.path)
        if provision is not None and provision.installed is None and root.key in self._missing:
            self._add(self._missing[root.key], name)
        elif declared is None:
            self._add(f"undeclared[{root.key}]", name)
        elif declared.key in dist_causes:
            self._add(dist_causes[declared.key], name)
        elif lib.path is not None and declared.key not in self.snapshot.owners.owner_keys(lib.path) \
                and lib.via.step in (Step.LD_LIBRARY_PATH, Step.PRELOAD, Step.LD_SO_CACHE, Step.DEFAULT):
            self._add(f"shadowed[{lib.path.parent}]", name)
        else:
            self._add(name, name, head=name)

    def _explain(self, finding: Finding) -> None:
        """Record the words an error would use for what this failing static item explains."""
        facts = dict(finding.facts)
        if finding.check == "versions":  # the file short of symbol versions
            words = [facts.get("soname", ""), facts.get("path", "")]
        elif finding.check == "cuda-major":  # the other major's wheels, and the libraries they overwrote
            words = [*facts.get("others", "").split(","), *facts.get("sonames", "").split(","),
                     *facts.get("ships", "").split(","),  # what a root takes from the wrong wheel (cuda.pathfinder)
                     *(f"{key} is not installed" for key in facts.get("replaced", "").split(",") if key)]
        else:
            return
        cause = self._static.setdefault(finding.name, Cause.of(finding))
        for word in filter(None, words):
            self._explains.setdefault(word, cause)

    def _explained(self, finding: Finding, own: Cause) -> Cause:
        text = "\n".join((finding.message, *finding.details))
        return next((cause for word, cause in self._explains.items() if cause.id != finding.name and word in text),
                    own)

    def _aimed(self, fix: str) -> str:
        interpreter = self.snapshot.interpreter
        return interpreter.rewrite(fix) if interpreter is not None else fix

    def _finish(self, key: str, group: _Group) -> Cause:
        if group.head is not None:
            return Cause.of(self._failed[group.head])
        if group.cause is not None:
            return group.cause
        members = list(group.members)
        if len(members) == 1:
            return Cause.of(self._failed[members[0]])
        if key.startswith("undeclared["):
            return self._undeclared(key, members)
        return self._shadowed(key, members)

    def _undeclared(self, key: str, members: Sequence[str]) -> Cause:
        root = next(r for r in self.snapshot.roots if key == f"undeclared[{r.key}]")
        resolver = self.snapshot.resolver(root)
        sonames = [name.partition(">")[2].rstrip("]") for name in members]
        providers = [resolver.table_provider(soname) for soname in sonames]
        specs = merge_specs(p.spec(resolver.cuda) for p in providers if p is not None)
        fix = self._aimed(install_all(root.dist.installer, specs)) if specs else self._failed[members[0]].fix
        return Cause(
            key,
            f"{root.dist}'s metadata declares no distribution for {len(sonames)} CUDA libraries its ELF files "
            f"need: metadata of another platform or build?",
            (f"undeclared: {', '.join(sonames)}",),
            fix,
        )

    def _shadowed(self, key: str, members: Sequence[str]) -> Cause:
        folder = key[len("shadowed["):-1]
        sonames = [name.partition(">")[2].rstrip("]") for name in members]
        first = self._failed[members[0]]
        via = dict(first.facts).get("via", "")
        return Cause(
            key,
            f"{folder} ({via}) shadows {len(sonames)} CUDA libraries of the wheels: the import may work by "
            f"accident with foreign libraries",
            (f"shadowed: {', '.join(sonames)}",),
            first.fix,
        )

    def heads(self, selected: Iterable[str]) -> dict[str, str]:
        """Each static cause's head among the ``selected`` items: the item that shows the cause in full, while
        the others that follow from it are counted as its consequences.  The cause's own finding if selected,
        else its first selected finding (a missing wheel's ``requires`` item before the linkage it explains);
        the same in every process, as it depends on files and the item list only."""
        chosen = set(selected)
        found = {cause: next((name for name in members if name in chosen), None) for cause, members in self._members.items()}
        return {cause: head for cause, head in found.items() if head is not None}

    # --- every finding, static or from a probe --------------------------------------------------------

    def cause_of(self, finding: Finding) -> Cause | None:
        """The cause of a failing finding; None for a pass or a skip."""
        if finding.outcome is not Outcome.FAIL:
            return None
        cause = self._static.get(finding.name) or self._probe_cause(finding) or Cause.of(finding)
        with self._lock:
            self.seen.setdefault(cause.id, cause)
        return cause

    def attach(self, finding: Finding) -> Finding:
        """The finding with its cause's id (unchanged for a pass or a skip)."""
        cause = self.cause_of(finding)
        return replace(finding, cause=cause.id) if cause is not None else finding

    def _probe_cause(self, finding: Finding) -> Cause | None:
        driver = self._driver_cause(finding)
        if driver is not None:
            return driver
        if finding.check == "companion":
            pin = f"companion[{finding.subject.partition('>')[0]}>torch-pin]"
            if pin in self._static and pin != finding.name:
                return self._static[pin]
        root = self._soname_root.get(finding.subject) if finding.check == "load" else None
        if root is not None:
            cause = self._static.get(f"linkage[{root.key}>{finding.subject}]")
            if cause is not None:
                return cause
        mapped = dict(finding.facts).get("mapped")
        if mapped:
            folder = mapped.rsplit("/", 1)[0]
            cause = next((c for c in self._static.values() if c.id == f"shadowed[{folder}]"), None)
            if cause is not None:
                return cause
        return self._named_library_cause("\n".join((finding.message, *finding.details)))

    def _driver_cause(self, finding: Finding) -> Cause | None:
        """Rule 7: the driver's fault, for a failure it explains; ``no-driver`` for an item that needs a driver there is not."""
        text = "\n".join((finding.message, *finding.details))
        needs_gpu = finding.fix == INSTALL_DRIVER or finding.message.endswith(REQUIRE_GPU)
        if not (needs_gpu or finding.check == "driver" or finding.check == "host"
                or any(word in text for word in DRIVER_FAULT_WORDS)):
            return None  # nothing of the driver's: its child is not asked
        fault = self._driver_fault()
        if fault is None:
            return Cause(NO_DRIVER, "no NVIDIA driver or GPU on this host, and --cuda-deps-require-gpu asks for one",
                         fix=INSTALL_DRIVER) if needs_gpu else None
        cause, words = fault
        if needs_gpu or finding.check == "driver" or (finding.fix and finding.fix == cause.fix) \
                or any(word in text for word in words):
            return cause
        return None

    def _driver_fault(self) -> tuple[Cause, tuple[str, ...]] | None:
        """The first failing driver item of a driver that is there (not one that only found no driver), as a
        cause, with the words a failure it explains would use; asked once per process."""
        with self._fault_lock:
            if not self._fault:
                findings = self._driver() if self._driver is not None else ()
                faulty = next((f for f in findings if f.outcome is Outcome.FAIL and f.fix != INSTALL_DRIVER
                               and not f.message.endswith(REQUIRE_GPU)), None)
                self._fault.append(None if faulty is None else (
                    Cause.of(faulty), (*DRIVER_FAULT_WORDS, *filter(None, [dict(faulty.facts).get("error")]))))
            return self._fault[0]

    def _named_library_cause(self, text: str) -> Cause | None:
        """The cause of the first failed library the text names: by soname (``libcudnn.so.9: cannot open``),
        else by its stem, as torch's own loader words it (``libcudart.so.*[0-9] not found in the system path``)."""
        failed = {soname: self._static[f"linkage[{root.key}>{soname}]"] for soname, root in self._soname_root.items()
                  if f"linkage[{root.key}>{soname}]" in self._static and soname not in DRIVER_SONAMES}
        failed.update({soname: self._static[name] for soname, name in self._lazy_names.items()
                       if soname not in failed and name in self._static})
        for soname in _SONAME.findall(text):
            if soname in failed:
                return failed[soname]
        for word, cause in self._explains.items():
            if word in text:
                return cause
        for soname, cause in sorted(failed.items()):
            if re.search(re.escape(soname.split(".so")[0]) + r"\.so(?![\w-])", text):
                return cause
        return self._symbol_cause(text)

    def _symbol_cause(self, text: str) -> Cause | None:
        """``undefined symbol: ncclCommShrink``: the failing requires[...] item of the wheel of the library that
        defines it (NCCL's, installed at a version the root refuses)."""
        for symbol in _UNDEFINED.findall(text):
            stem = library_of_symbol(symbol)
            for soname, item in sorted(self._wheel_item.items()):
                if stem is not None and soname.split(".so")[0] == stem and item in self._static:
                    return self._static[item]
        return None
