"""``cudadeps-slurm-health``: its configuration, when it drains and resumes, its timeout and lock, ``--status`` and
``--prolog`` on fake trees.  The real Slurm is in tests/integration/test_slurm.py."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from pytest_cudadeps import slurm
from pytest_cudadeps.slurm import BROKEN, HEALTHY, UNKNOWN, ConfigError, Outcome, Settings
from tests.support import sitebuilder as sb
from tests.support.plugin import cuda_site

# --- configuration --------------------------------------------------------------------------------------


def test_the_file_beside_the_program_comes_before_the_systems(tmp_path: Path) -> None:
    program = tmp_path / "bin" / "cudadeps-slurm-health"
    assert slurm.config_paths(str(program)) == [tmp_path / "bin" / "cudadeps-slurm.conf", Path("/etc/cudadeps/slurm.conf")]
    assert slurm.load_settings([tmp_path / "none.conf"]) == Settings()
    conf = tmp_path / "a.conf"
    conf.write_text(textwrap.dedent("""\
        # comment
        args = --cuda-deps-require-gpu '--cuda-deps-path=/opt/my venv'
        timeout = 30   # seconds
        slurm_bin = /opt/slurm/bin
        unknown = ignore
    """))
    assert slurm.load_settings([tmp_path / "none.conf", conf]) == Settings(
        args=("--cuda-deps-require-gpu", "--cuda-deps-path=/opt/my venv"), timeout=30.0, slurm_bin="/opt/slurm/bin",
        unknown="ignore", source=str(conf))


@pytest.mark.parametrize(("text", "error"), [
    ("timeout = 50", "timeout must be above 0 and at most 45 s, not 50"),
    ("timeout = soon", "could not convert string to float: 'soon'"),
    ("unknown = reboot", "unknown must be drain or ignore, not 'reboot'"),
    ("lok = /run/x", "unknown key 'lok'"),
    ("args = 'unclosed", "No closing quotation"),
])
def test_a_bad_configuration_says_where_and_what(text: str, error: str) -> None:
    with pytest.raises(ConfigError, match=r"^/etc/x\.conf: ") as raised:
        slurm.parse_settings(text, "/etc/x.conf")
    assert error in str(raised.value)


# --- drain and resume ---------------------------------------------------------------------------------

SICK = Outcome(BROKEN, "cudadeps: 5 failed checks from 1 root cause", ("requires[torch>nvidia-cublas]",))
WELL = Outcome(HEALTHY, "cudadeps: healthy: 69 checks passed")
LOST = Outcome(UNKNOWN, "cudadeps: could not check: no verdict within 40 s", ("timeout",))


@pytest.mark.parametrize(("outcome", "state", "reason", "unknown", "action"), [
    (SICK, "idle", "none", "drain", "drain"),
    (SICK, "mixed", "none", "drain", "drain"),
    (SICK, "drained", "cudadeps: requires[torch>nvidia-cublas]", "drain", None),  # already, for this cause
    (SICK, "drained", "cudadeps: missing[torch]", "drain", "drain"),  # ours, another cause: re-worded
    (SICK, "drained", "admin: new PSU", "drain", None),  # an admin's drain is never re-worded
    (WELL, "drained", "cudadeps: requires[torch>nvidia-cublas]", "drain", "resume"),
    (WELL, "draining", "cudadeps: could not check (timeout)", "drain", "resume"),
    (WELL, "drained", "admin: new PSU", "drain", None),  # never resumed
    (WELL, "drained", "Prolog error", "drain", None),
    (WELL, "idle", "none", "drain", None),
    (LOST, "idle", "none", "drain", "drain"),
    (LOST, "idle", "none", "ignore", None),
    (LOST, "drained", "cudadeps: requires[torch>nvidia-cublas]", "ignore", None),  # not resumed either
])
def test_only_its_own_drains_are_resumed(outcome: Outcome, state: str, reason: str, unknown: str,
                                          action: str | None) -> None:
    assert slurm.decide(outcome, state, reason, unknown) == action


def test_the_reason_names_the_root_causes_in_a_few_words() -> None:
    assert slurm.reason_for(SICK) == "cudadeps: requires[torch>nvidia-cublas]"
    assert slurm.reason_for(LOST) == "cudadeps: could not check (timeout)"
    many = Outcome(BROKEN, "", tuple(f"requires[torch>nvidia-{name}]" for name in ("cublas", "nccl", "cudnn-cu13")))
    assert slurm.reason_for(many) == "cudadeps: requires[torch>nvidia-cublas], requires[torch>nvidia-nccl] +1 more"
    long = Outcome(BROKEN, "", ("x" * 200,))
    assert len(slurm.reason_for(long)) == slurm.REASON_LIMIT
    assert slurm.reason_for(long).endswith("x...")


# --- the check ----------------------------------------------------------------------------------------


def test_a_hanging_check_is_killed_with_its_children_after_the_timeout(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    hang = tmp_path / "python"  # stands for the interpreter: a child that hangs with a grandchild
    hang.write_text(f"#!/bin/sh\nsleep 300 &\necho $$ $! > {pids}\nwait\n")
    hang.chmod(0o755)
    outcome = slurm.run_check(Settings(timeout=1), str(hang))
    assert outcome == Outcome(UNKNOWN, "cudadeps: could not check: no verdict within 1 s", ("timeout",))
    for pid in map(int, pids.read_text().split()):
        assert not running(pid)


def running(pid: int) -> bool:
    """Alive and not a zombie (the killed grandchild waits for PID 1 to reap it, lazily on some machines)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_status_and_prolog_check_the_configured_site(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    good, bad = cuda_site(pytester), sb.torch_2_14_1(pytester.path / "bad-site", omit=["nvidia-cublas"])
    program = pytester.path / "bin" / "cudadeps-slurm-health"
    program.parent.mkdir()
    monkeypatch.setattr(sys, "argv", [str(program)])
    output = pytester.path / "check.out"
    for site, status in ((good, HEALTHY), (bad, BROKEN)):
        (program.parent / "cudadeps-slurm.conf").write_text(
            f"args = --cuda-deps-path={site} --cuda-deps-no-probes\noutput = {output}\n")
        assert slurm.main(["--status"]) == status
        assert slurm.main(["--prolog"]) == status
        monkeypatch.setenv("SLURM_SCRIPT_CONTEXT", "prolog_slurmd")  # a Prolog gets no arguments
        assert slurm.main([]) == status
        monkeypatch.delenv("SLURM_SCRIPT_CONTEXT")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("cudadeps: healthy: ")
    assert lines[-1] == "cudadeps: 1 failed check from 1 root cause: requires[torch>nvidia-cublas]"
    assert "fix: pip install 'nvidia-cublas==13.1.1.3.*'" in output.read_text()
    assert slurm.main(["--drain"]) == UNKNOWN
    assert capsys.readouterr().out.startswith("usage: cudadeps-slurm-health [--prolog | --status]")


def test_a_run_that_finds_the_lock_held_exits_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(lock=str(tmp_path / "lock"), slurm_bin=str(tmp_path / "no-slurm"))
    with slurm.exclusive(settings.lock) as mine:
        assert mine
        assert slurm.health(settings, "/nonexistent/python") == HEALTHY  # it ran nothing: neither python nor scontrol
    assert capsys.readouterr().out == f"cudadeps-slurm-health: another run holds {settings.lock}\n"
    with pytest.raises(OSError, match=r"no scontrol in .*no-slurm"):
        slurm.health(settings, "/nonexistent/python")
