"""versions[ROOT] on real ELF files built with gcc: a libstdc++.so.6 short of the versions its users need, picked
from LD_LIBRARY_PATH, is named with the versions, the users and the command that takes its folder out."""

from __future__ import annotations

from pathlib import Path

from pytest_cudadeps.checks.findings import Outcome
from pytest_cudadeps.checks.versions import versions_finding
from pytest_cudadeps.engine.distributions import scan
from pytest_cudadeps.engine.ldso import variable_without
from pytest_cudadeps.engine.linkage import analyze
from tests.support import sitebuilder as sb
from tests.support.build import build_so
from tests.support.fixloop import old_libstdcxx

NEW_MAP = "GLIBCXX_3.4 { global: f34; local: *; };\nGLIBCXX_3.4.30 { global: f30; } GLIBCXX_3.4;\n"


def _site(gcc: str, tmp_path: Path) -> Path:
    """A root whose own library needs libstdc++.so.6's GLIBCXX_3.4.30 (linked against a new one)."""
    new = tmp_path / "new"
    new.mkdir()
    (new / "map").write_text(NEW_MAP)
    build_so(gcc, new / "libstdc++.so.6", "int f34(void){return 0;} int f30(void){return 0;}\n",
             "-Wl,-soname,libstdc++.so.6", f"-Wl,--version-script,{new / 'map'}")
    site = tmp_path / "site"
    lib = build_so(gcc, site / "app" / "libapp.so", "int f30(void);\nint app(void){return f30();}\n",
                   f"-L{new}", "-l:libstdc++.so.6")
    sb.build(site, [sb.Dist("app", "1.0", ("nvidia-cuda-runtime",))])
    sb.add_to_record(site, "app", [lib])
    return site


def test_an_old_libstdcxx_first_on_ld_library_path_fails_naming_the_version_and_the_fix(gcc: str, tmp_path: Path) -> None:
    site = _site(gcc, tmp_path)
    old = old_libstdcxx(tmp_path / "old")
    env = scan([site])
    root = env.get("app")
    assert root is not None
    linkage = analyze(env, root, use_ld_cache=False, ld_library_path=f"/nowhere:{old.parent}", ld_preload="")
    finding = versions_finding("app", linkage)
    assert finding.outcome is Outcome.FAIL
    assert finding.message.startswith(f"libstdc++.so.6 at {old} (via LD_LIBRARY_PATH) lacks version `GLIBCXX_3.4.30' "
                                      f"that its users need: version `GLIBCXX_3.4.30' not found (required by ")
    assert finding.fix == "export LD_LIBRARY_PATH='/nowhere'"
    assert dict(finding.facts)["versions"] == "GLIBCXX_3.4.30"
    # the new one first: nothing lacks
    fine = analyze(env, root, use_ld_cache=False, ld_library_path=str(tmp_path / "new"), ld_preload="")
    assert versions_finding("app", fine).outcome is Outcome.PASS


def test_a_variable_without_the_folder_is_unset_when_nothing_stays() -> None:
    assert variable_without("LD_LIBRARY_PATH", ("/opt/conda/lib",), Path("/opt/conda/lib")) == "unset LD_LIBRARY_PATH"
    assert variable_without("LD_LIBRARY_PATH", ("/a", "/opt/conda/lib/", "/b$(x)"), Path("/opt/conda/lib")) == \
        "export LD_LIBRARY_PATH='/a:/b$(x)'"
