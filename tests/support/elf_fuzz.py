"""The ELF fuzz worker: mutate seed files deterministically and read each mutant with every ELF reader.

Run by tests/engine/test_elf_fuzz.py as ``python -m tests.support.elf_fuzz BUDGET WORKDIR SEED...`` in a child
with RLIMIT_AS at 1 GiB.  Case ``i`` of seed ``S`` is always the same mutant (``random.Random("S:i")``);
the seeds take turns, and the worker stops when BUDGET seconds are spent, so a slower machine runs
a shorter prefix of the same sequence.  One JSON line per case on stdout, a ``start`` line before
it (so that a hang or a crash names its case).  A case is bad when a reader:

- raises anything but its documented problem (``read_elf``, ``dynamic_symbols`` and ``symbol_table``
  never raise; ``read_architectures`` raises :class:`FatbinError` or ``OSError``, which the arch
  item reports);
- takes more than :data:`PER_CALL` seconds;
- asks for more than :data:`READ_LIMIT` bytes in one read (the readers used to size reads from the
  headers: 4.2 GB for a claimed 65,535 section headers), or reports a MemoryError or RecursionError;
- or the worker's peak memory passes :data:`RSS_LIMIT`.
"""

from __future__ import annotations

import io
import json
import os
import random
import resource
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PER_CALL = 1.0  # seconds; a reader takes about 1-20 ms on these files
READ_LIMIT = 64 << 20  # bytes in one read; the largest seed is about 2 MB
RSS_LIMIT = 512 << 10  # KiB (ru_maxrss); the worker needs about 60 MB

_EHDR_FIELDS = {  # Elf64_Ehdr: offset, struct format
    "e_type": (16, "H"), "e_phoff": (32, "Q"), "e_shoff": (40, "Q"), "e_phentsize": (54, "H"), "e_phnum": (56, "H"),
    "e_shentsize": (58, "H"), "e_shnum": (60, "H"), "e_shstrndx": (62, "H"), "ei_class": (4, "B"), "ei_data": (5, "B"),
}
_SHDR_FIELDS = {  # Elf64_Shdr
    "sh_name": (0, "I"), "sh_type": (4, "I"), "sh_offset": (24, "Q"), "sh_size": (32, "Q"), "sh_link": (40, "I"),
    "sh_info": (44, "I"), "sh_entsize": (56, "Q"),
}
_SECTION_TYPES = (2, 3, 6, 8, 11, 0x6FFFFFFD, 0x6FFFFFFE, 0x6FFFFFFF)  # SYMTAB STRTAB DYNAMIC NOBITS DYNSYM GNU_verdef...
_DYNAMIC_TAGS = (1, 5, 10, 14, 15, 29, 0x6FFFFFF0, 0x6FFFFFFC, 0x6FFFFFFE)  # NEEDED STRTAB STRSZ SONAME RPATH RUNPATH VERSYM...


def _interesting(rng: random.Random, fmt: str, size: int) -> int:
    top = (1 << (8 * struct.calcsize(fmt))) - 1
    values = [0, 1, 2, 7, 0x7F, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 1 << 32, (1 << 63) - 1, (1 << 64) - 1,
              size - 1, size, size + 1, size // 2, rng.randrange(max(size, 1)), rng.randrange(top + 1)]
    return rng.choice([v for v in values if 0 <= v <= top])


def _shdr_table(data: bytes) -> tuple[int, int]:
    """(offset, count) of the section header table, as the (unmutated) header states it."""
    if len(data) < 64:
        return 0, 0
    shoff, shnum = struct.unpack_from("<Q", data, 40)[0], struct.unpack_from("<H", data, 60)[0]
    return (shoff, shnum) if shoff + shnum * 64 <= len(data) else (0, 0)


def _put(data: bytearray, offset: int, fmt: str, value: int) -> None:
    if offset + struct.calcsize(fmt) <= len(data):
        struct.pack_into("<" + fmt, data, offset, value)


def _flip(rng: random.Random, data: bytearray) -> str:
    shoff, shnum = _shdr_table(bytes(data))
    regions = [(0, min(len(data), 512)), (shoff, shoff + shnum * 64) if shnum else (0, len(data)), (0, len(data))]
    count = rng.randint(1, 16)
    for _ in range(count):
        start, end = rng.choice(regions)
        if end > start:
            data[rng.randrange(start, end)] = rng.randrange(256)
    return f"flip {count} bytes"


def _truncate(rng: random.Random, data: bytearray) -> str:
    if not data:
        return "truncate nothing"
    shoff, _ = _shdr_table(bytes(data))
    cut = rng.choice([rng.randrange(len(data)), rng.randrange(0, 80), shoff + rng.randrange(-64, 64), len(data) - 1])
    del data[max(cut, 0):]
    return f"truncate to {max(cut, 0)}"


def _ehdr(rng: random.Random, data: bytearray) -> str:
    name = rng.choice(list(_EHDR_FIELDS))
    offset, fmt = _EHDR_FIELDS[name]
    value = _interesting(rng, fmt, len(data))
    _put(data, offset, fmt, value)
    return f"{name} = {value:#x}"


def _shdr(rng: random.Random, data: bytearray) -> str:
    shoff, shnum = _shdr_table(bytes(data))
    if not shnum:
        return _flip(rng, data)
    index, name = rng.randrange(shnum), rng.choice(list(_SHDR_FIELDS))
    offset, fmt = _SHDR_FIELDS[name]
    value = _interesting(rng, fmt, len(data))
    fatbin = _fatbin_name(data, shoff, shnum) if name == "sh_name" else None
    if name == "sh_type" and rng.random() < 0.5:
        value = rng.choice(_SECTION_TYPES)
    elif fatbin is not None and rng.random() < 0.5:
        value = fatbin  # another section (.text, .dynsym...) read as the fatbin
    _put(data, shoff + index * 64 + offset, fmt, value)
    return f"section {index} {name} = {value:#x}"


def _fatbin_name(data: bytearray, shoff: int, shnum: int) -> int | None:
    """The offset of ".nv_fatbin" in the section-name table (None: this seed has no such section)."""
    index = struct.unpack_from("<H", data, 62)[0]
    if index >= shnum:
        return None
    table = struct.unpack_from("<Q", data, shoff + index * 64 + 24)[0]
    found = data.find(b".nv_fatbin\0", table)
    return found - table if found >= 0 else None


def _dynamic(rng: random.Random, data: bytearray) -> str:
    shoff, shnum = _shdr_table(bytes(data))
    dynamic = [struct.unpack_from("<QQ", data, shoff + i * 64 + 24) for i in range(shnum)
               if struct.unpack_from("<I", data, shoff + i * 64 + 4)[0] == 6]
    if not dynamic or dynamic[0][1] < 16:
        return _shdr(rng, data)
    start, size = dynamic[0]
    at = start + 16 * rng.randrange(size // 16)
    if rng.random() < 0.5:
        _put(data, at, "Q", rng.choice(_DYNAMIC_TAGS))
        return f"dynamic entry at {at:#x}: tag changed"
    _put(data, at + 8, "Q", _interesting(rng, "Q", len(data)))
    return f"dynamic entry at {at:#x}: value changed"


MUTATIONS: tuple[tuple[float, Callable[[random.Random, bytearray], str]], ...] = (
    (0.30, _flip), (0.15, _truncate), (0.20, _ehdr), (0.25, _shdr), (0.10, _dynamic))


def mutant(seed: bytes, name: str, index: int) -> tuple[bytes, str]:
    """Case ``index`` of seed ``name``: one to three mutations, the same on every run and machine."""
    rng = random.Random(f"{name}:{index}")
    data = bytearray(seed)
    done = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        done.append(rng.choices([m for _, m in MUTATIONS], [w for w, _ in MUTATIONS])[0](rng, data))
    return bytes(data), "; ".join(done)


# --- the readers under watch ------------------------------------------------------------------------

_oversized: list[int] = []


class _Watched(io.BufferedReader):
    """A binary file whose reads are checked against READ_LIMIT before they are made."""

    def read(self, size: int | None = -1, /) -> bytes:
        if size is not None and size > READ_LIMIT:
            _oversized.append(size)
        return super().read(size)


def _watch_reads() -> None:
    """Every file the readers open is a :class:`_Watched` (builtins.open and os.fdopen, which they use)."""
    import builtins

    real_open = builtins.open

    def watched_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        stream = real_open(file, mode, *args, **kwargs)
        if mode == "rb" and isinstance(stream, io.BufferedReader):
            raw = stream.detach()
            return _Watched(raw)
        return stream

    builtins.open = watched_open
    os.fdopen = watched_open  # type: ignore[assignment]  # os.fdopen is open() on a descriptor


def _timed(problems: list[str], name: str, call: Callable[[], object], allowed: tuple[type[BaseException], ...] = ()) -> object:
    started = time.perf_counter()
    result: object = None
    try:
        result = call()
    except allowed:
        pass
    except BaseException as exc:  # the point of the fuzz: report it, with its type
        problems.append(f"{name} raised {type(exc).__name__}: {str(exc)[:200]}")
    elapsed = time.perf_counter() - started
    if elapsed > PER_CALL:
        problems.append(f"{name} took {elapsed:.2f} s")
    return result


def read_all(path: Path) -> tuple[list[str], str]:
    """The problems of one file (empty: all is well) and what read_elf made of it."""
    from pytest_cudadeps.engine.elf import ElfInfo, ElfProblem, SymbolTable, dynamic_symbols, read_elf, symbol_table
    from pytest_cudadeps.engine.fatbin import Architectures, FatbinError, read_architectures

    problems: list[str] = []
    del _oversized[:]
    info = _timed(problems, "read_elf", lambda: read_elf(path))
    if isinstance(info, ElfProblem) and ("MemoryError" in info.problem or "RecursionError" in info.problem):
        problems.append(f"read_elf: {info.problem[:200]}")
    symbols = _timed(problems, "dynamic_symbols", lambda: dynamic_symbols(path, r"\w"))
    table = _timed(problems, "symbol_table", lambda: symbol_table(path))
    arch = _timed(problems, "read_architectures", lambda: read_architectures(path), (FatbinError, OSError))
    checks = ((info, (ElfInfo, ElfProblem)), (table, SymbolTable), (symbols, tuple), (arch, (Architectures, type(None))))
    problems += [f"unexpected result {type(found).__name__}" for found, kind in checks if not isinstance(found, kind)]
    problems += [f"a read of {size} bytes was asked for" for size in _oversized]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if peak > RSS_LIMIT:
        problems.append(f"peak memory {peak >> 10} MiB")
    summary = type(info).__name__ + (f" ({len(arch.variants)} fatbin variants)" if isinstance(arch, Architectures) else "")
    return problems, summary


def main(argv: list[str]) -> int:
    budget, workdir, seeds = float(argv[0]), Path(argv[1]), [Path(p) for p in argv[2:]]
    _watch_reads()
    contents = {seed.name: seed.read_bytes() for seed in seeds}
    target = workdir / "mutant.so"
    deadline = time.monotonic() + budget
    for name, data in contents.items():  # case -1: the seed itself, which must read cleanly
        target.write_bytes(data)
        problems, summary = read_all(target)
        print(json.dumps({"case": f"{name}:-1", "mutation": "none", "problems": problems, "summary": summary}), flush=True)
    index = 0
    while time.monotonic() < deadline:
        for name, data in contents.items():
            case = f"{name}:{index}"
            mutated, how = mutant(data, name, index)
            target.write_bytes(mutated)
            print(json.dumps({"start": case, "mutation": how}), flush=True)
            started = time.perf_counter()
            problems, summary = read_all(target)
            print(json.dumps({"case": case, "mutation": how, "problems": problems, "summary": summary,
                              "seconds": round(time.perf_counter() - started, 4)}), flush=True)
        index += 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
