"""What every check returns: a finding, independent of pytest.

The engine modules (metadata, linkage, loading, driver, smoke) only produce
:class:`Finding` objects; the pytest layer turns each one into an item and the
item's outcome.  Keeping them plain frozen dataclasses means any other face
(a JSON report, a command line tool) can read the very same results.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from pytest_cudadeps.core.text import one_line


class Outcome(str, enum.Enum):
    """How a check ended."""

    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class Finding:
    """The result of one check on one subject.

    ``check`` and ``subject`` make the item's name (``requires[torch>nvidia-cublas]``).
    ``message`` is the first line of a failure or the reason of a skip;
    ``details`` are the further lines (the chain that asked, what is installed, where);
    ``fix`` is the exact command or action that repairs the environment.
    ``facts`` are (key, value) pairs kept for reports: they become the item's
    ``user_properties`` (and so junitxml properties); a fact named ``summary``
    is shown beside PASSED in ``-v`` output.
    ``cause`` is the id of the root cause a failure follows from (:mod:`pytest_cudadeps.report.causes`):
    its own name when it is a root cause itself, another finding's name or a group's id
    (``missing[torch]``) when it is a consequence, empty until the causes are attached.
    """

    check: str
    subject: str
    outcome: Outcome
    message: str = ""
    details: tuple[str, ...] = ()
    fix: str = ""
    facts: tuple[tuple[str, str], ...] = field(default=())
    cause: str = ""  # last, with a default: positional construction keeps working

    def __post_init__(self) -> None:
        # Escaped once here, so every face (terminal, junitxml, a JSON report) gets safe text; each field
        # is one line (details: one per entry), so a newline from a file cannot start a forged line.
        for name in ("subject", "message", "fix"):
            object.__setattr__(self, name, one_line(getattr(self, name)))
        object.__setattr__(self, "details", tuple(one_line(line) for line in self.details))
        object.__setattr__(self, "facts", tuple((key, one_line(value)) for key, value in self.facts))

    @property
    def name(self) -> str:
        return f"{self.check}[{self.subject}]"

    def text(self) -> str:
        """The message as a user reads it: a few lines, never a traceback."""
        lines = [self.message, *(f"  {line}" for line in self.details)]
        if self.fix:
            lines.append(f"  fix: {self.fix}")
        return "\n".join(lines)


Pending = Callable[[], "Finding"]  # an item's work: computes its finding when the item runs
# the fix of every "no driver here" item: the driver items, the load of libcuda, the host items, the causes
INSTALL_DRIVER = "install the NVIDIA driver, or start the container with the GPU runtime (docker run --gpus all)"
REQUIRE_GPU = ", but --cuda-deps-require-gpu asks for a GPU"  # ends the message of a failure of unavailable()


def passed(check: str, subject: str, summary: str, **facts: str) -> Finding:
    return Finding(
        check, subject, Outcome.PASS, summary, facts=(("summary", summary), *sorted(facts.items()))
    )


def failed(
    check: str, subject: str, message: str, *details: str, fix: str = "", **facts: str
) -> Finding:
    return Finding(
        check, subject, Outcome.FAIL, message, tuple(details), fix, tuple(sorted(facts.items()))
    )


def skipped(check: str, subject: str, reason: str, **facts: str) -> Finding:
    return Finding(check, subject, Outcome.SKIP, reason, facts=tuple(sorted(facts.items())))


def unavailable(check: str, subject: str, reason: str, *, require_gpu: bool, fix: str, **facts: str) -> Finding:
    """No driver or GPU to check: a skip with the reason, or a failure under --cuda-deps-require-gpu."""
    if require_gpu:
        return failed(check, subject, f"{reason}{REQUIRE_GPU}", fix=fix)
    return skipped(check, subject, reason, **facts)
