"""gcc-built trees in jax[cuda13] 0.10.2's layout: jax, jaxlib, jax-cuda13-plugin and jax-cuda13-pjrt with the
Requires-Dist their real METADATA has (trimmed to what the checks read), and every nvidia wheel the plugin's
``[with-cuda]`` extra declares, each with the library the plugin's ``_load_nvidia_libraries()`` opens."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tests.support import sitebuilder as sb
from tests.support.onnxruntime import lib
from tests.support.sitebuilder import add_to_record

VERSION = "0.10.2"
_WITH_CUDA = 'sys_platform == "linux" and extra == "with-cuda"'
# (wheel, version, the requirement of jax-cuda13-plugin[with-cuda], the libraries it ships), in the plugin's order
WHEELS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("nvidia-cuda-runtime", "13.5.37", "nvidia-cuda-runtime>=13.0.48", ("nvidia/cu13/lib/libcudart.so.13",)),
    ("nvidia-cuda-nvrtc", "13.5.37", "nvidia-cuda-nvrtc>=13.0.48", ("nvidia/cu13/lib/libnvrtc.so.13",)),
    ("nvidia-cublas", "13.10.0.20", "nvidia-cublas>=13.0.0.19",
     ("nvidia/cu13/lib/libcublas.so.13", "nvidia/cu13/lib/libcublasLt.so.13")),
    ("nvidia-nccl-cu13", "2.32.3", "nvidia-nccl-cu13>=2.27.7", ("nvidia/nccl/lib/libnccl.so.2",)),
    ("nvidia-cuda-cupti", "13.5.25", "nvidia-cuda-cupti>=13.0.48", ("nvidia/cu13/lib/libcupti.so.13",)),
    ("nvidia-cusparse", "12.9.4.2", "nvidia-cusparse>=12.6.2.49", ("nvidia/cu13/lib/libcusparse.so.12",)),
    ("nvidia-cusolver", "12.4.1.2", "nvidia-cusolver>=12.0.3.29", ("nvidia/cu13/lib/libcusolver.so.12",)),
    ("nvidia-cufft", "12.5.0.14", "nvidia-cufft>=12.0.0.15", ("nvidia/cu13/lib/libcufft.so.12",)),
    ("nvidia-nvshmem-cu13", "3.8.0", "nvidia-nvshmem-cu13>=3.3.20", ("nvidia/nvshmem/lib/libnvshmem_host.so.3",)),
    ("nvidia-cudnn-cu13", "9.28.1.4", "nvidia-cudnn-cu13<10.0,>=9.12.0.46", ("nvidia/cudnn/lib/libcudnn.so.9",)),
    ("nvidia-nvjitlink", "13.5.37", "nvidia-nvjitlink>=13.0.39", ("nvidia/cu13/lib/libnvJitLink.so.13",)),
)
OPENER = "jax_plugins/xla_cuda13/__init__.py"


def jax_dists(*, versions: dict[str, str] | None = None) -> list[sb.Dist]:
    """jax's four parts, at ``versions`` where given (``{"jax-cuda13-plugin": "0.9.2"}``), else 0.10.2."""
    v = {"jax": VERSION, "jaxlib": VERSION, "jax-cuda13-plugin": VERSION, "jax-cuda13-pjrt": VERSION,
         **(versions or {})}
    jax = sb.Dist("jax", v["jax"], (
        f"jaxlib<={VERSION},>=0.10.1", f'jaxlib<={VERSION},>={VERSION}; extra == "cuda13"',
        f'jax-cuda13-plugin[with-cuda]<={VERSION},>={VERSION}; extra == "cuda13"',
        f'jax-cuda13-plugin<={VERSION},>={VERSION}; extra == "cuda13-local"'), ("cuda13", "cuda13-local"))
    plugin = sb.Dist("jax-cuda13-plugin", v["jax-cuda13-plugin"], (
        f"jax-cuda13-pjrt=={v['jax-cuda13-plugin']}", *(f"{req}; {_WITH_CUDA}" for _, _, req, _ in WHEELS)),
        ("with-cuda",))
    pjrt = sb.Dist("jax-cuda13-pjrt", v["jax-cuda13-pjrt"], files={OPENER: PLUGIN_INIT})
    jax = dataclasses.replace(jax, files={"jax/__init__.py": JAX_INIT})
    return [jax, sb.Dist("jaxlib", v["jaxlib"]), plugin, pjrt]


# what jax 0.10.2 does at its first use of a backend: the CUDA plugin's initialize() CDLLs each library by absolute
# path from the nvidia wheels (_load_nvidia_libraries: one that is missing is skipped), then its version check
# refuses CUDA without cuDNN; jax logs that and goes on with the CPU
PLUGIN_INIT = f"""
import ctypes, os
SITE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIBRARIES = {[rel for _, _, _, files in WHEELS for rel in files]!r}
def initialize():
    opened = set()
    for rel in LIBRARIES:
        try:
            ctypes.CDLL(os.path.join(SITE, rel))
            opened.add(os.path.basename(rel))
        except OSError:
            pass
    if "libcudnn.so.9" not in opened:
        try:
            raise RuntimeError("cuDNN not found.")
        except RuntimeError as e:
            raise RuntimeError("Unable to load cuDNN. Is it installed?") from e
"""
JAX_INIT = """
import logging
__version__ = "0.10.2"
def devices(backend=None):
    import jax_plugins.xla_cuda13 as plugin
    try:
        plugin.initialize()
    except Exception:
        logging.getLogger("jax._src.xla_bridge").warning(
            "Jax plugin configuration error: Exception when calling jax_plugins.xla_cuda13.initialize()", exc_info=True)
    if backend is not None and backend != "cpu":
        raise RuntimeError(f"Unknown backend {backend}. Available backends are ['cpu']")
    return ["cpu"]
"""


def jax_tree(tmp_path: Path, gcc: str, *, omit: tuple[str, ...] = (), versions: dict[str, str] | None = None) -> Path:
    """A site-packages folder as `pip install 'jax[cuda13]'` makes it, less the distributions in ``omit``."""
    dists = [d for d in jax_dists(versions=versions) if d.key not in omit]
    dists += [sb.Dist(name, version) for name, version, _, _ in WHEELS if name not in omit]
    site = sb.build(tmp_path / "site", dists)
    for name, _, _, files in WHEELS:
        if name not in omit:
            add_to_record(site, name.replace("-", "_"), [lib(gcc, site / rel) for rel in files])
    return site
