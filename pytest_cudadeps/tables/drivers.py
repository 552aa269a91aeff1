"""Which NVIDIA Linux driver each CUDA runtime needs: the only copy of this table.

From NVIDIA's CUDA compatibility documents.  Minor-version compatibility lets a
runtime X.Y run on any driver of the same major's first release (``MAJOR_MINIMUM``),
with a limited feature set (PTX built by a newer toolkit cannot be JIT-compiled);
``GA_MINIMUM`` is the driver each toolkit release shipped with.
"""

from __future__ import annotations

MAJOR_MINIMUM: dict[int, str] = {13: "580", 12: "525", 11: "450"}

GA_MINIMUM: dict[tuple[int, int], str] = {
    (13, 0): "580.65.06",
    (13, 1): "590.44.01",
    (13, 2): "595.45.04",
    (12, 0): "525.60.13",
    (12, 4): "550.54.14",
    (12, 6): "560.28.03",
    (12, 8): "570.26",
    (12, 9): "575.51.03",
}

# CUDA versions torch publishes wheels for (https://download.pytorch.org/whl/cuXYZ).
TORCH_CUDA_BUILDS: tuple[tuple[int, int], ...] = ((11, 8), (12, 1), (12, 4), (12, 6), (12, 8), (12, 9), (13, 0))


def version_tuple(text: str) -> tuple[int, ...]:
    """``"580.65.06"`` -> ``(580, 65, 6)``; parts that are not numbers end it."""
    parts: list[int] = []
    for part in text.strip().split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)


def cuda_version_text(encoded: int) -> str:
    """The driver API's encoding: 12040 -> ``"12.4"``."""
    return f"{encoded // 1000}.{encoded % 1000 // 10}"


def cuda_version_tuple(encoded: int) -> tuple[int, int]:
    return encoded // 1000, encoded % 1000 // 10


def minimum_driver(cuda: tuple[int, int]) -> tuple[str | None, str | None]:
    """(the major's minimum driver, the GA driver of the newest listed release <= ``cuda``)."""
    ga = [driver for version, driver in sorted(GA_MINIMUM.items()) if version[0] == cuda[0] and version <= cuda]
    return MAJOR_MINIMUM.get(cuda[0]), (ga[-1] if ga else None)


def torch_build_for(driver_cuda: tuple[int, int]) -> tuple[int, int] | None:
    """The newest CUDA build of torch a driver supporting ``driver_cuda`` runs in full."""
    fitting = [build for build in TORCH_CUDA_BUILDS if build <= driver_cuda]
    return fitting[-1] if fitting else None
