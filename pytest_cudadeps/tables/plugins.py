"""Shared objects of a framework that are loaded only when a user asks for them (onnxruntime 1.31.1's execution
providers other than CUDA's): their needs are notes, never failures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass


# --- optional plugins and objects that rely on preloading ------------------------------------------
@dataclass(frozen=True)
class Plugin:
    """A shared object of a framework that is loaded only when the user asks for it."""

    package: str  # the import package that ships it
    file: str
    what: str


OPTIONAL_PLUGINS: tuple[Plugin, ...] = tuple(
    Plugin("onnxruntime", f"libonnxruntime_providers_{name}.so", what)
    for name, what in (
        ("tensorrt", "the TensorRT execution provider (TensorrtExecutionProvider); it needs TensorRT "
                     "(libnvinfer.so.10, `pip install tensorrt-cu13`), which no extra of onnxruntime declares"),
        ("nv_tensorrt_rtx", "the TensorRT RTX execution provider (NvTensorRTRTXExecutionProvider)"),
        ("migraphx", "the MIGraphX execution provider"), ("openvino", "the OpenVINO execution provider"),
    )
)
