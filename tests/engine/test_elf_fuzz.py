"""A time-boxed fuzz of the ELF readers over mutated real ELF files (worker: tests/support/elf_fuzz.py).

Seeds: two gcc-built libraries (one with symbol versions, DT_NEEDED, DT_RUNPATH and a
``.nv_fatbin`` section of two containers; one built with ``-nostdlib``) and a few libraries of
this system (libc, libm, libz).  Each case flips bytes, truncates, or overwrites an ELF header
field, a section header field or a dynamic entry with boundary values, the same mutant on every
run.  The worker runs in a child with RLIMIT_AS at 1 GiB for :data:`BUDGET` seconds; every case
must end with the readers' documented results, each call within a second, with no read sized
from a header beyond the file.  ``CUDADEPS_FUZZ_SECONDS`` makes a longer run.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_cudadeps.engine.ldso import default_dirs
from tests.support.build import build_so
from tests.support.fatbin import CUBIN, PTX, container, entry  # test_fatbin's container layout

REPO = Path(__file__).resolve().parents[2]
BUDGET = float(os.environ.get("CUDADEPS_FUZZ_SECONDS", "12"))
MEMORY = 1 << 30
MINIMUM_CASES = 200  # below this the fuzz proves little: the machine is far too slow, or the worker broke
SYSTEM = ("libc.so.6", "libm.so.6", "libz.so.1")


def system_seeds() -> list[Path]:
    found = []
    for name in SYSTEM:
        for folder in default_dirs():
            if (folder / name).is_file():
                found.append((folder / name).resolve())
                break
    return found


@pytest.fixture(scope="module")
def seeds(gcc: str, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("fuzz-seeds")
    dep = build_so(gcc, root / "libfuzzdep.so", "int dep(void) { return 2; }\n", "-Wl,-soname,libfuzzdep.so")
    script = root / "fuzz.map"
    script.write_text("FUZZ_1 { global: f; local: *; };\nFUZZ_2 { global: g; } FUZZ_1;\n")
    fatbin = container(entry(CUBIN, 80, b"\x01" * 13), entry(PTX, 90, b".version 8.0\n"))
    fatbin += container(entry(CUBIN, 90, b"\x02" * 8, header_size=112))
    array = ", ".join(str(b) for b in fatbin)
    versioned = build_so(
        gcc, root / "libfuzzseed.so",
        f'__attribute__((section(".nv_fatbin"), used, aligned(8))) const unsigned char fatbin[{len(fatbin)}] = '
        f"{{{array}}};\nint dep(void);\nint f(void) {{ return dep(); }}\nint g(void) {{ return 1; }}\n",
        "-Wl,-soname,libfuzzseed.so", f"-Wl,--version-script,{script}", "-Wl,--no-as-needed", f"-L{root}",
        "-l:libfuzzdep.so", "-Wl,--enable-new-dtags,-rpath,$ORIGIN:/opt/fuzz/lib", "-lm")
    tiny = build_so(gcc, root / "libtiny.so", "int t(void) { return 3; }\n", "-nostdlib", "-Wl,-soname,libtiny.so")
    for path in (dep, script):
        path.unlink()
    return [versioned, tiny, *system_seeds()]


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def run_worker(seeds: list[Path], workdir: Path) -> list[dict[str, object]]:
    """Every JSON line the worker printed; a worker that outlives its budget is killed."""
    command = [sys.executable, "-m", "tests.support.elf_fuzz", str(BUDGET), str(workdir), *map(str, seeds)]
    try:
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=BUDGET + 30,
                              preexec_fn=_limit_memory)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        last = [line for line in out.splitlines() if line.startswith('{"start"')][-1:]
        pytest.fail(f"the fuzz worker hung; the case in progress: {last}")
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0, f"the worker died ({done.returncode}) in {lines[-1:]}: {done.stderr[-2000:]}"
    return lines


def test_mutated_elf_files_only_ever_give_the_documented_results(seeds: list[Path], tmp_path: Path) -> None:
    lines = run_worker(seeds, tmp_path)
    results = [line for line in lines if "case" in line]
    originals = {str(r["case"]).rsplit(":", 1)[0]: r for r in results if str(r["case"]).endswith(":-1")}
    # the seeds themselves read cleanly, and the gcc-built one is walked to its two fatbin variants
    assert [r["problems"] for r in originals.values()] == [[]] * len(seeds), originals
    assert originals["libfuzzseed.so"]["summary"] == "ElfInfo (2 fatbin variants)"
    bad = [r for r in results if r["problems"]]
    assert bad == [], "\n".join(f"{r['case']} ({r['mutation']}): {r['problems']}" for r in bad[:10])
    mutants = len(results) - len(originals)
    assert mutants >= MINIMUM_CASES, f"only {mutants} cases in {BUDGET} s"
    damaged = sum(1 for r in results if r["summary"] != "ElfInfo" and not str(r["summary"]).startswith("ElfInfo ("))
    assert damaged > mutants // 10, "the mutations hardly ever damage a file: they test nothing"
    print(f"{mutants} mutants of {len(seeds)} seeds in {BUDGET} s ({mutants / BUDGET:.0f}/s), {damaged} refused")


def test_the_same_case_is_the_same_mutant_on_every_run(seeds: list[Path]) -> None:
    from tests.support.elf_fuzz import mutant

    data = seeds[0].read_bytes()
    assert mutant(data, "libfuzzseed.so", 7) == mutant(data, "libfuzzseed.so", 7)
    assert mutant(data, "libfuzzseed.so", 7) != mutant(data, "libfuzzseed.so", 8)
