"""The exact command that installs a requirement, for the installer that made the environment.

Installers write their name into ``<dist-info>/INSTALLER`` (PEP 376): ``pip``, ``uv``,
``poetry``, ``conda``, ``pdm``...  The fix we print is for that installer, because
running ``pip`` in a uv- or poetry-managed environment is undone by the next sync.  Every
fix is one command and nothing else, so that it can be pasted into a shell as it is printed;
what an installer's user should know beside it is :func:`install_note`, shown as a detail.
"""

from __future__ import annotations

from pytest_cudadeps.core.text import quote

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
