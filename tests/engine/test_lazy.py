"""Libraries opened by name at run time, resolved as dlopen from their opener would (the cuDNN tree of
tests/support/cudnn.py), and the command that puts one back.  What the lazy[...] items say of them, and glibc's
own answer, is tests/checks/test_lazy.py's."""

from __future__ import annotations

from pathlib import Path

from pytest_cudadeps.core.settings import Settings
from pytest_cudadeps.engine.lazy import lazy_fix
from pytest_cudadeps.engine.snapshot import take_snapshot
from tests.support.cudnn import CUDNN, cudnn_tree

REINSTALL_CUDNN = "pip install --force-reinstall --no-deps 'nvidia-cudnn-cu13==9.24.0.43'"


def test_each_library_is_resolved_from_its_opener_and_put_back_by_its_wheel(tmp_path: Path, gcc: str) -> None:
    site = cudnn_tree(tmp_path, gcc, parts=("graph", "ops", "cnn", "adv"))  # no ext: this wheel never opens it
    (site / CUDNN / "libcudnn_ops.so.9").unlink()  # its RECORD still lists it
    snapshot = take_snapshot(Settings(paths=(str(site),), no_ld_cache=True))
    assert snapshot.torch is not None
    found = {lazy.soname: lazy for lazy in snapshot.torch.lazy}
    assert list(found) == ["libcudnn_graph.so.9", "libcudnn_ops.so.9", "libcudnn_cnn.so.9", "libcudnn_adv.so.9",
                           "libnvrtc.so.13", "libcublasLt.so.13"]
    cnn = found["libcudnn_cnn.so.9"]
    assert cnn.tried == ("libcudnn_cnn.so.9.24.0", "libcudnn_cnn.so.9.24", "libcudnn_cnn.so.9", "libcudnn_cnn.so")
    assert (cnn.opener, cnn.path) == (site / CUDNN / "libcudnn.so.9", site / CUDNN / "libcudnn_cnn.so.9")
    assert cnn.opener_owner is not None
    assert cnn.opener_owner.key == "nvidia-cudnn-cu13"
    ops = found["libcudnn_ops.so.9"]
    assert ops.path is None
    assert ops.searched[0].folder == site / CUDNN  # the opener's DT_RPATH $ORIGIN first
    # what a sub-library opens in turn: graph opens nvrtc, adv cuBLASLt (neither wheel ships its file here)
    assert (found["libnvrtc.so.13"].opener, found["libnvrtc.so.13"].path) == (site / CUDNN / "libcudnn_graph.so.9", None)
    assert found["libcublasLt.so.13"].opener == site / CUDNN / "libcudnn_adv.so.9"
    resolver = snapshot.resolver(snapshot.torch)
    assert lazy_fix(ops, resolver) == REINSTALL_CUDNN  # cuDNN's own sub-library: its wheel puts it back
    assert lazy_fix(found["libcublasLt.so.13"], resolver) == (
        "pip install --force-reinstall --no-deps 'nvidia-cublas==13.1.1.3.*'")  # the wheel torch declares for it
