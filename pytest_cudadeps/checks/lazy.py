"""The ``lazy[ROOT>OPENER>SONAME]`` findings: a library opened by name at run time is found where its opener
looks, in the wheel it must come from (:mod:`pytest_cudadeps.engine.lazy` resolves them)."""

from __future__ import annotations

from pytest_cudadeps.checks.findings import Finding, failed, passed, skipped
from pytest_cudadeps.checks.linkage import searched_text
from pytest_cudadeps.engine.lazy import LazyResolution, lazy_fix
from pytest_cudadeps.engine.ldso import Resolution, Step, Via
from pytest_cudadeps.engine.snapshot import Root, Snapshot

CHECK = "lazy"


def _expected_owner(snapshot: Snapshot, root: Root, lazy: LazyResolution) -> str | None:
    """The distribution that must own the file: the opener's, or the one the root declares for the soname."""
    if lazy.entry.same_wheel:
        return lazy.opener_owner.key if lazy.opener_owner else None
    provision = snapshot.resolver(root).provision(lazy.soname, lazy.path)
    return provision.key if provision else None


def _not_found(snapshot: Snapshot, root: Root, lazy: LazyResolution, subject: str, fix: str) -> Finding:
    """Nothing where the opener looks: a note for an optional library or one only a loaded library makes findable."""
    name = lazy.entry.label or lazy.opener.name
    opener = f"{name} ({lazy.opener})"
    seen_as = lazy.entry.seen_as.format(tried=", ".join(lazy.tried))
    if lazy.entry.optional:
        return skipped(CHECK, subject, f"optional: {lazy.soname} is not where {name} looks; only "
                                       f"{lazy.entry.optional} needs it (opened by {opener})", source=lazy.entry.source)
    if _only_if_loaded_first(snapshot, root, lazy):
        return skipped(CHECK, subject, f"note: {lazy.soname} is installed, but {name} finds it only when another "
                                       f"library has loaded it first, and nothing {root.key} opens does: {seen_as}; "
                                       f"no reinstall changes that", source=lazy.entry.source)
    return failed(
        CHECK, subject, f"{lazy.soname} is not where {name} looks when it opens it at run time: {seen_as}",
        f"opened by: {opener}, trying {', '.join(lazy.tried)}",
        f"searched: {searched_text(Resolution(lazy.soname, lazy.opener, None, Via(Step.NOT_FOUND), lazy.searched))}",
        fix=fix, source=lazy.entry.source,
    )


def _only_if_loaded_first(snapshot: Snapshot, root: Root, lazy: LazyResolution) -> bool:
    """A framework root's library opens another by name from its own folder alone, and the wheel that has it is
    installed (TensorFlow without cuDNN: cuBLASLt finds libnvrtc.so.12 only once cuDNN's graph library mapped it)."""
    if root.framework is None or lazy.entry.label or lazy.entry.same_wheel:
        return False
    provision = snapshot.resolver(root).provision(lazy.soname, None)
    return provision is not None and provision.installed is not None and any(
        dist.key == provision.key for _, dist in snapshot.owners.files_named(lazy.soname))


def lazy_finding(snapshot: Snapshot, root: Root, lazy: LazyResolution) -> Finding:
    """``lazy[ROOT>OPENER>SONAME]``: found where its opener looks, in the wheel it must come from."""
    name = lazy.entry.label or lazy.opener.name
    subject = f"{root.key}>{name}>{lazy.soname}"
    opener = f"{name} ({lazy.opener})"
    fix = lazy_fix(lazy, snapshot.resolver(root))
    if lazy.resolution is None or lazy.path is None:
        return _not_found(snapshot, root, lazy, subject, fix)
    expected = None if lazy.entry.optional else _expected_owner(snapshot, root, lazy)
    owners = snapshot.owners.of(lazy.path)
    owner = owners[0][0] if owners else None
    via = lazy.resolution.via
    if expected is not None and expected not in {d.key for d, _ in owners}:
        real = lazy.path.resolve()
        also = f" (the file is {real.name})" if real.name != lazy.path.name else ""
        whose = f"owned by {owner}" if owner else "owned by no installed distribution"
        fix = (f"remove {lazy.path.parent} from LD_LIBRARY_PATH" if via.step is Step.LD_LIBRARY_PATH else fix)
        return failed(
            CHECK, subject,
            f"{lazy.soname} resolves to {lazy.path}{also} (via {via}, {whose}), not to {expected}'s copy, which "
            f"{lazy.opener.name} is built to open: a library of another version or build",
            f"opened by: {opener}, trying {', '.join(lazy.tried)}",
            fix=fix, path=str(lazy.path), source=lazy.entry.source,
        )
    whose = str(owner) if owner else "no distribution"
    return passed(CHECK, subject, f"{lazy.soname} -> {lazy.path} ({whose}, opened by {name}, via {via})",
                  path=str(lazy.path), source=lazy.entry.source)


def lazy_findings(snapshot: Snapshot) -> list[Finding]:
    """One ``lazy[ROOT>OPENER>SONAME]`` item per table entry whose opener each root's process maps."""
    return [lazy_finding(snapshot, root, lazy) for root in snapshot.roots for lazy in root.lazy]
