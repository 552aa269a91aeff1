from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest_cudadeps
from pytest_cudadeps.children import child_environment, run_probe
from tests.fakes import misbehaving

ECHO = """
import json, os, sys
from pytest_cudadeps.probes import _protocol

_protocol.open_channel()
request = _protocol.read_request()
print("garbage a library might print")  # must not reach the protocol
_protocol.begin("echo")
_protocol.end("echo", request=request, path=sys.path, cwd_first=sys.path[0] == "")
for step in request.get("then", []):
    _protocol.begin(step)
    exec(request["code"])
_protocol.done()
"""


def write_probe(folder: Path) -> Path:
    (folder / "echo_probe.py").write_text(ECHO)
    return folder


def test_request_reaches_the_child_and_paths_come_first(tmp_path: Path) -> None:
    folder = write_probe(tmp_path)
    run = run_probe("echo_probe", {"x": [1, 2]}, timeout=30, paths=[str(folder)])
    assert run.ok, (run.trouble(), run.stderr)
    data = run.results["echo"]
    assert data["request"] == {"x": [1, 2]}
    assert isinstance(data["path"], list)
    assert data["path"][0] == str(folder)  # PYTHONPATH from --cuda-deps-path, before site-packages
    assert not data["cwd_first"]  # "python -c" puts the working folder first: removed
    assert run.current is None
    assert run.trouble() is None


def test_crash_names_the_step_and_the_signal(tmp_path: Path, gcc: str) -> None:
    lib = misbehaving(gcc, tmp_path, "segv")
    folder = write_probe(tmp_path)
    code = f"import ctypes; ctypes.CDLL({str(lib)!r})"
    run = run_probe("echo_probe", {"then": ["first", "second"], "code": code}, timeout=30, paths=[str(folder)])
    assert not run.ok
    assert run.current == "first"
    assert run.trouble() == "crashed: killed by signal 11 (SIGSEGV)"


def test_what_a_library_prints_does_not_reach_the_protocol(tmp_path: Path, gcc: str) -> None:
    lib = misbehaving(gcc, tmp_path, "noisy")  # prints {"begin": "phantom"} on stdout
    folder = write_probe(tmp_path)
    code = f"import ctypes; ctypes.CDLL({str(lib)!r}); _protocol.end(step)"
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
    assert run.elapsed < 15


def test_exit_zero_before_done_is_trouble(tmp_path: Path) -> None:
    folder = write_probe(tmp_path)
    run = run_probe("echo_probe", {"then": ["quitter"], "code": "os._exit(0)"}, timeout=30, paths=[str(folder)])
    assert run.returncode == 0
    assert not run.finished
    assert run.current == "quitter"
    trouble = run.trouble()
    assert trouble is not None
    assert "exit status 0" in trouble


def test_child_environment_appends_this_package_and_keeps_callers_values() -> None:
    env = child_environment(["/somewhere/site-packages"], {"LD_LIBRARY_PATH": "/fake"})
    entries = env["PYTHONPATH"].split(os.pathsep)
    assert entries[0] == "/somewhere/site-packages"
    # the folder that holds the installed package (the checkout when editable, site-packages otherwise)
    assert entries[-1] == str(Path(pytest_cudadeps.__file__).resolve().parent.parent)
    assert env["LD_LIBRARY_PATH"] == "/fake"


def test_the_plugin_process_never_imports_foreign_code() -> None:
    code = ("import sys, pytest_cudadeps.children, pytest_cudadeps.load; "
            "print(json.dumps([m for m in ('torch', 'pynvml', 'pytest_cudadeps.probes.load') if m in sys.modules]))")
    import subprocess

    out = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
