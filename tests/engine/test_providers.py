"""The one resolver every item asks which wheel provides a soname for a root, and what the fix is: the declared
requirement, cuda-toolkit's extra when cuda-toolkit is missing, else the provider table (trees of real METADATA)."""

from __future__ import annotations

from pathlib import Path

from pytest_cudadeps.core.settings import Settings
from pytest_cudadeps.engine.providers import ProviderResolver
from pytest_cudadeps.engine.snapshot import take_snapshot
from tests.support import sitebuilder as sb

TOOLKIT = "cuda-toolkit[cublas,cudart,cufft,cufile,cupti,curand,cusolver,cusparse,nvjitlink,nvrtc,nvtx]==13.0.3"


def resolver(site: Path) -> ProviderResolver:
    snapshot = take_snapshot(Settings(paths=(str(site),)), with_linkage=False)
    assert snapshot.torch is not None
    return snapshot.resolver(snapshot.torch)


def test_a_declared_and_installed_wheel_is_reinstalled_as_declared(tmp_path: Path) -> None:
    found = resolver(sb.torch_2_14_1(tmp_path / "site"))
    provision = found.provision("libcudart.so.13", None)
    assert provision is not None
    assert (provision.key, provision.chain, provision.wanted, provision.declared) == (
        "nvidia-cuda-runtime", "torch 2.14.1 > cuda-toolkit[cudart] 13.0.3.0 > nvidia-cuda-runtime==13.0.96.*",
        "nvidia-cuda-runtime==13.0.96.*", True)
    assert provision.installed is not None
    assert found.fix("libcudart.so.13", None) == "pip install --force-reinstall --no-deps 'nvidia-cuda-runtime==13.0.96.*'"
    assert found.fix("libfoo.so.1", None) == ("install the distribution that provides libfoo.so.1, or reinstall torch "
                                              "from the index that matches this platform")


def test_without_cuda_toolkit_its_extra_still_declares_the_wheel(tmp_path: Path) -> None:
    found = resolver(sb.torch_2_14_1(tmp_path / "site", omit=["cuda-toolkit", "nvidia-cuda-runtime"]))
    provision = found.provision("libcudart.so.13", None)
    assert provision is not None
    assert provision.chain == f"torch 2.14.1 > {TOOLKIT} (not installed: its extra cudart brings nvidia-cuda-runtime)"
    assert found.fix("libcudart.so.13", None) == f"pip install '{TOOLKIT}'"


def test_an_undeclared_library_is_installed_from_the_table_for_the_roots_cuda(tmp_path: Path) -> None:
    torch = sb.torch_dist("2.14.1", "13.0", requires=("filelock",))  # metadata that names no CUDA wheel
    found = resolver(sb.build(tmp_path / "site", [torch, sb.Dist("filelock", "4.2.11")]))
    provision = found.provision("libcudart.so.13", None)
    assert provision is not None
    assert (provision.key, provision.wanted, provision.declared) == ("nvidia-cuda-runtime", "cuda-toolkit[cudart]==13.0.*",
                                                                     False)
    assert found.fix("libcudart.so.13", None) == "pip install 'cuda-toolkit[cudart]==13.0.*'"
    assert found.fix("libcudnn_cnn.so.9", None) == "pip install 'nvidia-cudnn-cu13'"  # cuDNN's sub-libraries: its wheel
