"""Child: dlopen libraries one by one and report the file each one was really mapped from.

Request: :class:`~.protocol.LoadRequest`; each step's answer: :class:`~.protocol.Loaded`.
A target is an absolute path or a bare soname.  For a step with a ``soname`` the library may already be mapped (pulled in by
the root's libraries, through their RPATH): then that copy is the answer, found with
``dlopen(soname, RTLD_NOLOAD)``, which matches loaded objects by soname and maps nothing.
"""

from __future__ import annotations

import ctypes
import os

from pytest_cudadeps.probes.child import protocol
from pytest_cudadeps.probes.child.protocol import Loaded, LoadRequest, LoadTarget

RTLD_LAZY, RTLD_NOW, RTLD_NOLOAD, RTLD_GLOBAL, RTLD_LOCAL = 1, 2, 4, 0x100, 0
RTLD_DI_LINKMAP = 2


class _LinkMap(ctypes.Structure):
    _fields_ = [
        ("l_addr", ctypes.c_void_p),
        ("l_name", ctypes.c_char_p),
        ("l_ld", ctypes.c_void_p),
        ("l_next", ctypes.c_void_p),
        ("l_prev", ctypes.c_void_p),
    ]


def libdl() -> ctypes.CDLL:
    libc = ctypes.CDLL(None)
    dl = libc if hasattr(libc, "dlinfo") else ctypes.CDLL("libdl.so.2")  # glibc < 2.34
    dl.dlopen.restype = ctypes.c_void_p
    dl.dlopen.argtypes = [ctypes.c_char_p, ctypes.c_int]
    dl.dlerror.restype = ctypes.c_char_p
    dl.dlinfo.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    return dl


def mapped_path(dl: ctypes.CDLL, handle: int) -> str | None:
    """The file the loader mapped for ``handle``, from its link map (as found, not resolved)."""
    link_map = ctypes.POINTER(_LinkMap)()
    if dl.dlinfo(handle, RTLD_DI_LINKMAP, ctypes.byref(link_map)) != 0 or not link_map:
        return None
    name = link_map.contents.l_name
    return os.fsdecode(name) if name else None


def loaded_objects(dl: ctypes.CDLL) -> tuple[str, ...]:
    """Every object of this process, in the order the loader mapped them, from the main program's link map (the
    program itself and the vDSO, which have no file, left out)."""
    handle = dl.dlopen(None, RTLD_LAZY)
    link_map = ctypes.POINTER(_LinkMap)()
    if not handle or dl.dlinfo(handle, RTLD_DI_LINKMAP, ctypes.byref(link_map)) != 0 or not link_map:
        return ()
    found: list[str] = []
    node = link_map.contents
    while True:
        name = os.fsdecode(node.l_name) if node.l_name else ""
        if name.startswith("/"):
            found.append(name)
        if not node.l_next:
            return tuple(found)
        node = ctypes.cast(node.l_next, ctypes.POINTER(_LinkMap)).contents


def load(dl: ctypes.CDLL, step: LoadTarget) -> Loaded:
    if step.soname:
        handle = dl.dlopen(os.fsencode(step.soname), RTLD_LAZY | RTLD_NOLOAD)
        if handle:
            return Loaded(True, mapped_path(dl, handle), "already mapped")
        dl.dlerror()  # clear the NOLOAD miss
    mode = RTLD_NOW | (RTLD_GLOBAL if step.rtld_global else RTLD_LOCAL)
    handle = dl.dlopen(os.fsencode(step.target), mode)
    if not handle:
        error = dl.dlerror()
        return Loaded(False, error=os.fsdecode(error) if error else "dlopen returned NULL")
    return Loaded(True, mapped_path(dl, handle), "opened")


def load_all(request: LoadRequest) -> None:
    """Each step begun, loaded and ended in turn (the prelude: libraries loaded again in a new child)."""
    dl = libdl()
    for step in (*request.prelude, *request.steps):
        protocol.begin(step.name)
        protocol.end(step.name, load(dl, step))


def main() -> None:
    protocol.open_channel()
    load_all(protocol.request_as(LoadRequest))
    protocol.done()


if __name__ == "__main__":
    main()
