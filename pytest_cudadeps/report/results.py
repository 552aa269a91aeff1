"""The run as a whole: the findings of every item, their root causes, the summary section and the JSON report.

Every face reads the same objects: the items' :class:`~pytest_cudadeps.checks.findings.Finding` (with
their cause's id), the :class:`~pytest_cudadeps.report.causes.Cause` they name, and the snapshot of
the environment.  Under pytest-xdist the findings travel from the workers as plain JSON
(:func:`finding_json`) and the controller takes its own snapshot (files only, cheap) for the
environment; the summary and the JSON file are made once, there.

The JSON document (``"version": 1``) is described by ``report.schema.json`` in this package.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pytest_cudadeps.checks.findings import Finding, Outcome
from pytest_cudadeps.core.report_format import CauseDoc, FindingDoc, Payload
from pytest_cudadeps.report.causes import Cause

# --- findings and causes as JSON ------------------------------------------------------------------


def finding_json(finding: Finding) -> FindingDoc:
    return {
        "id": finding.name, "check": finding.check, "subject": finding.subject, "outcome": finding.outcome.value,
        "message": finding.message, "details": list(finding.details), "fix": finding.fix, "cause": finding.cause,
        "facts": dict(finding.facts),
    }


def finding_from_json(data: FindingDoc) -> Finding:
    return Finding(data["check"], data["subject"], Outcome(data["outcome"]), data["message"], tuple(data["details"]),
                   data["fix"], tuple((str(k), str(v)) for k, v in data["facts"].items()), data["cause"])


def cause_json(cause: Cause) -> CauseDoc:
    return {"id": cause.id, "title": cause.title, "details": list(cause.details), "fix": cause.fix}


def cause_from_json(data: CauseDoc) -> Cause:
    return Cause(data["id"], data["title"], tuple(data["details"]), data["fix"])


# --- the run ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RootCause:
    """A cause with the failing findings that follow from it."""

    cause: Cause
    findings: tuple[Finding, ...]

    @property
    def own(self) -> bool:
        """The cause is one of its findings (its full text was printed with that item)."""
        return any(f.name == self.cause.id for f in self.findings)


@dataclass(frozen=True)
class Results:
    """Every finding of a run (one per item that ran) and the causes they name."""

    findings: tuple[Finding, ...]
    causes: Mapping[str, Cause]

    def failed(self) -> list[Finding]:
        return [f for f in self.findings if f.outcome is Outcome.FAIL]

    def count(self, outcome: Outcome) -> int:
        return sum(f.outcome is outcome for f in self.findings)

    def root_causes(self) -> list[RootCause]:
        """Each cause with its findings: the cause explaining most first, then by id."""
        grouped: dict[str, list[Finding]] = {}
        for finding in self.failed():
            grouped.setdefault(finding.cause or finding.name, []).append(finding)
        found = [RootCause(self.causes.get(key) or Cause.of(members[0]), tuple(members))
                 for key, members in grouped.items()]
        return sorted(found, key=lambda rc: (-len(rc.findings), rc.cause.id))

    def by_name(self) -> dict[str, Finding]:
        return {f.name: f for f in self.findings}

    def verdict(self) -> str:
        """One line: healthy, or how many checks failed from how many causes."""
        failed = self.failed()
        if not failed:
            skipped = self.count(Outcome.SKIP)
            return (f"cudadeps: healthy: {self.count(Outcome.PASS)} checks passed"
                    + (f", {skipped} skipped" if skipped else ""))
        causes = self.root_causes()
        plural = "s" if len(causes) > 1 else ""
        return f"cudadeps: {len(failed)} failed check{'s' if len(failed) > 1 else ''} from {len(causes)} root cause{plural}"


def results_from_payloads(payloads: Iterable[Payload]) -> Results:
    """The controller's view: the items' payloads (``{"finding": ..., "cause": ...}``) as findings and causes."""
    findings: list[Finding] = []
    causes: dict[str, Cause] = {}
    for payload in payloads:
        findings.append(finding_from_json(payload["finding"]))
        cause_doc = payload["cause"]
        if cause_doc:
            cause = cause_from_json(cause_doc)
            causes.setdefault(cause.id, cause)
    return Results(tuple(findings), causes)


def payload(finding: Finding, cause: Cause | None) -> Payload:
    return {"finding": finding_json(finding), "cause": cause_json(cause) if cause is not None else None}
