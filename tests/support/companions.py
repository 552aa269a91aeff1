"""Companion packages for the tests: fake torch libraries and extensions built with g++, in trees of real METADATA.

The fake ``torch/lib/libc10.so`` is built with the C++11 ABI (as torch 2.14 is) and defines
``c10::detail::check(std::string const&)`` and ``c10::cuda::check(int, bool)``.  Extensions
linked against it import those (:data:`USES_CURRENT`), or what an older torch had
(``c10::cuda::check(int)``: version skew), or are built with ``-D_GLIBCXX_USE_CXX11_ABI=0`` (the ABI flip).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support import sitebuilder as sb
from tests.support.sitebuilder import add_to_record

TORCH_SOURCE = """\
#include <string>
namespace c10 { namespace detail { int check(const std::string &what) { return (int)what.size(); } }
               namespace cuda { int check(int code, bool warn) { return code + warn; } } }
"""


USES_CURRENT = """\
#include <string>
namespace c10 { namespace detail { int check(const std::string &what); }
               namespace cuda { int check(int code, bool warn); } }
int use(void) { return c10::detail::check("x") + c10::cuda::check(1, true); }
"""


def compile_cxx(gxx: str, target: Path, source: str, *flags: str) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    source_file = target.parent / f".{target.name}.cc"
    source_file.write_text(source, encoding="utf-8")
    subprocess.run([gxx, "-shared", "-fPIC", "-o", str(target), str(source_file), *flags], check=True,
                   capture_output=True, text=True)
    source_file.unlink()
    return target


def site_with(tmp_path: Path, gxx: str, *companions: tuple[sb.Dist, str, tuple[str, ...]],
              linked_against: str = TORCH_SOURCE) -> Path:
    """torch 2.14.1 (with a g++-built libc10.so) plus companions: (dist, extension source, g++ flags).

    The extensions are linked against a libc10.so built from ``linked_against`` (the torch they were
    built for), outside the tree.
    """
    site = sb.torch_2_14_1(tmp_path / "site", extra=[dist for dist, _, _ in companions])
    compile_cxx(gxx, site / "torch" / "lib" / "libc10.so", TORCH_SOURCE, "-Wl,-soname,libc10.so")
    built_for = compile_cxx(gxx, tmp_path / "built-for" / "libc10.so", linked_against, "-Wl,-soname,libc10.so")
    for dist, source, flags in companions:
        package = dist.key.replace("-", "_")
        ext = compile_cxx(gxx, site / package / "_C.so", source, f"-L{built_for.parent}", "-lc10", *flags)
        add_to_record(site, package, [ext])
    return site


def companion(name: str, version: str, *requires: str, files: dict[str, str] | None = None) -> sb.Dist:
    return sb.Dist(name, version, requires, files=files or {})
