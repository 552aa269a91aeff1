"""The emulated ld.so search order, checked against the real loader on gcc-built executables and libraries.

Each setup is an executable ``main`` that needs ``libcdta.so``, which needs ``libcdtb.so``;
copies of ``libcdtb.so`` sit in several folders (DT_RPATH, LD_LIBRARY_PATH, DT_RUNPATH) and
the test asks both the real loader (``ld.so --inhibit-cache --list``) and :class:`LoaderModel`
which copy is mapped.  The ``lib`` prefix ``libcdt`` keeps them clear of any system library.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_cudadeps.engine.ldso import LD_SO_CACHE, LoaderModel, Resolution, expand, ld_library_path_entries, lib_token, read_ld_so_cache
from tests.support.build import build_so

LD_SO = Path("/lib64/ld-linux-x86-64.so.2")
SYSTEM_CUDART = Path("/usr/local/cuda-13.0/lib/libcudart.so.13")
EM_AARCH64 = (183).to_bytes(2, "little")


@dataclass(frozen=True)
class Kit:
    """Objects compiled once per module; each test only links (fast)."""

    gcc: str
    stubs: Path  # link-time only: stub libraries that give a DT_NEEDED entry any soname
    b: Path  # libcdtb.so, the library whose copies shadow each other
    a_obj: Path  # calls b()
    main_obj: Path  # calls a()
    b32: Path | None  # an i386 libcdtb.so, when gcc -m32 can build one

    def link(self, target: Path, obj: Path, *flags: str, shared: bool = True) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        command = [self.gcc, *(["-shared"] if shared else []), "-o", str(target), str(obj), "-Wl,--no-as-needed", *flags]
        subprocess.run(command, check=True, capture_output=True, text=True)
        return target

    def lib_a(self, folder: Path, *flags: str, needs: str = "libcdtb.so", name: str = "libcdta.so") -> Path:
        """``folder/name`` needing ``needs``, with the given -rpath flags."""
        return self.link(folder / name, self.a_obj, f"-Wl,-soname,{name}", f"-L{self.stubs}", f"-l:{needs}", *flags)

    def main(self, folder: Path, *libs: Path, flags: tuple[str, ...] = ()) -> Path:
        """An executable needing ``libs`` (by soname); without flags it finds them through DT_RUNPATH."""
        links = [arg for lib in libs for arg in (f"-L{lib.parent}", f"-l:{lib.name}")]
        links += ["-Wl,--allow-shlib-undefined", f"-Wl,-rpath-link,{self.stubs}"]  # the libraries' own needs
        if not flags:
            flags = ("-Wl,--enable-new-dtags,-rpath," + ":".join(str(lib.parent) for lib in libs),)
        return self.link(folder / "main", self.main_obj, *links, *flags, shared=False)

    def copy_b(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy(self.b, folder / "libcdtb.so"))


def _compile(gcc: str, folder: Path, name: str, source: str) -> Path:
    c_file, obj = folder / f"{name}.c", folder / f"{name}.o"
    c_file.write_text(source)
    subprocess.run([gcc, "-c", "-fPIC", "-o", str(obj), str(c_file)], check=True, capture_output=True)
    return obj


@pytest.fixture(scope="module")
def kit(gcc: str, tmp_path_factory: pytest.TempPathFactory) -> Kit:
    if not LD_SO.exists():
        pytest.skip(f"{LD_SO} is needed to compare with the real loader (x86_64 glibc)")
    root = tmp_path_factory.mktemp("loader")
    b_source = "int b(void) { return 1; }\n"
    stubs = root / "stubs"
    for soname in ("libcdtb.so", "libcdtb.so.1", "libcudart.so.13"):
        build_so(gcc, stubs / soname, b_source, f"-Wl,-soname,{soname}")
    b = build_so(gcc, root / "lib" / "libcdtb.so", b_source, "-Wl,-soname,libcdtb.so")
    try:
        b32: Path | None = build_so(gcc, root / "lib32" / "libcdtb.so", b_source, "-m32", "-nostdlib",
                                    "-Wl,-soname,libcdtb.so")
    except subprocess.CalledProcessError:
        b32 = None
    return Kit(gcc, stubs, b, _compile(gcc, root, "a", "int b(void);\nint a(void) { return b(); }\n"),
               _compile(gcc, root, "main", "int a(void);\nint main(void) { return a(); }\n"), b32)


# --- the two loaders -------------------------------------------------------------------------

_LINE = re.compile(r"^\s*(\S+) => (?:not found|(\S+) \(0x)")
_RELATIVE = re.compile(r"^\s*([^\s/]+) \(0x")
_ERROR = re.compile(r"error while loading shared libraries: (.*)$", re.M)


@dataclass(frozen=True)
class RealLoad:
    paths: dict[str, Path | None]  # libcdt* soname -> mapped file (None: not found)
    error: str | None  # "PATH: invalid ELF header" when the loader stopped


def real_loader(exe: Path, library_path: tuple[Path, ...] = (), *, cache: bool = False,
                cwd: Path | None = None) -> RealLoad:
    command = [str(LD_SO)]
    if not cache:
        command.append("--inhibit-cache")
    if library_path:
        command += ["--library-path", ":".join(map(str, library_path))]
    # what ldd does: unlike --list, LD_TRACE_LOADED_OBJECTS goes on past a library it cannot find
    env = {k: v for k, v in os.environ.items() if not k.startswith("LD_")} | {"LD_TRACE_LOADED_OBJECTS": "1"}
    done = subprocess.run([*command, str(exe)], capture_output=True, text=True, env=env, cwd=cwd, timeout=60)
    paths: dict[str, Path | None] = {}
    for line in done.stdout.splitlines():
        match = _LINE.match(line)
        if match and match[1].startswith(("libcdt", "libcudart")):
            paths[match[1]] = Path(os.path.normpath(match[2])) if match[2] else None  # it prints lib/../x
        relative = _RELATIVE.match(line)
        if relative and relative[1].startswith("libcdt"):  # found through an empty entry: opened as "libcdtb.so"
            paths[relative[1]] = (cwd or Path.cwd()) / relative[1]
    error = _ERROR.search(done.stderr)
    return RealLoad(paths, error[1].strip() if error else None)


def model_loader(exe: Path, library_path: tuple[Path, ...] = (), *, cache: bool = False) -> LoaderModel:
    model = LoaderModel(tuple(map(str, library_path)), use_cache=cache, executable=exe,
                        cache=read_ld_so_cache() if cache else {})
    model.load([exe])
    return model


def places(resolution: Resolution) -> tuple[str, ...]:
    """The places a resolution searched, as its failure message words them (``LD_LIBRARY_PATH: /x``)."""
    return tuple(map(str, resolution.searched))


def first(model: LoaderModel, soname: str) -> Resolution:
    return next(r for r in model.resolutions if r.soname == soname)


def modeled_paths(model: LoaderModel) -> dict[str, Path | None]:
    """What the model maps, in the form ``ld.so --list`` prints (one line per soname, first request wins)."""
    out: dict[str, Path | None] = {}
    for resolution in model.resolutions:
        if resolution.soname.startswith(("libcdt", "libcudart")) and resolution.soname not in out:
            if str(resolution.via) == "already loaded":
                continue  # ld.so --list prints a reused object once, under the name it was first mapped for
            out[resolution.soname] = resolution.path
    return out


def assert_same_choice(exe: Path, library_path: tuple[Path, ...] = (), expected: Path | None = None, *,
                       needed: str = "libcdtb.so", cwd: Path | None = None) -> LoaderModel:
    """The real loader and the model map the same file for every libcdt* soname, and it is ``expected``."""
    real = real_loader(exe, library_path, cwd=cwd)
    model = model_loader(exe, library_path)
    assert real.error is None
    assert real.paths[needed] == expected, f"the real loader chose {real.paths[needed]}"
    assert modeled_paths(model) == real.paths
    return model


# --- precedence: DT_RPATH > LD_LIBRARY_PATH > DT_RUNPATH ---------------------------------------


def test_rpath_beats_ld_library_path(kit: Kit, tmp_path: Path) -> None:
    rpath, llp = kit.copy_b(tmp_path / "rpath"), kit.copy_b(tmp_path / "llp")
    a = kit.lib_a(tmp_path / "a", f"-Wl,--disable-new-dtags,-rpath,{rpath.parent}")
    model = assert_same_choice(kit.main(tmp_path, a), (llp.parent,), rpath)
    assert str(first(model, "libcdtb.so").via) == "DT_RPATH of libcdta.so"


def test_ld_library_path_beats_runpath(kit: Kit, tmp_path: Path) -> None:
    runpath, llp = kit.copy_b(tmp_path / "runpath"), kit.copy_b(tmp_path / "llp")
    a = kit.lib_a(tmp_path / "a", f"-Wl,--enable-new-dtags,-rpath,{runpath.parent}")
    model = assert_same_choice(kit.main(tmp_path, a), (llp.parent,), llp)
    resolution = first(model, "libcdtb.so")
    assert str(resolution.via) == "LD_LIBRARY_PATH"
    assert places(resolution) == (f"LD_LIBRARY_PATH: {llp.parent}",)


def test_runpath_is_used_when_ld_library_path_has_no_copy(kit: Kit, tmp_path: Path) -> None:
    runpath = kit.copy_b(tmp_path / "runpath")
    (tmp_path / "empty").mkdir()
    a = kit.lib_a(tmp_path / "a", f"-Wl,--enable-new-dtags,-rpath,{runpath.parent}")
    model = assert_same_choice(kit.main(tmp_path, a), (tmp_path / "empty",), runpath)
    resolution = first(model, "libcdtb.so")
    assert str(resolution.via) == "DT_RUNPATH of libcdta.so"
    assert places(resolution) == (f"LD_LIBRARY_PATH: {tmp_path / 'empty'}", f"DT_RUNPATH of libcdta.so: {runpath.parent}")


def test_rpath_is_searched_in_order_and_the_first_folder_with_a_copy_wins(kit: Kit, tmp_path: Path) -> None:
    first_copy, second_copy = kit.copy_b(tmp_path / "one"), kit.copy_b(tmp_path / "two")
    a = kit.lib_a(tmp_path / "a", f"-Wl,--disable-new-dtags,-rpath,{tmp_path / 'none'}:{second_copy.parent}:"
                                  f"{first_copy.parent}")
    assert_same_choice(kit.main(tmp_path, a), (), second_copy)


# --- inheritance: DT_RPATH of the loaders, never DT_RUNPATH ------------------------------------


def test_rpath_of_the_executable_is_inherited_and_beats_ld_library_path(kit: Kit, tmp_path: Path) -> None:
    rpath, llp = kit.copy_b(tmp_path / "rpath"), kit.copy_b(tmp_path / "llp")
    a = kit.lib_a(tmp_path / "a")  # no paths of its own
    exe = kit.main(tmp_path, a, flags=(f"-Wl,--disable-new-dtags,-rpath,{a.parent}:{rpath.parent}",))
    model = assert_same_choice(exe, (llp.parent,), rpath)
    assert str(first(model, "libcdtb.so").via) == "DT_RPATH of main"


def test_inherited_rpath_is_ignored_when_the_needing_object_has_runpath(kit: Kit, tmp_path: Path) -> None:
    rpath = kit.copy_b(tmp_path / "rpath")
    (tmp_path / "empty").mkdir()
    a = kit.lib_a(tmp_path / "a", f"-Wl,--enable-new-dtags,-rpath,{tmp_path / 'empty'}")
    exe = kit.main(tmp_path, a, flags=(f"-Wl,--disable-new-dtags,-rpath,{a.parent}:{rpath.parent}",))
    model = assert_same_choice(exe, (), None)
    resolution = first(model, "libcdtb.so")
    assert resolution.path is None
    assert str(resolution.via) == "not found"
    assert not any(entry.startswith("DT_RPATH") for entry in places(resolution))


def test_runpath_of_the_executable_is_not_inherited(kit: Kit, tmp_path: Path) -> None:
    runpath = kit.copy_b(tmp_path / "runpath")
    a = kit.lib_a(tmp_path / "a")
    exe = kit.main(tmp_path, a, flags=(f"-Wl,--enable-new-dtags,-rpath,{a.parent}:{runpath.parent}",))
    model = assert_same_choice(exe, (), None)
    assert not any(str(runpath.parent) in entry for entry in places(first(model, "libcdtb.so")))


# --- $ORIGIN and empty entries ---------------------------------------------------------------


@pytest.mark.parametrize("origin", ["$ORIGIN", "${ORIGIN}"])
def test_origin_chain_like_torch_to_the_nvidia_wheels(kit: Kit, tmp_path: Path, origin: str) -> None:
    site = tmp_path / "site"
    wheel = kit.copy_b(site / "nvidia" / "cu13" / "lib")
    kit.copy_b(tmp_path / "llp")
    rpath = f"{origin}/../../nvidia/cudnn/lib:{origin}/../../nvidia/cu13/lib:{origin}"
    a = kit.lib_a(site / "torch" / "lib", f"-Wl,--disable-new-dtags,-rpath,{rpath}")
    model = assert_same_choice(kit.main(tmp_path, a), (tmp_path / "llp",), wheel)
    assert places(first(model, "libcdtb.so")) == (
        f"DT_RPATH of libcdta.so: {site / 'nvidia' / 'cudnn' / 'lib'}",
        f"DT_RPATH of libcdta.so: {site / 'nvidia' / 'cu13' / 'lib'}",
    )


def test_origin_of_a_library_found_through_origin(kit: Kit, tmp_path: Path) -> None:
    """A chain: libcdta finds libcdtb through $ORIGIN/../x; each object's $ORIGIN is its own folder."""
    leaf = kit.link(tmp_path / "y" / "libcdtc.so", kit.a_obj, "-Wl,-soname,libcdtc.so")
    middle = kit.link(tmp_path / "x" / "libcdtb.so", kit.a_obj, "-Wl,-soname,libcdtb.so",
                      f"-L{leaf.parent}", "-l:libcdtc.so", "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../y")
    a = kit.lib_a(tmp_path / "a", "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../x")
    model = assert_same_choice(kit.main(tmp_path, a), (), middle)
    assert modeled_paths(model)["libcdtc.so"] == leaf
    assert str(first(model, "libcdtc.so").via) == "DT_RUNPATH of libcdtb.so"


def test_empty_entry_is_the_current_folder(kit: Kit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    here = kit.copy_b(tmp_path / "cwd")
    a = kit.lib_a(tmp_path / "a", f"-Wl,--enable-new-dtags,-rpath,{tmp_path / 'none'}:")
    exe = kit.main(tmp_path, a)
    monkeypatch.chdir(here.parent)
    model = assert_same_choice(exe, (), here, cwd=here.parent)
    assert places(first(model, "libcdtb.so"))[-1] == f"DT_RUNPATH of libcdta.so: {here.parent}"
    monkeypatch.chdir(tmp_path)  # elsewhere, the empty entry finds nothing
    assert_same_choice(exe, (), None, cwd=tmp_path)


def test_ld_library_path_is_split_on_semicolons_too(kit: Kit, tmp_path: Path) -> None:
    """glibc splits LD_LIBRARY_PATH on ':' and ';' (elf/dl-load.c, _dl_init_paths); DT_RUNPATH on ':' only."""
    llp = kit.copy_b(tmp_path / "llp")
    exe = kit.main(tmp_path, kit.lib_a(tmp_path / "a"))
    value = f"{tmp_path / 'none'};{llp.parent}"
    assert real_loader(exe, (Path(value),)).paths["libcdtb.so"] == llp
    model = LoaderModel.for_this_process(use_cache=False, ld_library_path=value, ld_preload="")
    model.load([exe])
    assert first(model, "libcdtb.so").path == llp
    assert ld_library_path_entries(value) == (str(tmp_path / "none"), str(llp.parent))
    assert ld_library_path_entries("") == ()
    assert ld_library_path_entries(":a::") == ("", "a", "", "")


# --- candidates the loader passes over or stops at -------------------------------------------


def _wrong_machine_copy(kit: Kit, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = bytearray(kit.b.read_bytes())
    data[18:20] = EM_AARCH64
    target = folder / "libcdtb.so"
    target.write_bytes(bytes(data))
    return target


def _wrong_class_copy(kit: Kit, folder: Path) -> Path:
    if kit.b32 is None:
        pytest.skip("gcc -m32 -nostdlib cannot build an i386 shared object here")
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(kit.b32, folder / "libcdtb.so"))


@pytest.mark.parametrize(("make", "why"), [(_wrong_machine_copy, "wrong ELF class or machine (64-bit EM_AARCH64)"),
                                           (_wrong_class_copy, "wrong ELF class or machine (32-bit EM_386)")],
                         ids=["wrong-machine", "wrong-class"])
def test_wrong_machine_or_class_is_skipped_and_the_search_goes_on(kit: Kit, tmp_path: Path,
                                                                  make: Callable[[Kit, Path], Path], why: str) -> None:
    foreign = make(kit, tmp_path / "llp")
    runpath = kit.copy_b(tmp_path / "runpath")
    a = kit.lib_a(tmp_path / "a", f"-Wl,--enable-new-dtags,-rpath,{runpath.parent}")
    model = assert_same_choice(kit.main(tmp_path, a), (foreign.parent,), runpath)
    resolution = first(model, "libcdtb.so")
    assert resolution.skipped == ((foreign, why),)
    assert resolution.problem is None


@pytest.mark.parametrize(("content", "loader_says"), [
    (b"", "file too short"),
    (b"notelf\n", "file too short"),
    (b"INPUT(libcdtb.so.1)\n" * 8, "invalid ELF header"),
], ids=["zero-byte", "short-text", "text"])
def test_a_non_elf_file_found_first_stops_the_loader(kit: Kit, tmp_path: Path, content: bytes,
                                                     loader_says: str) -> None:
    bad = tmp_path / "llp" / "libcdtb.so"
    bad.parent.mkdir()
    bad.write_bytes(content)
    runpath = kit.copy_b(tmp_path / "runpath")
    a = kit.lib_a(tmp_path / "a", f"-Wl,--enable-new-dtags,-rpath,{runpath.parent}")
    exe = kit.main(tmp_path, a)
    real = real_loader(exe, (bad.parent,))
    assert real.error == f"{bad}: {loader_says}"
    resolution = first(model_loader(exe, (bad.parent,)), "libcdtb.so")
    assert (resolution.path, str(resolution.via), resolution.problem) == (bad, "LD_LIBRARY_PATH", loader_says)


def test_a_truncated_library_found_first_stops_the_loader(kit: Kit, tmp_path: Path) -> None:
    bad = tmp_path / "llp" / "libcdtb.so"
    bad.parent.mkdir()
    bad.write_bytes(kit.b.read_bytes()[:100])
    runpath = kit.copy_b(tmp_path / "runpath")
    a = kit.lib_a(tmp_path / "a", f"-Wl,--enable-new-dtags,-rpath,{runpath.parent}")
    exe = kit.main(tmp_path, a)
    real = real_loader(exe, (bad.parent,))
    assert real.error is not None
    assert real.error.startswith(f"{bad}: ")
    model = model_loader(exe, (bad.parent,))
    resolution = first(model, "libcdtb.so")
    assert resolution.path == bad
    assert resolution.problem is not None
    assert resolution.problem.startswith("damaged ELF file")
    assert "libcdtb.so" not in model.loaded  # a refused file is not mapped


# --- objects already mapped ------------------------------------------------------------------


def test_an_already_loaded_soname_is_reused_whatever_the_paths_of_the_next_user(kit: Kit, tmp_path: Path) -> None:
    one, two = kit.copy_b(tmp_path / "one"), kit.copy_b(tmp_path / "two")
    a1 = kit.lib_a(tmp_path / "a1", f"-Wl,--enable-new-dtags,-rpath,{one.parent}", name="libcdta1.so")
    a2 = kit.lib_a(tmp_path / "a2", f"-Wl,--disable-new-dtags,-rpath,{two.parent}", name="libcdta2.so")
    model = assert_same_choice(kit.main(tmp_path, a1, a2), (), one)
    second = [r for r in model.resolutions if r.soname == "libcdtb.so"][1]
    assert (second.needed_by, second.path, str(second.via)) == (a2, one, "already loaded")


def test_a_library_mapped_under_another_name_is_reused_by_its_soname(kit: Kit, tmp_path: Path) -> None:
    """glibc matches a request against the DT_SONAME of every mapped object, not only the names asked for."""
    mapped = kit.link(tmp_path / "one" / "libcdtb.so", kit.a_obj, "-Wl,-soname,libcdtb.so.1")  # file != soname
    other = tmp_path / "two" / "libcdtb.so.1"
    other.parent.mkdir()
    shutil.copy(mapped, other)
    a1 = kit.lib_a(tmp_path / "a1", f"-Wl,--enable-new-dtags,-rpath,{mapped.parent}", name="libcdta1.so")
    a2 = kit.lib_a(tmp_path / "a2", f"-Wl,--enable-new-dtags,-rpath,{other.parent}", name="libcdta2.so",
                   needs="libcdtb.so.1")
    model = assert_same_choice(kit.main(tmp_path, a1, a2), (), mapped)
    assert "libcdtb.so.1" not in real_loader(kit.main(tmp_path, a1, a2)).paths  # not mapped a second time
    reuse = first(model, "libcdtb.so.1")
    assert (reuse.path, str(reuse.via)) == (mapped, "already loaded")


# --- ld.so.cache -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def system_cache() -> Mapping[str, tuple[Path, ...]]:
    cache = read_ld_so_cache()
    if SYSTEM_CUDART not in cache.get("libcudart.so.13", ()):
        pytest.skip(f"this machine's {LD_SO_CACHE} does not list {SYSTEM_CUDART} (the system CUDA 13.0)")
    return cache


def test_read_ld_so_cache_finds_libc_and_the_system_cuda(system_cache: Mapping[str, tuple[Path, ...]]) -> None:
    assert any(p.name == "libc.so.6" and p.is_file() for p in system_cache["libc.so.6"])
    assert system_cache["libcudart.so.13"][0] == SYSTEM_CUDART
    assert all(isinstance(p, Path) and p.is_absolute() for paths in system_cache.values() for p in paths)


def test_read_ld_so_cache_of_a_missing_or_foreign_file_is_empty(tmp_path: Path) -> None:
    assert read_ld_so_cache(tmp_path / "missing") == {}
    garbage = tmp_path / "ld.so.cache"
    garbage.write_bytes(b"not a cache" * 10)
    assert read_ld_so_cache(garbage) == {}
    truncated = tmp_path / "cut.cache"
    truncated.write_bytes(LD_SO_CACHE.read_bytes()[:30] if LD_SO_CACHE.exists() else b"glibc-ld.so.cache1.1")
    assert read_ld_so_cache(truncated) == {}


def test_the_cache_is_parsed_once_per_version_of_the_file(system_cache: Mapping[str, tuple[Path, ...]],
                                                          tmp_path: Path) -> None:
    copy = tmp_path / "ld.so.cache"
    copy.write_bytes(LD_SO_CACHE.read_bytes())
    first = read_ld_so_cache(copy)
    assert first == system_cache
    assert read_ld_so_cache(copy) is first  # the same file again: not parsed again
    replaced = tmp_path / "new.cache"  # as ldconfig replaces it: a new file renamed over the old one
    replaced.write_bytes(b"not a cache")
    replaced.rename(copy)
    assert read_ld_so_cache(copy) == {}


def test_the_cache_finds_the_system_cudart_and_use_cache_false_does_not(
        kit: Kit, tmp_path: Path, system_cache: Mapping[str, tuple[Path, ...]]) -> None:
    a = kit.lib_a(tmp_path / "a", needs="libcudart.so.13")  # no paths: only the cache can find it
    exe = kit.main(tmp_path, a)
    assert real_loader(exe, cache=True).paths["libcudart.so.13"] == SYSTEM_CUDART
    assert real_loader(exe, cache=False).paths["libcudart.so.13"] is None
    with_cache = first(model_loader(exe, cache=True), "libcudart.so.13")
    assert (with_cache.path, str(with_cache.via)) == (SYSTEM_CUDART, "ld.so.cache")
    without = first(model_loader(exe, cache=False), "libcudart.so.13")
    assert (without.path, str(without.via)) == (None, "not found")
    assert "ld.so.cache" not in places(without)
    assert "ld.so.cache" in places(with_cache)


def test_a_copy_in_ld_library_path_shadows_the_cache(kit: Kit, tmp_path: Path,
                                                    system_cache: Mapping[str, tuple[Path, ...]]) -> None:
    shadow = tmp_path / "llp" / "libcudart.so.13"
    shadow.parent.mkdir()
    shutil.copy(kit.stubs / "libcudart.so.13", shadow)
    exe = kit.main(tmp_path, kit.lib_a(tmp_path / "a", needs="libcudart.so.13"))
    assert real_loader(exe, (shadow.parent,), cache=True).paths["libcudart.so.13"] == shadow
    resolution = first(model_loader(exe, (shadow.parent,), cache=True), "libcudart.so.13")
    assert (resolution.path, str(resolution.via)) == (shadow, "LD_LIBRARY_PATH")


# --- expand ----------------------------------------------------------------------------------


def test_expand_origin_forms_and_dot_dot(tmp_path: Path) -> None:
    origin = tmp_path / "site" / "torch" / "lib"
    assert expand("$ORIGIN", origin) == origin
    assert expand("${ORIGIN}", origin) == origin
    assert expand("$ORIGIN/../../nvidia/cu13/lib", origin) == tmp_path / "site" / "nvidia" / "cu13" / "lib"
    assert expand("${ORIGIN}/../x", origin) == tmp_path / "site" / "torch" / "x"
    assert expand("/opt/$LIB/x", origin) == Path("/opt") / lib_token() / "x"


def test_expand_empty_and_relative_entries_use_the_current_folder(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert expand("", Path("/elsewhere")) == tmp_path
    assert expand("rel/lib", Path("/elsewhere")) == tmp_path / "rel" / "lib"
