"""The exact command that installs a requirement, for the installer that made the environment.

Installers write their name into ``<dist-info>/INSTALLER`` (PEP 376): ``pip``, ``uv``,
``poetry``, ``conda``, ``pdm``...  The fix we print is for that installer, because
running ``pip`` in a uv- or poetry-managed environment is undone by the next sync.  Every
fix is one command and nothing else, so that it can be pasted into a shell as it is printed;
what an installer's user should know beside it is :func:`install_note`, shown as a detail.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_cudadeps.core.text import quote
from pytest_cudadeps.engine.distributions import Distribution, editable_source

_COMMANDS: dict[str, str] = {
    "pip": "pip install {spec}",
    "uv": "uv pip install {spec}",
    "poetry": "poetry add {spec}",
    "pdm": "pdm add {spec}",
    "pipenv": "pipenv install {spec}",
    "conda": "pip install {spec}",
}
_NOTES: dict[str, str] = {
    "uv": "in a uv project, add it to pyproject.toml's dependencies instead and run `uv sync`, which would undo a "
          "`uv pip install`",
    "conda": "conda installed the root but ships no nvidia-* wheels: pip installs them into the conda environment",
}


def install_note(installer: str) -> str | None:
    """What a user of this installer should know beside the fix command (None: nothing)."""
    return _NOTES.get(installer.strip().lower())


def install_command(installer: str, spec: str, *more: str) -> str:
    """``pip install 'nvidia-cuda-runtime==13.0.96.*'`` and the like; several specs install in one command."""
    key = installer.strip().lower() or "pip"
    template = _COMMANDS.get(key, _COMMANDS["pip"])
    return template.format(spec=" ".join(quote(s) for s in (spec, *more)))


def uninstall_command(installer: str, name: str) -> str:
    key = installer.strip().lower() or "pip"
    if key == "uv":
        return f"uv pip uninstall {quote(name)}"
    return f"pip uninstall -y {quote(name)}"


def reinstall_command(installer: str, spec: str, *, deps: bool = False) -> str:
    """Put a distribution's files back as its wheel has them (``--no-deps``: only that one)."""
    key = installer.strip().lower() or "pip"
    no_deps = "" if deps else " --no-deps"
    if key == "uv":
        return f"uv pip install --reinstall{no_deps} {quote(spec)}"
    prefix = {"poetry": "poetry run ", "pdm": "pdm run ", "pipenv": "pipenv run "}.get(key, "")
    return f"{prefix}pip install --force-reinstall{no_deps} {quote(spec)}"


def reinstall_command_for(dist: Distribution, spec: str, installer: str | None = None, *, deps: bool = False) -> str:
    """:func:`reinstall_command` for an installed distribution, except an editable one (``pip install -e``, a
    `setup.py develop`): rebuilt from its own source, never replaced by a release from an index."""
    installer = dist.installer if installer is None else installer
    source = editable_source(dist)
    if source is not None:
        return rebuild_editable_command(installer, str(source))
    return reinstall_command(installer, spec, deps=deps)


def rebuild_editable_command(installer: str, source: str) -> str:
    """Rebuild an editable install (``pip install -e``) from its own source folder: never from an index, which
    would replace the developer's build with a release."""
    key = installer.strip().lower() or "pip"
    pip = "uv pip install" if key == "uv" else "pip install --no-build-isolation"
    return f"cd {quote(source)} && {pip} --no-deps -e ."


def torch_index_install_command(installer: str, version: str, cuda: tuple[int, int]) -> str:
    """Replace torch with its build for ``cuda`` from PyTorch's own index, keeping the version.

    The CUDA builds live only on ``download.pytorch.org/whl/cuXYZ``; PyPI's Linux x86_64 wheel
    is one CUDA build, and every other platform's is CPU-only, which is how a CPU build lands on a
    GPU host.  ``--force-reinstall``/``--reinstall`` because the installed ``2.13.0+cpu`` already
    satisfies ``torch==2.13.0`` and would be kept otherwise.
    """
    key = installer.strip().lower() or "pip"
    tag = f"cu{cuda[0]}{cuda[1]}"
    url = f"https://download.pytorch.org/whl/{tag}"
    spec = quote(f"torch=={version}")
    if key == "uv":
        return f"uv pip install --reinstall {spec} --index-url {url}"
    if key == "poetry":
        source = f"pytorch-{tag}"
        return f"poetry source add --priority=explicit {source} {url} && poetry add {spec} --source {source}"
    prefix = {"pdm": "pdm run ", "pipenv": "pipenv run "}.get(key, "")
    return f"{prefix}pip install --force-reinstall {spec} --index-url {url}"


# --- the interpreter a fix installs into ---------------------------------------------------------------------------
#
# The plugin is run as `/opt/venv/bin/python -m pytest` in Dockerfiles, Slurm prologs and CI, with the venv not
# activated: a bare `pip install` pasted from its output installs into whatever `pip` PATH reaches and repairs
# nothing.  A fix names the checked interpreter whenever a bare command would not reach it.

_UV_PIP = re.compile(r"(?<![\w./-])uv pip (install|uninstall|sync)\b(?! --python)")
_PYTHON_M_PIP = re.compile(r"(?<![\w./-])python3? -m pip\b")
_BARE_PIP = re.compile(r"(?<![\w./-])(?<!uv )(?<!run )(?<!-m )pip (install|uninstall|show|check|download)\b")


@dataclass(frozen=True)
class Interpreter:
    """The checked environment's interpreter, and whether bare ``pip``/``uv pip`` commands reach it."""

    python: str
    pip_reaches: bool = True
    uv_reaches: bool = True

    def rewrite(self, fix: str) -> str:
        """``fix`` with each pip or uv command aimed at :attr:`python` where a bare one would miss it
        (``'/opt/venv/bin/python' -m pip install ...``, ``uv pip install --python '/opt/venv/bin/python' ...``);
        poetry, pdm and pipenv commands act on their project's environment and stay as they are."""
        if not self.uv_reaches:
            fix = _UV_PIP.sub(lambda m: f"uv pip {m.group(1)} --python {quote(self.python)}", fix)
        if not self.pip_reaches:
            fix = _PYTHON_M_PIP.sub(f"{quote(self.python)} -m pip", fix)
            fix = _BARE_PIP.sub(lambda m: f"{quote(self.python)} -m pip {m.group(1)}", fix)
        return fix


def _prefix_of_site(site: str) -> Path | None:
    """``/opt/venv`` for ``/opt/venv/lib/python3.11/site-packages``; None for any other kind of folder."""
    path = Path(site)
    if path.name not in ("site-packages", "dist-packages") or not path.parent.name.startswith("python"):
        return None
    return path.parent.parent.parent


def checked_interpreter(paths: Sequence[str] | None, environ: Mapping[str, str],
                        *, prefix: str | None = None) -> Interpreter | None:
    """The interpreter of the environment the run checks, and whether bare ``pip`` (the first on ``PATH``) and
    ``uv pip`` (which takes ``VIRTUAL_ENV``) reach it: the one whose site-packages ``--cuda-deps-path`` names,
    or the running one.  None when the checked folders belong to no interpreter (a bare tree): nothing to name."""
    if paths:
        home = next((found for found in map(_prefix_of_site, paths)
                     if found is not None and (found / "bin" / "python").exists()), None)
        if home is None:
            return None
    else:
        home = Path(prefix or sys.prefix)
    python = home / "bin" / "python"
    pip = shutil.which("pip", path=environ.get("PATH", ""))
    pip_reaches = pip is not None and _same_folder(os.path.dirname(pip), home / "bin")
    venv = environ.get("VIRTUAL_ENV", "")
    uv_reaches = bool(venv) and _same_folder(venv, home)
    return Interpreter(str(python) if python.exists() else sys.executable, pip_reaches, uv_reaches)


def _same_folder(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)
