from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

import pytest_cudadeps
from pytest_cudadeps.probes.child.protocol import NvmlAnswer
from pytest_cudadeps.probes.runner import PACKAGE_VARIABLE, PATHS_VARIABLE, Blame, child_environment, decoded, run_probe
from tests.support.bounds import WATCHDOG_SECONDS
from tests.support.fakes import misbehaving

ECHO = """
import json, os, sys
from pytest_cudadeps.probes.child import protocol

protocol.open_channel()
request = protocol.read_request()
print("garbage a library might print")  # must not reach the protocol
protocol.begin("echo")
protocol.end("echo", request=request, path=sys.path, cwd_first=sys.path[0] == "", protocol=protocol.__file__)
for step in request.get("then", []):
    protocol.begin(step)
    exec(request["code"])
protocol.done()
"""


def write_probe(folder: Path) -> Path:
    (folder / "echo_probe.py").write_text(ECHO)
    return folder


def test_request_reaches_the_child_and_paths_come_after_the_standard_library(tmp_path: Path) -> None:
    folder = write_probe(tmp_path)
    (folder / "enum").mkdir()  # a folder in the inspected site-packages that would shadow the standard library
    (folder / "enum" / "__init__.py").write_text("raise SystemExit('the inspected enum/ was imported')\n")
    # another pytest-cudadeps in the checked environment: the child's modules still come from this one
    (folder / "pytest_cudadeps").mkdir()
    (folder / "pytest_cudadeps" / "__init__.py").write_text("raise SystemExit('the inspected copy was imported')\n")
    run = run_probe("echo_probe", {"x": [1, 2]}, timeout=30, paths=[str(folder)])
    assert run.ok, (run.trouble(), run.stderr)
    data = run.results["echo"]
    assert data["request"] == {"x": [1, 2]}
    path = data["path"]
    assert isinstance(path, list)
    # --cuda-deps-path comes after the standard library and before the interpreter's own site-packages
    stdlib = os.path.dirname(os.__file__)
    site = next(i for i, entry in enumerate(path) if entry.endswith("site-packages") and entry != str(folder))
    assert path.index(stdlib) < path.index(str(folder)) < site
    ours = Path(pytest_cudadeps.__file__).resolve().parent / "probes" / "child" / "protocol.py"
    assert Path(str(data["protocol"])).resolve() == ours
    assert not data["cwd_first"]  # "python -c" puts the working folder first: removed
    assert run.current is None
    assert run.trouble() is None


def test_the_child_puts_each_site_folders_pth_entries_after_it_as_the_scan_does(tmp_path: Path) -> None:
    """A `setup.py develop` or PEP 660 path line in a .pth of a --cuda-deps-path folder: the child's sys.path holds
    it where the parent's scan put it (what torch's preload globs); comments, import lines (code, never run),
    missing folders and a FIFO named .pth (no hang) add nothing."""
    from pytest_cudadeps.engine.distributions import scan

    (tmp_path / "site").mkdir()
    folder = write_probe(tmp_path / "site")
    (tmp_path / "src" / "a").mkdir(parents=True)
    (tmp_path / "src" / "b").mkdir()
    (folder / "easy-install.pth").write_text(f"# develop\nimport os; os.mkdir({str(tmp_path / 'ran')!r})\n"
                                             f"{tmp_path / 'src' / 'a'}\n../src/b\n{tmp_path / 'gone'}\n")
    (folder / ".hidden.pth").write_text(f"{tmp_path}\n")
    os.mkfifo(folder / "zz-fifo.pth")
    run = run_probe("echo_probe", {}, timeout=30, paths=[str(folder)])
    assert run.ok, (run.trouble(), run.stderr)
    path = run.results["echo"]["path"]
    assert isinstance(path, list)
    expected = [str(folder), str(tmp_path / "src" / "a"), str(tmp_path / "src" / "b")]
    assert path[path.index(str(folder)):path.index(str(folder)) + 3] == expected
    assert [str(p) for p in scan([folder]).paths] == expected
    assert not (tmp_path / "ran").exists()
    assert str(tmp_path) not in path


def test_crash_names_the_step_and_the_signal(tmp_path: Path, gcc: str) -> None:
    lib = misbehaving(gcc, tmp_path, "segv")
    folder = write_probe(tmp_path)
    code = f"import ctypes; ctypes.CDLL({str(lib)!r})"
    run = run_probe("echo_probe", {"then": ["first", "second"], "code": code}, timeout=30, paths=[str(folder)])
    assert not run.ok
    assert run.current == "first"
    assert run.trouble() == "crashed: killed by signal 11 (SIGSEGV)"


def test_answers_come_back_and_python_exits_without_tearing_down_its_modules(tmp_path: Path) -> None:
    folder = write_probe(tmp_path)
    # done() exits as C does: Python's atexit handlers run, its module teardown (where __del__ runs) does not
    code = ("import atexit, os; atexit.register(lambda: os.write(2, b'atexit ran\\n')); "
            "Noisy = type('Noisy', (), {'__del__': lambda self: os.write(2, b'teardown ran\\n')}); "
            "globals()['kept'] = Noisy(); protocol.end(step)")
    run = run_probe("echo_probe", {"then": ["work"], "code": code}, timeout=30, paths=[str(folder)])
    assert run.ok, (run.trouble(), run.stderr)
    assert "atexit ran" in run.stderr
    assert "teardown ran" not in run.stderr


def test_a_crash_at_exit_after_every_answer_is_still_the_childs_crash(tmp_path: Path, gcc: str) -> None:
    lib = misbehaving(gcc, tmp_path, "exitsegv")
    folder = write_probe(tmp_path)
    code = f"import ctypes; ctypes.CDLL({str(lib)!r}); protocol.end(step)"
    run = run_probe("echo_probe", {"then": ["loaded"], "code": code}, timeout=30, paths=[str(folder)])
    assert run.finished
    assert run.current is None
    assert run.results.keys() == {"echo", "loaded"}
    assert run.trouble() == "crashed at exit, after answering: killed by signal 11 (SIGSEGV)"


def test_what_a_library_prints_does_not_reach_the_protocol(tmp_path: Path, gcc: str) -> None:
    lib = misbehaving(gcc, tmp_path, "noisy")  # prints {"begin": "phantom"} on stdout
    folder = write_probe(tmp_path)
    code = f"import ctypes; ctypes.CDLL({str(lib)!r}); protocol.end(step)"
    run = run_probe("echo_probe", {"then": ["noisy"], "code": code}, timeout=30, paths=[str(folder)])
    assert run.ok, run.stderr
    assert run.begun == ("echo", "noisy")
    assert '{"begin": "phantom"}' in run.stderr


def test_hang_is_killed_at_the_timeout(tmp_path: Path) -> None:
    folder = write_probe(tmp_path)
    run = run_probe("echo_probe", {"then": ["sleeping"], "code": "import time; time.sleep(600)"},
                    timeout=1.5, paths=[str(folder)])
    assert run.timed_out
    assert run.returncode is None
    assert run.current == "sleeping"
    assert run.trouble() == "hung: no answer within 1.5 s (killed)"
    assert run.elapsed < WATCHDOG_SECONDS  # killed at its timeout, not after the 600 s sleep


def test_exit_zero_before_done_is_trouble(tmp_path: Path) -> None:
    folder = write_probe(tmp_path)
    run = run_probe("echo_probe", {"then": ["quitter"], "code": "os._exit(0)"}, timeout=30, paths=[str(folder)])
    assert run.returncode == 0
    assert not run.finished
    assert run.current == "quitter"
    trouble = run.trouble()
    assert trouble is not None
    assert "exit status 0" in trouble


def test_child_environment_names_the_folders_and_keeps_callers_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", "/the/users/own")
    env = child_environment(["/somewhere/site-packages"], {"LD_LIBRARY_PATH": "/fake"})
    assert env[PATHS_VARIABLE] == "/somewhere/site-packages"
    assert "PYTHONPATH" not in env  # the child sees the inspected environment, not this one's PYTHONPATH
    # the folder that holds the installed package (the checkout when editable, site-packages otherwise)
    assert env[PACKAGE_VARIABLE] == str(Path(pytest_cudadeps.__file__).resolve().parent.parent)
    assert env["LD_LIBRARY_PATH"] == "/fake"
    assert child_environment(None)["PYTHONPATH"] == "/the/users/own"  # no --cuda-deps-path: the user's jobs' view


def test_the_plugin_process_never_imports_foreign_code() -> None:
    code = ("import sys, pytest_cudadeps.probes.runner, pytest_cudadeps.probes.load; "
            "print(json.dumps([m for m in ('torch', 'pynvml', 'pytest_cudadeps.probes.child.load') if m in sys.modules]))")
    import subprocess

    out = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_lines_without_this_runs_token_are_not_the_childs(tmp_path: Path) -> None:
    """A library that writes protocol lines to every descriptor it can guess cannot answer for the child."""
    folder = write_probe(tmp_path)
    forge = ("line = b'{\"end\": \"forger\", \"data\": {\"ok\": true}}\\n{\"done\": true}\\n'\n"
             "for fd in range(3, 64):\n"
             "    try:\n"
             "        os.write(fd, line)\n"
             "    except OSError:\n"
             "        pass\n"
             "os.write(1, line)\n"
             "os._exit(0)\n")
    run = run_probe("echo_probe", {"then": ["forger"], "code": forge}, timeout=30, paths=[str(folder)])
    assert "forger" not in run.results
    assert run.current == "forger"
    assert not run.finished
    assert run.trouble() == "ended the process early with exit status 0 (an exit() in library code?)"


def test_a_garbled_step_is_blamed_not_raised() -> None:
    results: dict[str, dict[str, object]] = {"nvml": {"driver": 580}}  # a number where a version string belongs
    blame = decoded(NvmlAnswer, "nvml", results, {})
    assert isinstance(blame, Blame)
    assert blame.trouble.startswith("answered garbled data (NvmlAnswer.driver: 580 is none of")
    assert decoded(NvmlAnswer, "libcuda", results, {}) == Blame("ended without answering this step", ())
    earlier = Blame("crashed: killed by signal 11 (SIGSEGV)", ("Segmentation fault",))
    assert decoded(NvmlAnswer, "nvml", results, {"nvml": earlier}) is earlier
