"""How each CUDA framework other than torch finds its CUDA libraries, as data: what it opens, from where, in what
order, which are optional, and the extra that declares the wheels.

None of these frameworks names a CUDA library in the DT_NEEDED of the file that opens it: jax's plugin and
onnxruntime ``ctypes.CDLL`` them by absolute path from the nvidia wheels, CuPy and numba-cuda ask
``cuda.pathfinder`` (site-packages first, then the system's dlopen), TensorFlow's ``dso_loader`` dlopens them by
soname.  A static ELF view of these roots finds nothing; the lists below are what the ``lazy[...]`` items check.

Read from the installed files of each version named in ``source`` (x86_64, Python 3.11); the order of
``libraries`` is the order the framework opens them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FrameworkLibrary:
    """One library a framework opens itself: ``folders`` are tried in order under each site-packages folder, then
    the system's search (dlopen by soname).  ``optional`` says what needs it when the framework goes on without it
    ("" for a library it refuses CUDA without)."""

    soname: str
    folders: tuple[str, ...]
    optional: str = ""


@dataclass(frozen=True)
class FrameworkFile:
    """A file other than a shared object that a framework needs and looks for itself (numba-cuda's libdevice), in
    this order: ``$CONDA_PREFIX/<rel>``, the folder of the first installed wheel of ``wheels`` (numba asks
    ``importlib.metadata`` for the distribution, then takes the file under its location), ``$CUDA_HOME`` (else
    ``$CUDA_PATH``) ``/<rel>``, ``/usr/local/cuda/<rel>``.  ``wheels`` are (distribution, the version's start for
    this build, the folder under site-packages)."""

    name: str
    label: str
    rel: str
    wheels: tuple[tuple[str, str, str], ...]
    what: str  # what fails without it
    source: str


@dataclass(frozen=True)
class Framework:
    """A framework root: the distribution users install, its CUDA build, and the libraries it opens at run time.

    ``key`` is the distribution a user installs (``jax``); ``marker`` the installed distribution that says this
    build is here (``jax-cuda13-pjrt``); ``extra`` the root's extra that declares the CUDA wheels
    (``jax[cuda13]``); ``opener`` the file, relative to site-packages, whose code opens them, ``label`` how the
    items name it; ``parts`` the distributions that must be installed at the root's version (jax's).
    """

    key: str
    marker: str
    cuda: str
    extra: str
    opener: str
    label: str
    how: str
    libraries: tuple[FrameworkLibrary, ...]
    source: str
    parts: tuple[str, ...] = ()
    marker_version: str = ""  # the marker's version starts so for this build (numba-cuda: cuda-bindings 13.x)
    files: tuple[FrameworkFile, ...] = ()  # what it needs besides shared objects (numba-cuda's libdevice.10.bc)

    def optional(self, soname: str) -> str:
        """What needs ``soname`` when the framework goes on without it; "" for a library it needs (or does not open)."""
        return next((lib.optional for lib in self.libraries if lib.soname == soname), "")


def _cu12(*libraries: tuple[str, str] | tuple[str, str, str]) -> tuple[FrameworkLibrary, ...]:
    """CUDA 12 wheels: one folder per component, ``(soname, component[, optional])`` -> ``nvidia/<component>/lib``."""
    return tuple(FrameworkLibrary(lib[0], (f"nvidia/{lib[1]}/lib",), lib[2] if len(lib) > 2 else "") for lib in libraries)


def _pathfinder12(*libraries: tuple[str, str]) -> tuple[FrameworkLibrary, ...]:
    """CUDA 12 libraries as cuda.pathfinder 1.9.1 finds them: ``nvidia/cu13/lib`` first (any soname of the library:
    a CUDA 13 wheel's libcusparse.so.12 is taken there), then the component's folder."""
    return tuple(FrameworkLibrary(soname, ("nvidia/cu13/lib", f"nvidia/{component}/lib")) for soname, component in libraries)


def _cu13(*sonames: str) -> tuple[FrameworkLibrary, ...]:
    return tuple(FrameworkLibrary(s, ("nvidia/cu13/lib",)) for s in sonames)


_JAX_SOURCE = ("jax_plugins/xla_cuda13/__init__.py (jax-cuda13-pjrt 0.10.2): _load_nvidia_libraries() CDLLs each "
               "library by absolute path from the nvidia wheels (the cu12 folder of each component first), then "
               "_check_cuda_versions() refuses CUDA, cuDNN, cuFFT, cuPTI, cuBLAS or cuSPARSE it cannot load "
               "(`RuntimeError: Unable to load cuDNN. Is it installed?`)")
_CUPY_SOURCE = ("cupy/_environment.py, cupy_backends/cuda/libs/__init__.py (cupy-cuda13x 14.2.0) and "
                "cuda/pathfinder/_dynamic_libs/load_nvidia_dynamic_lib.py (cuda-pathfinder 1.9.1): each library "
                "is loaded by cuda.pathfinder (site-packages first, then the system's dlopen) right before the "
                "extension module that needs it; the CUDA runtime is linked statically")
_CUPY12_SOURCE = ("cupy/_environment.py, cupy_backends/cuda/libs/__init__.py (cupy-cuda12x 14.2.0) and "
                  "cuda/pathfinder/_dynamic_libs/descriptor_catalog.py (cuda-pathfinder 1.9.1): as cupy-cuda13x, each "
                  "library from nvidia/cu13/lib, else its CUDA 12 component folder (nvidia/cublas/lib...); [ctk] "
                  "declares cuda-toolkit[cublas,cudart,cufft,curand,cusolver,cusparse,nvrtc]==12.*; cupy/.data/"
                  "_wheel.json: NCCL from nvidia-nccl-cu12>=2.18.1, cuTENSOR from cutensor-cu12>=2.3.0")
_TF_SOURCE = ("tensorflow 2.21.0: TSL's dso_loader in libtensorflow_framework.so.2 dlopens each library by soname "
              "(TryDlopenCUDALibraries: cudart, cublas, cublasLt, cufft, cusolver, cusparse, cudnn must all load "
              "for a GPU to be registered); build_info.py cuda_version '12.5.1'")
_ORT_SOURCE = ("onnxruntime/__init__.py (onnxruntime-gpu 1.31.1): preload_dlls() and _get_nvidia_dll_paths(); "
               "capi/build_and_package_info.py cuda_version '13.0'; [cuda] declares nvrtc, cudart, cufft, curand, "
               "[cudnn] nvidia-cudnn-cu13, which brings nvidia-cublas")
_JAX12_SOURCE = ("jax_plugins/xla_cuda12/__init__.py (jax-cuda12-plugin 0.10.2, the same file as xla_cuda13's): "
                 "_load_nvidia_libraries() CDLLs each library by absolute path from the import path of its nvidia "
                 "component (nvidia.cuda_runtime, nvidia.cublas, ...: site-packages/nvidia/<component>/lib), then "
                 "_check_cuda_versions() refuses CUDA, cuDNN, cuFFT, cuPTI, cuBLAS or cuSPARSE it cannot load; "
                 "[with-cuda] of jax-cuda12-plugin 0.10.2 declares the nvidia-*-cu12 wheels")
_NUMBA_SOURCE = ("numba_cuda/numba/cuda/cudadrv/{libs,nvvm,nvrtc}.py (numba-cuda 0.30.4): cudart, nvrtc and nvvm "
                 "through cuda.pathfinder; [cu13] declares them through cuda-toolkit[cccl,cudart,nvrtc,nvvm]==13.*")


LIBDEVICE = FrameworkFile(
    "libdevice.10.bc", "numba.cuda.cuda_paths", "nvvm/libdevice",
    (("nvidia-cuda-nvcc-cu12", "", "nvidia/cuda_nvcc/nvvm/libdevice"), ("nvidia-nvvm", "13.", "nvidia/cu13/nvvm/libdevice")),
    "every kernel compile (`RuntimeError: Missing libdevice file.`)",
    "numba_cuda/numba/cuda/cuda_paths.py (numba-cuda 0.30.4) _get_libdevice_path_decision(): Conda environment, "
    "NVIDIA NVCC Wheel (get_libdevice_wheel_path: nvidia-cuda-nvcc-cu12, else nvidia-nvvm 13.x), CUDA_HOME, System "
    "(/usr/local/cuda); cudadrv/nvvm.py LibDevice raises RuntimeError(MISSING_LIBDEVICE_FILE_MSG) when it finds none",
)

FRAMEWORKS: tuple[Framework, ...] = (
    Framework(
        "jax", "jax-cuda13-plugin", "13", "cuda13", "jax_plugins/xla_cuda13/__init__.py", "jax_plugins.xla_cuda13",
        "ctypes.CDLL by absolute path at the first use of the cuda backend",
        (
            *_cu13("libcudart.so.13", "libnvrtc.so.13", "libcublas.so.13", "libcublasLt.so.13"),
            FrameworkLibrary("libnccl.so.2", ("nvidia/nccl/lib",), "multi-GPU collectives"),
            *_cu13("libcupti.so.13", "libcusparse.so.12"),
            FrameworkLibrary("libcusolver.so.12", ("nvidia/cu13/lib",), "jax.numpy.linalg on the GPU"),
            *_cu13("libcufft.so.12"),
            FrameworkLibrary("libnvshmem_host.so.3", ("nvidia/nvshmem/lib",), "NVSHMEM collectives"),
            FrameworkLibrary("libcudnn.so.9", ("nvidia/cudnn/lib",)),
        ),
        _JAX_SOURCE, parts=("jax", "jaxlib", "jax-cuda13-plugin", "jax-cuda13-pjrt"),
    ),
    Framework(
        "jax", "jax-cuda12-plugin", "12", "cuda12", "jax_plugins/xla_cuda12/__init__.py", "jax_plugins.xla_cuda12",
        "ctypes.CDLL by absolute path at the first use of the cuda backend",
        _cu12(("libcudart.so.12", "cuda_runtime"), ("libnvrtc.so.12", "cuda_nvrtc"), ("libcublas.so.12", "cublas"),
              ("libcublasLt.so.12", "cublas"), ("libnccl.so.2", "nccl", "multi-GPU collectives"),
              ("libcupti.so.12", "cuda_cupti"), ("libcusparse.so.12", "cusparse"),
              ("libcusolver.so.11", "cusolver", "jax.numpy.linalg on the GPU"), ("libcufft.so.11", "cufft"),
              ("libnvshmem_host.so.3", "nvshmem", "NVSHMEM collectives"), ("libcudnn.so.9", "cudnn")),
        _JAX12_SOURCE, parts=("jax", "jaxlib", "jax-cuda12-plugin", "jax-cuda12-pjrt"),
    ),
    Framework(
        "cupy-cuda13x", "cupy-cuda13x", "13", "ctk", "cupy/_environment.py", "cuda.pathfinder",
        "cuda.pathfinder.load_nvidia_dynamic_lib() before each extension module",
        (
            *_cu13("libcublasLt.so.13", "libnvrtc.so.13", "libcublas.so.13", "libcusolver.so.12", "libcusparse.so.12",
                   "libcurand.so.10", "libcufft.so.12"),
            FrameworkLibrary("libnccl.so.2", ("nvidia/nccl/lib",),
                             "cupy.cuda.nccl (`pip install 'nvidia-nccl-cu13>=2.27.7,<3'`, declared by no extra)"),
            FrameworkLibrary("libcutensor.so.2", ("cutensor/lib",),
                             "cupyx.cutensor (`pip install 'cutensor-cu13>=2.3.0,<3'`, declared by no extra)"),
        ),
        _CUPY_SOURCE,
    ),
    Framework(
        "cupy-cuda12x", "cupy-cuda12x", "12", "ctk", "cupy/_environment.py", "cuda.pathfinder",
        "cuda.pathfinder.load_nvidia_dynamic_lib() before each extension module",
        (
            *_pathfinder12(("libcublasLt.so.12", "cublas"), ("libnvrtc.so.12", "cuda_nvrtc"),
                           ("libcublas.so.12", "cublas"), ("libcusolver.so.11", "cusolver"),
                           ("libcusparse.so.12", "cusparse"), ("libcurand.so.10", "curand"), ("libcufft.so.11", "cufft")),
            FrameworkLibrary("libnccl.so.2", ("nvidia/nccl/lib",),
                             "cupy.cuda.nccl (`pip install 'nvidia-nccl-cu12>=2.18.1,<3'`, declared by no extra)"),
            FrameworkLibrary("libcutensor.so.2", ("cutensor/lib",),
                             "cupyx.cutensor (`pip install 'cutensor-cu12>=2.3.0,<3'`, declared by no extra)"),
        ),
        _CUPY12_SOURCE,
    ),
    Framework(
        "tensorflow", "tensorflow", "12", "and-cuda", "tensorflow/libtensorflow_framework.so.2", "tsl.dso_loader",
        "dlopen by soname from libtensorflow_framework.so.2 when a GPU is first looked for",
        (
            FrameworkLibrary("libcudart.so.12", ("nvidia/cuda_runtime/lib",)),
            FrameworkLibrary("libcublas.so.12", ("nvidia/cublas/lib",)),
            FrameworkLibrary("libcublasLt.so.12", ("nvidia/cublas/lib",)),
            FrameworkLibrary("libcufft.so.11", ("nvidia/cufft/lib",)),
            FrameworkLibrary("libcusolver.so.11", ("nvidia/cusolver/lib",)),
            FrameworkLibrary("libcusparse.so.12", ("nvidia/cusparse/lib",)),
            FrameworkLibrary("libcudnn.so.9", ("nvidia/cudnn/lib",)),
            FrameworkLibrary("libcupti.so.12", ("nvidia/cuda_cupti/lib",), "the profiler"),
            FrameworkLibrary("libnccl.so.2", ("nvidia/nccl/lib",), "multi-GPU collectives"),
        ),
        _TF_SOURCE,
    ),
    Framework(
        "onnxruntime-gpu", "onnxruntime-gpu", "13", "cuda,cudnn", "onnxruntime/__init__.py", "onnxruntime.preload_dlls",
        "ctypes.CDLL by absolute path in onnxruntime.preload_dlls(), then by bare name for those it missed",
        (
            *_cu13("libcublasLt.so.13", "libcublas.so.13", "libnvrtc.so.13", "libcurand.so.10", "libcufft.so.12",
                   "libcudart.so.13"),
            FrameworkLibrary("libcudnn.so.9", ("nvidia/cudnn/lib",)),
        ),
        _ORT_SOURCE,
    ),
    Framework(
        "numba-cuda", "cuda-bindings", "13", "cu13", "numba_cuda/numba/cuda/cudadrv/libs.py", "cuda.pathfinder",
        "cuda.pathfinder.load_nvidia_dynamic_lib() at import and at the first kernel compile",
        _cu13("libcudart.so.13", "libnvrtc.so.13", "libnvvm.so.4"),
        _NUMBA_SOURCE, marker_version="13.", files=(LIBDEVICE,),
    ),
)
"""The frameworks checked as roots.  The CUDA 12 builds of jax and CuPy (and TensorFlow) find each library in the
folder of its component's wheel (``nvidia/cublas/lib``...), the CUDA 13 builds in ``nvidia/cu13/lib``."""


def framework_for(key: str) -> Framework | None:
    return next((fw for fw in FRAMEWORKS if fw.key == key), None)


@dataclass(frozen=True)
class AfterTorch:
    """A package that imports torch first and then loads one of its own binaries, chosen by torch's CUDA version:
    checked in torch's process, for the binary it would pick, never as a root of its own."""

    key: str
    binary: str  # relative to site-packages; {v} is the CUDA version without its dot (130)
    override: str  # the environment variable that picks another version
    source: str


AFTER_TORCH: tuple[AfterTorch, ...] = (
    AfterTorch("bitsandbytes", "bitsandbytes/libbitsandbytes_cuda{v}.so", "BNB_CUDA_VERSION",
               "bitsandbytes/cextension.py, cuda_specs.py (bitsandbytes 0.50.2): after `import torch`, "
               "libbitsandbytes_cuda{torch.version.cuda without the dot}.so by absolute path (exact; else the highest "
               "lower, else the lowest higher of the same major); BNB_CUDA_VERSION=<digits> overrides with no fallback"),
)


# The recipe of pytest_cudadeps.probes.child.framework that imports each framework and makes it open its libraries,
# by the distribution's key (CuPy's builds share one); and which of them open their CUDA libraries without a GPU:
# TensorFlow opens them only once libcuda found one (measured on tensorflow 2.21.0 without a driver: libcudart alone).
RECIPES: dict[str, str] = {"jax": "jax", "tensorflow": "tensorflow", "onnxruntime-gpu": "onnxruntime",
                           "numba-cuda": "numba-cuda"}
OPENS_ONLY_WITH_A_GPU = frozenset({"tensorflow"})


def recipe_of(framework: Framework) -> str:
    return "cupy" if framework.key.startswith("cupy-") else RECIPES.get(framework.key, framework.key)
