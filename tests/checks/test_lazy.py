"""The lazy[...] items: libraries opened by name at run time, on trees whose cuDNN is built with gcc and really
dlopens (tests/support/cudnn.py), so that a child process can check the static prediction against glibc itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_cudadeps.checks.findings import Finding, Outcome
from pytest_cudadeps.checks.lazy import lazy_findings
from pytest_cudadeps.core.settings import Settings
from pytest_cudadeps.engine.snapshot import take_snapshot
from tests.support import sitebuilder as sb
from tests.support.build import build_so
from tests.support.cudnn import CUDNN, cudnn_tree

CHILD = """\
import ctypes, sys
ctypes.CDLL(sys.argv[1], mode=ctypes.RTLD_GLOBAL)
cudnn = ctypes.CDLL("libcudnn.so.9")  # mapped already, through the RPATH of the first
cudnn.open_lazy.restype = ctypes.c_char_p
print(cudnn.open_lazy(sys.argv[2].encode()).decode())
"""


def findings(site: Path) -> dict[str, Finding]:
    snapshot = take_snapshot(Settings(paths=(str(site),), no_ld_cache=True))
    return {f.name: f for f in lazy_findings(snapshot)}


def really_mapped(site: Path, names: list[str], ld_library_path: str = "") -> str:
    """The file glibc maps when the fake libcudnn.so.9 dlopens ``names`` in order (in a child)."""
    deps = site / "torch" / "lib" / "libtorch_global_deps.so"
    result = subprocess.run([sys.executable, "-c", CHILD, str(deps), ";".join(names)], capture_output=True,
                            text=True, timeout=60, env={**os.environ, "LD_LIBRARY_PATH": ld_library_path})
    assert result.returncode == 0, result.stderr
    mapped = result.stdout.strip()  # as glibc names it: $ORIGIN of an object found through "../.." stays unnormalized
    return os.path.normpath(mapped) if mapped else ""


CNN = "lazy[torch>libcudnn.so.9>libcudnn_cnn.so.9]"
TRIED = ["libcudnn_cnn.so.9.24.0", "libcudnn_cnn.so.9.24", "libcudnn_cnn.so.9", "libcudnn_cnn.so"]


def test_each_sub_library_is_found_beside_its_opener(tmp_path: Path, gcc: str) -> None:
    site = cudnn_tree(tmp_path, gcc)
    found = findings(site)
    from_main = sorted(name for name in found if name.startswith("lazy[torch>libcudnn.so.9>"))
    assert from_main == [f"lazy[torch>libcudnn.so.9>libcudnn_{p}.so.9]" for p in ("adv", "cnn", "ext", "graph", "ops")]
    # the sub-libraries found open more in turn: graph its engines and nvrtc, adv cuBLASLt (not in this tree)
    assert {name.split(">")[1] for name in found} == {"libcudnn.so.9", "libcudnn_graph.so.9", "libcudnn_adv.so.9"}
    assert found["lazy[torch>libcudnn_adv.so.9>libcublasLt.so.13]"].outcome is Outcome.FAIL
    cnn = found[CNN]
    assert cnn.outcome is Outcome.PASS
    assert dict(cnn.facts)["path"] == really_mapped(site, TRIED) == str(site / CUDNN / "libcudnn_cnn.so.9")
    assert "nvidia-cudnn-cu13 9.24.0.43, opened by libcudnn.so.9, via DT_RPATH of libcudnn.so.9" in cnn.message


def test_a_missing_sub_library_names_the_cudnn_error_and_the_reinstall(tmp_path: Path, gcc: str) -> None:
    site = cudnn_tree(tmp_path, gcc)
    (site / CUDNN / "libcudnn_cnn.so.9").unlink()  # its RECORD still lists it: the wheel is damaged
    cnn = findings(site)[CNN]
    assert cnn.outcome is Outcome.FAIL
    assert cnn.message.endswith("fails with `Unable to load any of {" + ", ".join(TRIED) + "}`")
    assert really_mapped(site, TRIED) == ""  # glibc finds none of them either
    assert cnn.fix == "pip install --force-reinstall --no-deps 'nvidia-cudnn-cu13==9.24.0.43'"
    assert any(line.startswith(f"searched: DT_RPATH of libcudnn.so.9 ({site / CUDNN})") for line in cnn.details)


def test_a_full_version_name_on_ld_library_path_wins_over_the_wheel(
        tmp_path: Path, gcc: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # cuDNN tries libcudnn_cnn.so.9.24.0 first: a copy with that name anywhere on the search path beats
    # the wheel's libcudnn_cnn.so.9 in its own folder.
    site = cudnn_tree(tmp_path, gcc)
    system = tmp_path / "system-cudnn"
    build_so(gcc, system / "libcudnn_cnn.so.9.24.0", "int cnn_entry(void) { return 1; }\n",
             "-Wl,-soname,libcudnn_cnn.so.9")
    monkeypatch.setenv("LD_LIBRARY_PATH", str(system))
    cnn = findings(site)[CNN]
    assert cnn.outcome is Outcome.FAIL
    assert really_mapped(site, TRIED, str(system)) == str(system / "libcudnn_cnn.so.9.24.0")
    assert cnn.message.startswith(f"libcudnn_cnn.so.9 resolves to {system / 'libcudnn_cnn.so.9.24.0'} (via "
                                  f"LD_LIBRARY_PATH, owned by no installed distribution), not to nvidia-cudnn-cu13's copy")
    assert cnn.fix == f"remove {system} from LD_LIBRARY_PATH"


def test_no_items_without_the_opener(tmp_path: Path) -> None:
    assert findings(sb.torch_2_14_1(tmp_path / "site")) == {}


def test_a_library_its_wheel_does_not_ship_is_not_checked(tmp_path: Path, gcc: str) -> None:
    # a cuDNN build without the ext sub-library never opens it; nothing is claimed about it
    site = cudnn_tree(tmp_path, gcc, parts=("graph", "ops", "cnn", "adv"))
    found = findings(site)
    assert "lazy[torch>libcudnn.so.9>libcudnn_ext.so.9]" not in found
    assert found[CNN].outcome is Outcome.PASS


# --- a framework's own libraries (jax[cuda13] 0.10.2's layout, tests/support/jax.py) ---------------


def _jax_findings(site: Path) -> dict[str, Finding]:
    from pytest_cudadeps.checks.static import static_findings

    return {f.name: f for f in static_findings(take_snapshot(Settings(paths=(str(site),), no_ld_cache=True)))}


def test_intact_jax_passes_an_item_per_library_its_plugin_opens(tmp_path: Path, gcc: str) -> None:
    from tests.support.jax import jax_tree

    found = _jax_findings(jax_tree(tmp_path, gcc))
    own = {name: f for name, f in found.items() if name.startswith("lazy[jax>jax_plugins.xla_cuda13>")}
    assert len(own) == 11
    assert all(f.outcome is Outcome.PASS for f in own.values()), own
    assert not [f for f in found.values() if f.outcome is Outcome.FAIL]


def test_jax_without_cudnn_fails_naming_jax_and_the_wheel_to_install(tmp_path: Path, gcc: str) -> None:
    from tests.support.jax import jax_tree

    found = _jax_findings(jax_tree(tmp_path, gcc, omit=("nvidia-cudnn-cu13",)))
    failed = {name: f for name, f in found.items() if f.outcome is Outcome.FAIL}
    assert set(failed) == {"lazy[jax>jax_plugins.xla_cuda13>libcudnn.so.9]", "requires[jax>nvidia-cudnn-cu13]"}
    assert {f.fix for f in failed.values()} == {"pip install 'nvidia-cudnn-cu13<10.0,>=9.12.0.46'"}


def test_an_optional_library_of_a_framework_missing_is_a_note(tmp_path: Path, gcc: str) -> None:
    from tests.support.jax import WHEELS, jax_tree

    site = jax_tree(tmp_path, gcc)
    (site / WHEELS[3][3][0]).unlink()  # nvidia-nccl-cu13's libnccl.so.2: jax goes on without collectives
    nccl = _jax_findings(site)["lazy[jax>jax_plugins.xla_cuda13>libnccl.so.2]"]
    assert nccl.outcome is Outcome.SKIP
    assert "multi-GPU collectives" in nccl.message


def test_a_library_beside_an_opener_that_does_not_search_its_own_folder_is_found_through_the_loader_path(
        tmp_path: Path, gcc: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """nvidia-cuda-nvrtc 13.0.88 (torch 2.14.1's pin) has no RUNPATH: opened by jax's plugin by absolute path, it
    does not find the builtins beside it (measured: nvrtcCompileProgram fails in that process).  Reinstalling the
    same wheel changes nothing; LD_LIBRARY_PATH does."""
    from tests.support.jax import jax_tree

    site = jax_tree(tmp_path, gcc)
    builtins = site / "nvidia/cu13/lib/libnvrtc-builtins.so.13.5"  # what nvrtc 13.5.37 opens
    sb.add_to_record(site, "nvidia_cuda_nvrtc", [build_so(gcc, builtins, "int b(void) { return 0; }\n")])
    item = _jax_findings(site)["lazy[jax>libnvrtc.so.13>libnvrtc-builtins.so.13.5]"]
    assert item.outcome is Outcome.FAIL
    folder = builtins.parent
    assert item.fix == f"export LD_LIBRARY_PATH='{folder}'\"${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}\""
    # the fix as printed, in a shell: the next check finds it
    shell = subprocess.run(["/bin/sh", "-c", f"{item.fix}; printf %s \"$LD_LIBRARY_PATH\""], capture_output=True,
                           text=True, env={"PATH": "/usr/bin:/bin"}, check=True)
    assert shell.stdout == str(folder)
    monkeypatch.setenv("LD_LIBRARY_PATH", shell.stdout)
    again = _jax_findings(site)["lazy[jax>libnvrtc.so.13>libnvrtc-builtins.so.13.5]"]
    assert again.outcome is Outcome.PASS, again.text()
