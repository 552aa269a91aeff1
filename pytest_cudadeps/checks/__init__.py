"""Facts to findings: one module per item prefix (``requires``, ``linkage``, ``load``...), each a function of
the snapshot or of a probe's answer that returns :class:`~pytest_cudadeps.checks.findings.Finding` objects."""
