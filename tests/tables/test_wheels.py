"""Which wheel provides each CUDA library, per CUDA major."""

from __future__ import annotations

import pytest

from pytest_cudadeps.tables import wheels
from pytest_cudadeps.tables.wheels import (
    CUDA_PREFIXES,
    CUDA_SONAME_PREFIXES,
    DRIVER_SONAMES,
    NOT_CUDA_WHEELS,
    Provider,
    library_of_symbol,
    provider_for,
)


def test_the_cuda_13_wheels_are_none_of_the_cuda_12_wheels() -> None:
    """Both majors ship libcusparse.so.12, libcurand.so.10, libcudnn.so.9...: only the distribution tells them apart."""
    cu13 = {soname: provider_for(soname, 13) for soname in wheels._CU13}
    cu12_names = {provider.distribution for provider in wheels._CU12.values()}
    for soname, provider in cu13.items():
        assert provider is not None
        assert provider.distribution not in cu12_names, soname
    assert all(name.endswith("-cu12") for name in cu12_names)
    shared = sorted(set(wheels._CU13) & set(wheels._CU12))
    assert "libcusparse.so.12" in shared
    for soname in shared:
        assert provider_for(soname, 12) != provider_for(soname, 13), soname


def test_every_entry_is_a_cuda_soname_of_a_cuda_wheel() -> None:
    for table in (wheels._CU12, wheels._CU13):
        for soname, provider in table.items():
            assert soname.startswith(CUDA_SONAME_PREFIXES), soname
            assert provider.distribution.startswith(CUDA_PREFIXES), provider
            assert provider.distribution not in NOT_CUDA_WHEELS, provider
            assert soname not in DRIVER_SONAMES  # the driver installs those, never a wheel


def test_provider_for_cudnns_sub_libraries_and_unknown_majors() -> None:
    assert provider_for("libcudnn_cnn.so.9", 13) == Provider("nvidia-cudnn-cu13")
    assert provider_for("libcudnn_cnn.so.9", 12) == Provider("nvidia-cudnn-cu12")
    assert provider_for("libcudart.so.13", None) is None
    assert provider_for("libcudart.so.13", 12) is None
    assert provider_for("libfoo.so.1", 13) is None


def test_the_spec_that_installs_a_provider() -> None:
    assert Provider("nvidia-cuda-runtime", "cudart").spec("13.0") == "cuda-toolkit[cudart]==13.0.*"
    assert Provider("nvidia-cuda-runtime", "cudart").spec(None) == "nvidia-cuda-runtime"
    assert Provider("nvidia-cuda-runtime-cu12").spec("12.6") == "nvidia-cuda-runtime-cu12==12.6.*"
    assert Provider("nvidia-cublas-cu12").spec("12.6") == "nvidia-cublas-cu12"  # its version is not CUDA's
    assert Provider("nvidia-cudnn-cu13").spec("13.0") == "nvidia-cudnn-cu13"


@pytest.mark.parametrize(("symbol", "stem"), [
    ("ncclCommShrink", "libnccl"), ("cublasLtMatmul", "libcublasLt"), ("cublasCreate_v2", "libcublas"),
    ("cudnnCreate", "libcudnn"), ("cudaMalloc", "libcudart"), ("cusparseLtInit", "libcusparseLt"),
    ("__nvJitLinkComplete_13_1", "libnvJitLink"), ("cuInit", None), ("_ZN3c106detail", None),
])
def test_the_library_of_an_undefined_symbol_by_its_prefix(symbol: str, stem: str | None) -> None:
    assert library_of_symbol(symbol) == stem
