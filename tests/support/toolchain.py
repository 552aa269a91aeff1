"""Fake toolchains for the toolchain[...] tests: an nvcc script with a host_config.h, and gcc scripts."""

from __future__ import annotations

from pathlib import Path


def fake_nvcc(folder: Path) -> Path:
    nvcc = folder / "bin" / "nvcc"
    nvcc.parent.mkdir(parents=True)
    nvcc.write_text("#!/bin/sh\n", encoding="utf-8")
    nvcc.chmod(0o755)
    return nvcc


# the shape of nvidia-cuda-crt 13.5.37's crt/host_config.h: a clang bound before the GNU one, clang's after it
HOST_CONFIG = """#if defined(__GRCO_CLANG_COMPILER__)
#if (__GRCO_CLANG_COMPILER__ == 1) && ((__clang_major__ < 16) || (__clang_major__ > 22))
#error -- unsupported Grace clang version! The version must be 16.x to 22.x.
#endif
#endif
#if defined(__GNUC__)

#if __GNUC__ > {bound}

#error -- unsupported GNU version! gcc versions later than {bound} are not supported!

#endif /* __GNUC__ > {bound} */
#if (__clang_major__ >= 23) || (__clang_major__ < 3)
#error -- unsupported clang version!
#endif
#endif /* __GNUC__ */
"""


def fake_toolkit(folder: Path, bound: int) -> Path:
    """A toolkit folder with an nvcc script and a host_config.h that accepts gcc ``bound`` and older."""
    nvcc = fake_nvcc(folder)
    header = folder / "include" / "crt" / "host_config.h"
    header.parent.mkdir(parents=True)
    header.write_text(HOST_CONFIG.format(bound=bound), encoding="utf-8")
    return nvcc


def fake_gcc(folder: Path, version: str, name: str = "gcc") -> Path:
    """A ``gcc`` script that answers ``-dumpfullversion`` as gcc ``version`` does."""
    folder.mkdir(parents=True, exist_ok=True)
    gcc = folder / name
    gcc.write_text(f'#!/bin/sh\n[ "$1" = -dumpfullversion ] && echo {version} && exit 0\nexit 1\n', encoding="utf-8")
    gcc.chmod(0o755)
    return gcc
