"""The fix commands, for the installer that made the environment: one command each, safe to paste as printed
(what comes from files is one inert shell word)."""

from __future__ import annotations

import ast
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import pytest_cudadeps
from pytest_cudadeps.core.text import quote
from pytest_cudadeps.engine.installers import (
    Interpreter,
    checked_interpreter,
    install_command,
    install_note,
    reinstall_command,
    torch_index_install_command,
    uninstall_command,
)

HOSTILE = [
    "nvidia-cublas==13.1.1.3.*",
    "x`touch MARK1`",
    "x$(touch MARK2)",
    "x'; touch MARK3; echo '",
    "x\"$(touch MARK4)\"",
    "x\ntouch MARK5",
    "",
]


@pytest.mark.parametrize("spec", HOSTILE)
def test_a_quoted_spec_is_one_inert_shell_word(tmp_path: Path, spec: str) -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is needed to run the fix line")
    line = install_command("pip", spec).replace("pip install", "printf %s", 1)
    result = subprocess.run([bash, "-c", line], cwd=tmp_path, capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    assert result.stdout == spec
    assert list(tmp_path.iterdir()) == []  # nothing ran


@pytest.mark.parametrize("spec", HOSTILE)
def test_every_fix_command_splits_back_into_the_spec(spec: str) -> None:
    assert shlex.split(install_command("uv", spec)) == ["uv", "pip", "install", spec]  # the command, nothing else
    assert shlex.split(reinstall_command("pip", spec)) == ["pip", "install", "--force-reinstall", "--no-deps", spec]
    assert shlex.split(uninstall_command("pip", spec)) == ["pip", "uninstall", "-y", spec]
    assert shlex.split(uninstall_command("uv", spec)) == ["uv", "pip", "uninstall", spec]


def test_plain_specs_look_as_before() -> None:
    assert quote("jax") == "'jax'"
    assert install_command("pip", "nvidia-cuda-runtime==13.0.96.*") == "pip install 'nvidia-cuda-runtime==13.0.96.*'"
    assert uninstall_command("pip", "nvidia-nccl-cu12") == "pip uninstall -y 'nvidia-nccl-cu12'"


def test_install_command_quotes_what_comes_from_files() -> None:
    assert torch_index_install_command("pip", "2.13.0; rm -rf ~", (13, 0)) == (
        "pip install --force-reinstall 'torch==2.13.0; rm -rf ~' --index-url https://download.pytorch.org/whl/cu130")
    assert torch_index_install_command("pipenv", "2.13.0", (12, 8)).startswith("pipenv run pip install --force-reinstall")


@pytest.mark.parametrize(("installer", "command"), [
    ("pip", "pip install --force-reinstall --no-deps 'nvidia-cublas==13.1.1.3.*'"),
    ("", "pip install --force-reinstall --no-deps 'nvidia-cublas==13.1.1.3.*'"),
    ("uv", "uv pip install --reinstall --no-deps 'nvidia-cublas==13.1.1.3.*'"),
    ("poetry", "poetry run pip install --force-reinstall --no-deps 'nvidia-cublas==13.1.1.3.*'"),
])
def test_reinstall_command_for_each_installer(installer: str, command: str) -> None:
    assert reinstall_command(installer, "nvidia-cublas==13.1.1.3.*") == command


@pytest.mark.parametrize(("installer", "command"), [
    ("pip", "pip install 'x==1.*'"), ("", "pip install 'x==1.*'"), (" UV\n", "uv pip install 'x==1.*'"),
    ("poetry", "poetry add 'x==1.*'"), ("pdm", "pdm add 'x==1.*'"), ("pipenv", "pipenv install 'x==1.*'"),
    ("conda", "pip install 'x==1.*'"),  # conda ships no nvidia-* wheels: pip installs them into its environment
    ("hatch", "pip install 'x==1.*'"),  # an installer we do not know: pip
], ids=["pip", "none", "uv-spelled-oddly", "poetry", "pdm", "pipenv", "conda", "unknown"])
def test_install_command_for_each_installer(installer: str, command: str) -> None:
    assert install_command(installer, "x==1.*") == command


def test_several_specs_are_one_command() -> None:
    assert install_command("uv", "nvidia-cublas==13.1.1.3.*", "nvidia-cufft") == (
        "uv pip install 'nvidia-cublas==13.1.1.3.*' 'nvidia-cufft'")


def test_install_note_only_where_an_installer_needs_one() -> None:
    assert install_note("pip") is None
    assert install_note("poetry") is None
    uv = install_note("uv")
    assert uv is not None
    assert "run `uv sync`, which would undo a `uv pip install`" in uv
    assert install_note(" Conda ") == ("conda installed the root but ships no nvidia-* wheels: pip installs them into "
                                       "the conda environment")


def test_reinstall_with_dependencies_and_torch_from_its_own_index() -> None:
    assert reinstall_command("uv", "torch==2.14.1", deps=True) == "uv pip install --reinstall 'torch==2.14.1'"
    assert reinstall_command("pdm", "torch==2.14.1", deps=True) == "pdm run pip install --force-reinstall 'torch==2.14.1'"
    assert torch_index_install_command("pdm", "2.7.1", (12, 6)) == (
        "pdm run pip install --force-reinstall 'torch==2.7.1' --index-url https://download.pytorch.org/whl/cu126")
    assert torch_index_install_command("uv", "2.14.1", (13, 0)) == (
        "uv pip install --reinstall 'torch==2.14.1' --index-url https://download.pytorch.org/whl/cu130")


# What may stand unquoted in a command: values the code made, never text from a file or an option.
MADE_HERE = {
    "build[0]", "build[1]",  # the CUDA version of a table row (ints)
    "version",  # triton.py: sys.version_info's major.minor; installers.py: already quoted into spec
    "prefix", "no_deps", "spec", "url", "source", "LIBCUDA",  # installers.py's own pieces; a constant
    "'PTXAS_BLACKWELL' if 'blackwell' in bad[0] else 'PTXAS'",
    "remove",  # host.py: a constant sentence with its own quoted commands
    "name",  # security.py's _export: LD_LIBRARY_PATH or LD_PRELOAD, the variable's name
    "facts.kernel_module_text",  # host.py: a message that mentions `sudo modprobe nvidia`, not a command of it
    "m.group(1)",  # installers.py: install or uninstall, the word its own pattern matched
}
QUOTING = {"quote", "shlex.quote", "install_command", "uninstall_command", "reinstall_command",
           "torch_index_install_command", "rebuild_editable_command", "reinstall_command_for"}
COMMAND_WORDS = re.compile(r"\b(pip|uv|conda|apt-get|dnf|poetry|pdm|pipenv|export|chown|chmod|rm|sudo)\b ")


def test_no_fix_command_is_built_without_the_quoting() -> None:
    """Every f-string of the package that spells a command puts each value through the quoting (or makes it itself).

    Before: the installed-once, unknown-root and drift fixes spliced a name from a file into ``pip ...`` by hand.
    """
    package = Path(pytest_cudadeps.__file__).parent
    unquoted = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.JoinedStr):
                continue
            literal = "".join(str(v.value) for v in node.values if isinstance(v, ast.Constant))
            if not COMMAND_WORDS.search(literal):
                continue
            for value in node.values:
                if not isinstance(value, ast.FormattedValue):
                    continue
                inner = value.value
                called = ast.unparse(inner.func) if isinstance(inner, ast.Call) else None
                if called not in QUOTING and ast.unparse(inner) not in MADE_HERE:
                    unquoted.append(f"{path.relative_to(package)}:{node.lineno}: {{{ast.unparse(inner)}}}")
    assert unquoted == []


# --- the checked interpreter ---------------------------------------------------------------------------------------

AIMED = Interpreter("/opt/my venv/bin/python", pip_reaches=False, uv_reaches=False)


@pytest.mark.parametrize(("fix", "aimed"), [
    ("pip install 'nvidia-cublas==13.1.1.3.*'", "'/opt/my venv/bin/python' -m pip install 'nvidia-cublas==13.1.1.3.*'"),
    ("uv pip install --reinstall --no-deps 'torch==2.7.1'",
     "uv pip install --python '/opt/my venv/bin/python' --reinstall --no-deps 'torch==2.7.1'"),
    ("pip uninstall -y nvidia-nccl-cu12 && pip install 'x'",
     "'/opt/my venv/bin/python' -m pip uninstall -y nvidia-nccl-cu12 && '/opt/my venv/bin/python' -m pip install 'x'"),
    ("reinstall it: pip install --force-reinstall 'x'", "reinstall it: '/opt/my venv/bin/python' -m pip install --force-reinstall 'x'"),
    ("python -m pip install 'x'", "'/opt/my venv/bin/python' -m pip install 'x'"),
    ("poetry run pip install --force-reinstall 'x'", "poetry run pip install --force-reinstall 'x'"),  # poetry's own env
    ("pdm add 'x'", "pdm add 'x'"),
    ("install the NVIDIA driver", "install the NVIDIA driver"),
    ("/usr/bin/pip install 'x'", "/usr/bin/pip install 'x'"),  # a pip named by path is the user's choice
])
def test_a_fix_names_the_checked_interpreter_once(fix: str, aimed: str) -> None:
    assert AIMED.rewrite(fix) == aimed
    assert AIMED.rewrite(aimed) == aimed  # aimed twice (a linkage item held to the loader) is aimed once
    assert Interpreter("/opt/my venv/bin/python").rewrite(fix) == fix  # bare commands reach it: unchanged


def _venv(root: Path) -> Path:
    """A venv's shape: bin/python (a link to this interpreter), bin/pip, lib/pythonX.Y/site-packages."""
    site = root / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    (root / "bin").mkdir()
    (root / "bin" / "python").symlink_to(sys.executable)
    (root / "bin" / "pip").write_text("#!/bin/sh\n")
    (root / "bin" / "pip").chmod(0o755)
    return site


def test_the_checked_venv_is_named_unless_path_and_virtual_env_reach_it(tmp_path: Path) -> None:
    site = _venv(tmp_path / "opt" / "venv")
    other = _venv(tmp_path / "elsewhere")
    python = str(tmp_path / "opt" / "venv" / "bin" / "python")
    # the usual Dockerfile: another pip first on PATH, nothing activated
    found = checked_interpreter([str(site)], {"PATH": str(other.parents[2] / "bin")})
    assert found == Interpreter(python, pip_reaches=False, uv_reaches=False)
    # activated: PATH and VIRTUAL_ENV lead to it, and bare commands do
    activated = {"PATH": f"{tmp_path / 'opt' / 'venv' / 'bin'}:/usr/bin", "VIRTUAL_ENV": str(tmp_path / "opt" / "venv")}
    assert checked_interpreter([str(site)], activated) == Interpreter(python, pip_reaches=True, uv_reaches=True)
    # no pip at all on PATH: named
    assert not checked_interpreter([str(site)], {"PATH": ""}).pip_reaches  # type: ignore[union-attr]


def test_a_tree_that_is_no_interpreters_names_none(tmp_path: Path) -> None:
    (tmp_path / "site-packages").mkdir()
    assert checked_interpreter([str(tmp_path / "site-packages")], {"PATH": "/usr/bin"}) is None
    # no --cuda-deps-path: the running interpreter's environment
    running = checked_interpreter(None, {"PATH": ""})
    assert running is not None
    assert running.python.startswith(sys.prefix)


def test_an_aimed_fix_installs_into_the_checked_venv_from_a_shell_without_it(tmp_path: Path) -> None:
    """Run as printed from a shell whose PATH has no venv: the aimed command reaches the checked venv."""
    import venv

    venv.create(tmp_path / "checked", with_pip=False, symlinks=True)
    site = next((tmp_path / "checked" / "lib").glob("python*/site-packages"))
    interpreter = checked_interpreter([str(site)], {"PATH": "/usr/bin:/bin"})
    assert interpreter is not None
    assert not interpreter.pip_reaches
    command = interpreter.rewrite("python -m pip --version")
    done = subprocess.run(["/bin/sh", "-c", command.replace(" -m pip --version", " -c 'import sys; print(sys.prefix)'")],
                          env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == str(tmp_path / "checked")
