"""The fix loop: break a real venv the way users do, check it, run every printed fix exactly as printed, check again.

Each state is a hard-link copy of the cached torch 2.14.1 venv (``venvs.copy_venv``), broken by pip commands run
with the copy's own interpreter, and checked with the plugin as the README's main job runs it in a Dockerfile or a
Slurm prolog: the venv not activated (not on ``PATH``, no ``VIRTUAL_ENV``), so every pip fix must name the checked
interpreter to reach it.  The fixes are the root causes' fixes from the JSON report, each run by ``/bin/sh -c`` in a
shell whose ``PATH`` is ``/usr/bin:/bin``; what a fix changes in the shell's environment (``unset LD_LIBRARY_PATH``)
carries into the next check, as it would in the job's shell.

``python -m tests.support.fixloop [STATE ...]`` prints the README's table (state, verdict, causes, repaired).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import venvs
from tests.support.build import build_so

CLEAN_PATH = "/usr/bin:/bin"

# a libstdc++.so.6 as old as the one a conda `lib` folder or an old image puts first: version nodes up to
# GLIBCXX_3.4.19 and CXXABI_1.3.7 only, so that torch's libraries (which need GLIBCXX_3.4.30 and CXXABI_1.3.8)
# fail to load with the loader's own `version `...' not found`
OLD_LIBSTDCXX_MAP = """GLIBCXX_3.4 { global: old_glibcxx; local: *; };
GLIBCXX_3.4.19 { global: old_glibcxx_19; } GLIBCXX_3.4;
CXXABI_1.3 { global: old_cxxabi; };
CXXABI_1.3.7 { global: old_cxxabi_7; } CXXABI_1.3;
"""
OLD_LIBSTDCXX_SOURCE = "int old_glibcxx(void){return 0;} int old_glibcxx_19(void){return 0;}\n" \
                       "int old_cxxabi(void){return 0;} int old_cxxabi_7(void){return 0;}\n"


def old_libstdcxx(folder: Path) -> Path:
    """Build the old libstdc++.so.6 above with gcc into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "libstdc++.map"
    script.write_text(OLD_LIBSTDCXX_MAP)
    return build_so("gcc", folder / "libstdc++.so.6", OLD_LIBSTDCXX_SOURCE, "-Wl,-soname,libstdc++.so.6",
                    f"-Wl,--version-script,{script}")


@dataclass(frozen=True)
class State:
    """A broken state: pip arguments run with the copy's interpreter, and variables of the job's environment."""

    name: str
    pip: tuple[tuple[str, ...], ...] = ()
    env: Callable[[Path], dict[str, str]] = field(default=lambda work: {})
    causes: int = 1  # the root causes the check must find (0: the state is healthy)
    cost: str = "small"  # "large": downloads gigabytes; only with CUDADEPS_FIX_LOOP=all
    truth: str | None = None  # code the venv's python runs: fails while broken, works when healthy (the referee)


def _other_nvjitlink(work: Path) -> dict[str, str]:
    """A copy of the wheel's libnvJitLink.so.13 in another folder, first on LD_LIBRARY_PATH."""
    other = work / "other-nvjitlink"
    other.mkdir(exist_ok=True)
    wheel = venvs.site_packages(work / "venv") / "nvidia" / "cu13" / "lib" / "libnvJitLink.so.13"
    (other / wheel.name).write_bytes(wheel.read_bytes())
    return {"LD_LIBRARY_PATH": str(other)}


STATES = (
    State("nvidia-cuda-runtime uninstalled", (("uninstall", "-y", "nvidia-cuda-runtime"),)),
    State("nvidia-nccl-cu13 2.27.7 (pip install --no-deps)", (("install", "-q", "--no-deps", "nvidia-nccl-cu13==2.27.7"),),
          truth="import torch"),
    State("nvidia-nccl-cu12 installed beside the cu13 wheels", (("install", "-q", "--no-deps", "nvidia-nccl-cu12==2.32.3"),)),
    State("torchvision 0.28.0 (built for torch 2.13) beside torch 2.14.1",
          (("install", "-q", "--no-deps", "torchvision==0.28.0"),), truth="import torchvision"),
    State("an old libstdc++ first on LD_LIBRARY_PATH",
          env=lambda work: {"LD_LIBRARY_PATH": str(old_libstdcxx(work / "old-libstdcxx").parent)}, truth="import torch"),
    State("another libnvJitLink first on LD_LIBRARY_PATH (torch preloads the wheel's by path)", env=_other_nvjitlink,
          causes=0, truth="import torch"),
    State("every nvidia-* and cuda-* distribution uninstalled", (("uninstall", "-y", "cuda-toolkit", "cuda-bindings",
          "cuda-pathfinder", "nvidia-cublas", "nvidia-cuda-cupti", "nvidia-cuda-nvrtc", "nvidia-cuda-runtime",
          "nvidia-cudnn-cu13", "nvidia-cufft", "nvidia-cufile", "nvidia-curand", "nvidia-cusolver", "nvidia-cusparse",
          "nvidia-cusparselt-cu13", "nvidia-nccl-cu13", "nvidia-nvjitlink", "nvidia-nvshmem-cu13", "nvidia-nvtx"),),
          cost="large"),
)


@dataclass
class Check:
    returncode: int
    causes: list[dict[str, str]]
    output: str


@dataclass
class Row:
    state: str
    before: Check
    fixes: list[tuple[str, int]] = field(default_factory=list)  # each fix as printed, and its exit status
    after: Check | None = None
    truth_before: int | None = None  # the exit status of the state's truth code, before and after the fixes
    truth_after: int | None = None

    @property
    def repaired(self) -> bool:
        return self.after is not None and self.after.returncode == 0 and not self.after.causes

    def line(self) -> str:
        verdict = "healthy" if self.before.returncode == 0 else f"broken, {len(self.before.causes)} cause(s)"
        repaired = "-" if self.after is None else ("yes" if self.repaired else "NO")
        fixes = "; ".join(f"`{fix}`" for fix, _ in self.fixes) or "-"
        return f"| {self.state} | {verdict} | {fixes} | {repaired} |"


def job_env(extra: dict[str, str]) -> dict[str, str]:
    """A job's shell with the venv not activated: a plain PATH, no VIRTUAL_ENV, no LD_* unless the state sets one."""
    keep = {k: v for k, v in os.environ.items()
            if k not in ("VIRTUAL_ENV", "LD_LIBRARY_PATH", "LD_PRELOAD", "PYTHONPATH", "CONDA_PREFIX")}
    return {**keep, "PATH": CLEAN_PATH, **extra}


def check(venv: Path, env: dict[str, str], work: Path) -> Check:
    report = work / "report.json"
    report.unlink(missing_ok=True)
    done = venvs.run_plugin(venvs.site_packages(venv), f"--cuda-deps-json={report}", cwd=work, activated=False,
                            env=env, replace_env=True)
    causes = json.loads(report.read_text())["causes"] if report.exists() else []
    return Check(done.returncode, [{"id": c["id"], "fix": c.get("fix", "")} for c in causes],
                 done.stdout[-6000:] + done.stderr[-2000:])


def run_fix(fix: str, env: dict[str, str], work: Path) -> tuple[int, dict[str, str], str]:
    """Run ``fix`` as printed in a shell with ``env``; the shell's environment after it, for the next check."""
    marker = "---cudadeps-env---"
    done = subprocess.run(["/bin/sh", "-c", f"{fix}\nstatus=$?\necho {marker}\nenv -0\nexit $status"], cwd=work,
                          env=env, capture_output=True, text=True, timeout=1800)
    text, _, after = done.stdout.partition(f"{marker}\n")
    changed = dict(item.split("=", 1) for item in after.split("\0") if "=" in item)
    return done.returncode, changed or env, text[-2000:] + done.stderr[-2000:]


def truth(venv: Path, code: str | None, env: dict[str, str], work: Path) -> int | None:
    """What the real loader says: the exit status of ``code`` in the venv's python with the job's environment."""
    if code is None:
        return None
    return subprocess.run([str(venv / "bin" / "python"), "-c", code], cwd=work, env=env, capture_output=True,
                          timeout=600).returncode


def loop(state: State, work: Path) -> Row:
    venv = venvs.copy_venv(venvs.base_venv(venvs.CUDA_TORCH), work / "venv")
    for args in state.pip:
        done = venvs.pip(venv, *args)
        assert done.returncode == 0, done.stderr[-3000:]
    env = job_env(state.env(work))
    row = Row(state.name, check(venv, env, work), truth_before=truth(venv, state.truth, env, work))
    if row.before.returncode == 0:
        return row
    for cause in row.before.causes:
        status, env, _ = run_fix(cause["fix"], env, work)
        row.fixes.append((cause["fix"], status))
    row.after = check(venv, env, work)
    row.truth_after = truth(venv, state.truth, env, work)
    return row


def main(argv: Sequence[str]) -> int:
    chosen = [s for s in STATES if not argv or any(a in s.name for a in argv)]
    print("| state | verdict | fixes run as printed | repaired |")
    print("|---|---|---|---|")
    for state in chosen:
        with tempfile.TemporaryDirectory() as folder:
            row = loop(state, Path(folder))
        print(row.line().replace(str(Path(folder)), "$WORK"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
