"""Libraries opened by name at run time, in no DT_NEEDED: who opens what, the names tried in order, and where
each entry was read (``strings`` and ``readelf -d`` of the wheels' libraries, cross-checked with their RECORD)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LazyLibrary:
    """One library an opener dlopens by name.

    ``tries`` are the names dlopen is called with, in order, as templates: ``{v0}``, ``{v1}``,
    ``{v2}`` are the parts of the opener's distribution version (nvidia-cudnn-cu13 9.24.0.43:
    9, 24, 0), ``{cuda}`` the CUDA major of the root's build.  ``same_wheel``: the opener's own
    wheel ships it; otherwise the wheel the root declares for that soname does.
    """

    opener: str  # a regular expression on the opener's file name
    tries: tuple[str, ...]
    same_wheel: bool
    source: str
    seen_as: str  # what the user sees when it is missing; {tried} is the names tried
    optional: str = ""  # what needs it when the opener goes on without it ("": the opener fails without it)
    label: str = ""  # how the items name the opener when it is not a shared object (jax_plugins.xla_cuda13)

    def names(self, version: str | None, cuda: str | None) -> tuple[str, ...]:
        """The names tried, for this opener's version; a template whose fields are unknown is left out."""
        parts = [p for p in (version or "").split(".") if p.isdigit()]
        fields = {f"v{i}": part for i, part in enumerate(parts)}
        if cuda:
            fields["cuda"] = cuda.split(".")[0]
        names = []
        for template in self.tries:
            try:
                names.append(template.format(**fields))
            except KeyError:
                continue
        return tuple(names)


def _cudnn(name: str, opener: str, source: str) -> LazyLibrary:
    # libcudnn.so.9 formats "%s.%d.%d.%d", "%s.%d.%d", "%s.%d" on the base name, then the bare name
    return LazyLibrary(opener, (f"{name}.so.{{v0}}.{{v1}}.{{v2}}", f"{name}.so.{{v0}}.{{v1}}", f"{name}.so.{{v0}}",
                                f"{name}.so"), True, source, "the first cuDNN call that needs it fails with "
                                                             "`Unable to load any of {{{tried}}}`")


_CUDNN_MAIN = r"libcudnn\.so\.9$"


_CUDNN_GRAPH = r"libcudnn_graph\.so\.9$"


_CUDNN_SOURCE = ("strings of libcudnn.so.9 (nvidia-cudnn-cu13 9.24.0.43): \"%s.%d.%d.%d\", \"%s.%d.%d\", \"%s.%d\" "
                 "and the base names; not in its DT_NEEDED")


_GRAPH_SOURCE = ("strings of libcudnn_graph.so.9 (nvidia-cudnn-cu13 9.24.0.43): the base names and "
                 "\"Unable to load any of {%s, %s, %s, %s}\"")


_NVRTC = r"libnvrtc\.so\.\d+$"


# Who opens what by name.  Sources: `strings` and `readelf -d` of the libraries in torch 2.14.1's venv
# (nvidia-cudnn-cu13 9.24.0.43, nvidia-cuda-nvrtc 13.0.88, nvidia-cublas 13.1.1.3, nvidia-cufft 12.0.0.61,
# nvidia-cusparselt-cu13 0.8.1), cross-checked with each wheel's RECORD: a name in a library's strings
# that is not in its DT_NEEDED is opened with dlopen.  Entries for optional plugins and the driver are
# in OPTIONAL below, not checked.
LAZY: tuple[LazyLibrary, ...] = (
    *(_cudnn(f"libcudnn_{part}", _CUDNN_MAIN, _CUDNN_SOURCE) for part in ("graph", "ops", "cnn", "adv", "ext")),
    *(_cudnn(f"libcudnn_{part}", _CUDNN_GRAPH, _GRAPH_SOURCE)
      for part in ("engines_precompiled", "engines_runtime_compiled", "engines_tensor_ir", "heuristic")),
    LazyLibrary(_CUDNN_GRAPH, ("libnvrtc.so.{cuda}",), False,
                "strings of libcudnn_graph.so.9: \"libnvrtc.so.%d\", \"Could not open libnvrtc for runtime linking\"",
                "`Could not open libnvrtc for runtime linking` (runtime-compiled cuDNN engines)"),
    *(LazyLibrary(rf"libcudnn_{part}\.so\.9$", ("libcublasLt.so.{cuda}",), False,
                  f"strings of libcudnn_{part}.so.9: \"libcublasLt.so.13\"; not in its DT_NEEDED",
                  "cuDNN's matmul engines fail to load cuBLASLt")
      for part in ("adv", "engines_precompiled")),
    LazyLibrary(_NVRTC, ("libnvrtc-builtins.so.{v0}.{v1}",), True,
                "strings of libnvrtc.so.13 (nvidia-cuda-nvrtc 13.0.88): \"libnvrtc-builtins.so.13.0\" and the "
                "__nvrtc_builtins__13_0_* entry points it looks up; nvrtc has no RUNPATH (its loader's RPATH applies)",
                "`nvrtc: error: failed to open libnvrtc-builtins.so.13.0` at the first jit compile"),
    LazyLibrary(r"libcublasLt\.so\.\d+$", ("libnvrtc.so.{cuda}",), False,
                "strings of libcublasLt.so.13 (nvidia-cublas 13.1.1.3): \"libnvrtc.so.13\"; not in its DT_NEEDED",
                "cuBLASLt's runtime-compiled kernels fail"),
    *(LazyLibrary(r"libcufft\.so\.\d+$", (f"{name}.so.{{cuda}}",), False,
                  f"strings of libcufft.so.12 (nvidia-cufft 12.0.0.61): \"{name}.so.13\"; not in its DT_NEEDED",
                  "cuFFT's LTO callbacks and runtime-compiled kernels fail")
      for name in ("libnvrtc", "libnvJitLink")),
    LazyLibrary(r"libcusparseLt\.so\.\d+$", ("libnvrtc.so.{cuda}",), False,
                "strings of libcusparseLt.so.0 (nvidia-cusparselt-cu13 0.8.1): \"libnvrtc.so.13\"",
                "cuSPARSELt's runtime-compiled kernels fail"),
)


# Opened by name but optional, or the driver's: documented, never an item (a plugin NCCL or NVSHMEM
# goes on without, and the driver items cover libcuda and NVML).
OPTIONAL: tuple[tuple[str, str, str], ...] = (
    ("libnccl.so.2", "libnccl-net.so, libnccl-gin.so, libnccl-rma.so", "NCCL network plugins (NCCL_NET_PLUGIN)"),
    ("libnccl.so.2", "libibverbs.so.1, libmlx5.so.1, libgdrapi.so", "InfiniBand and GPUDirect RDMA (system)"),
    ("libnvshmem_host.so.3", "nvshmem_bootstrap_*.so.3, nvshmem_transport_*.so.3", "NVSHMEM bootstrap/transports"),
    ("libcufile.so.0", "libcufile_rdma.so.1", "GPUDirect Storage over RDMA"),
    ("libcupti.so.13", "libnvperf_host.so", "range profiling"),
    ("libnvJitLink.so.13", "libnvidia-tileiras.so.1", "the driver's Tile IR compiler"),
    ("libc10_cuda.so, libtorch_cuda.so, libnccl.so.2", "libnvidia-ml.so.1, libcuda.so.1", "the driver"),
    # strings of torch/lib/libtorch_cuda.so: "libtorch_cuda_linalg.so", "Failed to resolve
    # at_cuda_getCurrentCUDASolverDnHandle from libtorch_cuda_linalg.so"; it sits beside its opener
    # (DT_RPATH $ORIGIN) and the linkage walk already follows it as one of torch's own objects.
    ("libtorch_cuda.so", "libtorch_cuda_linalg.so", "torch's linear algebra on CUDA (checked by linkage[...])"),
)
