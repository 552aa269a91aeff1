"""A torch tree whose cuDNN is built with gcc and really dlopens, as the wheel's does.

The fake ``libcudnn.so.9`` (DT_RPATH ``$ORIGIN``, as the wheel's) exports ``open_lazy``, which
dlopens a list of names in order the way cuDNN does and returns the file the loader mapped.
"""

from __future__ import annotations

from pathlib import Path

from tests.support import sitebuilder as sb
from tests.support.build import build_so
from tests.support.sitebuilder import add_to_record

CUDNN = "nvidia/cudnn/lib"
OPENER = """\
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <string.h>
static char found[4096];
const char *open_lazy(const char *names) {  /* "a;b;c": the first that loads, as cuDNN tries its names */
    char copy[4096]; strncpy(copy, names, sizeof copy - 1); copy[sizeof copy - 1] = 0;
    for (char *name = strtok(copy, ";"); name; name = strtok(NULL, ";")) {
        void *handle = dlopen(name, RTLD_NOW | RTLD_LOCAL);
        struct link_map *map;
        if (handle && dlinfo(handle, RTLD_DI_LINKMAP, &map) == 0) { strncpy(found, map->l_name, sizeof found - 1); return found; }
    }
    return "";
}
"""


def cudnn_tree(tmp_path: Path, gcc: str, *, parts: tuple[str, ...] = ("graph", "ops", "cnn", "adv", "ext")) -> Path:
    """torch 2.14.1 whose libtorch_global_deps.so needs the fake libcudnn.so.9, with the sub-libraries ``parts``."""
    site = sb.torch_2_14_1(tmp_path / "site")
    lib = site / CUDNN
    cudnn = build_so(gcc, lib / "libcudnn.so.9", OPENER, "-Wl,-soname,libcudnn.so.9",
                     "-Wl,--disable-new-dtags,-rpath,$ORIGIN", "-ldl")
    subs = [build_so(gcc, lib / f"libcudnn_{part}.so.9", f"int {part}_entry(void) {{ return 0; }}\n",
                     f"-Wl,-soname,libcudnn_{part}.so.9", "-Wl,--enable-new-dtags,-rpath,$ORIGIN") for part in parts]
    add_to_record(site, "nvidia_cudnn_cu13", [cudnn, *subs])
    deps = build_so(gcc, site / "torch" / "lib" / "libtorch_global_deps.so", "int deps(void) { return 0; }\n",
                    "-Wl,--no-as-needed", f"-L{lib}", "-l:libcudnn.so.9",
                    "-Wl,--disable-new-dtags,-rpath,$ORIGIN/../../nvidia/cudnn/lib")
    add_to_record(site, "torch", [deps])
    return site
