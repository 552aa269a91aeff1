"""The static findings of a snapshot, all of them: metadata, ELF files, ``stat`` and the environment variables
only; nothing is run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_cudadeps.checks.findings import Finding

if TYPE_CHECKING:
    from pytest_cudadeps.engine.snapshot import Snapshot


def static_findings(snapshot: Snapshot) -> list[Finding]:
    """The declared-dependency, linkage, companion, Triton, lazily-opened-library and security findings: metadata,
    ELF files, stat and the environment variables only, nothing run."""
    from pytest_cudadeps.checks.companion import companion_findings
    from pytest_cudadeps.checks.frameworks import (
        after_torch_findings,
        file_findings,
        framework_findings,
        parts_findings,
        shared_findings,
    )
    from pytest_cudadeps.checks.lazy import lazy_findings
    from pytest_cudadeps.checks.legacy_cuda import legacy_cuda_findings
    from pytest_cudadeps.checks.linkage import linkage_findings
    from pytest_cudadeps.checks.requires import declared_findings
    from pytest_cudadeps.checks.security import security_findings
    from pytest_cudadeps.checks.toolchain import toolchain_findings
    from pytest_cudadeps.checks.triton import static_triton_findings
    from pytest_cudadeps.checks.versions import versions_finding

    findings = declared_findings(snapshot)
    for root in snapshot.roots:
        if root.linkage is not None:
            found = linkage_findings(snapshot.env, root.linkage, root.closure, root.cuda, owners=snapshot.owners,
                                     verify_hashes=snapshot.settings.verify_hashes, resolver=snapshot.resolver(root))
            findings += framework_findings(snapshot, root, found)
            if root.linkage.objects:  # a root with no shared object of its own has no library to hold to versions
                findings.append(versions_finding(root.key, root.linkage))
    findings += shared_findings(snapshot) + after_torch_findings(snapshot) + parts_findings(snapshot)
    findings += file_findings(snapshot, os.environ) + legacy_cuda_findings(snapshot.env)
    findings += companion_findings(snapshot.env, snapshot.companions)
    settings = snapshot.settings
    findings += static_triton_findings(snapshot.env, os.environ, use_ld_cache=not settings.no_ld_cache,
                                       host_root=Path(settings.host_root), require_gpu=settings.require_gpu)
    findings += toolchain_findings(snapshot.env, os.environ)
    return findings + lazy_findings(snapshot) + security_findings(snapshot)
