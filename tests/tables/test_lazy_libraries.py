"""The libraries opened by name at run time: the names each entry tries, for its opener's version."""

from __future__ import annotations

from pytest_cudadeps.tables.lazy_libraries import LAZY


def test_names_follow_the_openers_version() -> None:
    builtins = next(entry for entry in LAZY if entry.tries == ("libnvrtc-builtins.so.{v0}.{v1}",))
    assert builtins.names("13.0.88", "13.0") == ("libnvrtc-builtins.so.13.0",)
    assert builtins.names("12.6.77", "12.6") == ("libnvrtc-builtins.so.12.6",)
    assert builtins.names(None, "13.0") == ()  # an opener of no wheel: its version is unknown
    cnn = next(entry for entry in LAZY if entry.tries[-1] == "libcudnn_cnn.so")
    assert cnn.names(None, None) == ("libcudnn_cnn.so",)
