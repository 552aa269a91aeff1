"""gcc-built trees in onnxruntime-gpu 1.31.1's layout beside torch 2.14.1: a CUDA provider without RPATH, an
optional TensorRT provider, CUDA wheels declared under extras."""

from __future__ import annotations

from pathlib import Path

from tests.support import sitebuilder as sb
from tests.support.build import build_so
from tests.support.sitebuilder import add_to_record

CU13 = "nvidia/cu13/lib"
CAPI = "onnxruntime/capi"
# onnxruntime-gpu 1.31.1's Requires-Dist (its METADATA), the extras that bring CUDA wheels
ORT_REQUIRES = (
    "flatbuffers", "numpy>=1.21.6", "packaging", "protobuf>=4.25.8", 'sympy; extra == "symbolic"',
    'ml_dtypes; extra == "quantization"', 'nvidia-cuda-nvrtc~=13.0; extra == "cuda"',
    'nvidia-cuda-runtime~=13.0; extra == "cuda"', 'nvidia-cufft~=12.0; extra == "cuda"',
    'nvidia-curand~=10.0; extra == "cuda"', 'nvidia-cudnn-cu13~=9.0; extra == "cudnn"',
)
ORT_INIT = "def preload_dlls(cuda=True, cudnn=True, msvc=True, directory=None):\n    pass\n"  # the name is what is read


def lib(gcc: str, path: Path, *flags: str) -> Path:
    """A small library whose soname is its file name."""
    return build_so(gcc, path, f"int {path.name.split('.')[0]}_entry(void) {{ return 0; }}\n",
                    f"-Wl,-soname,{path.name}", *flags)


ORT = sb.Dist("onnxruntime-gpu", "1.31.1", ORT_REQUIRES, ("symbolic", "quantization", "cuda", "cudnn"),
              files={"onnxruntime/__init__.py": ORT_INIT})


def ort_tree(tmp_path: Path, gcc: str, *, omit: tuple[str, ...] = (), ort: sb.Dist = ORT,
             extra: tuple[sb.Dist, ...] = ()) -> Path:
    """torch 2.14.1 (its global deps need libcudart and libcublas through DT_RPATH) and onnxruntime-gpu's layout."""
    site = sb.torch_2_14_1(tmp_path / "site", omit=omit, extra=[ort, *extra])
    built = {}
    for name, dist in (("libcudart.so.13", "nvidia_cuda_runtime"), ("libcublas.so.13", "nvidia_cublas"),
                       ("libcurand.so.10", "nvidia_curand")):
        target = lib(gcc, (site if dist.replace("_", "-") not in omit else tmp_path / "gone") / CU13 / name)
        built[name] = target
        if dist.replace("_", "-") not in omit:
            add_to_record(site, dist, [target])
    links = [f"-L{built['libcudart.so.13'].parent}", f"-L{built['libcurand.so.10'].parent}", "-Wl,--no-as-needed"]
    deps = build_so(gcc, site / "torch/lib/libtorch_global_deps.so", "int deps(void) { return 0; }\n", *links[:1],
                    "-Wl,--no-as-needed", "-l:libcudart.so.13", "-l:libcublas.so.13",
                    "-Wl,--disable-new-dtags,-rpath,$ORIGIN/../../nvidia/cu13/lib")
    add_to_record(site, "torch", [deps])
    trt = tmp_path / "tensorrt"
    lib(gcc, trt / "libnvinfer.so.10")
    lib(gcc, trt / "libcudnn.so.9")
    provider = build_so(gcc, site / CAPI / "libonnxruntime_providers_cuda.so", "int ep(void) { return 0; }\n",
                        *links, "-l:libcudart.so.13", "-l:libcublas.so.13", "-l:libcurand.so.10")
    tensorrt = build_so(gcc, site / CAPI / "libonnxruntime_providers_tensorrt.so", "int trt(void) { return 0; }\n",
                        *links, f"-L{trt}", "-l:libcudart.so.13", "-l:libnvinfer.so.10", "-l:libcudnn.so.9")
    add_to_record(site, "onnxruntime_gpu", [provider, tensorrt])
    return site
