"""The pytest entry point: the options, the ``cuda_env`` fixture and :class:`CudaDepsWarning`.

pytest imports this module in every run where the package is installed, so it holds nothing else:
the ``cudadeps`` collector, its items and the session's hooks (:mod:`pytest_cudadeps.session`) and
the engine are imported only once ``--cuda-deps`` or ``--cuda-deps-only`` turns the checks on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from pytest_cudadeps.options import (  # CudaDepsWarning: its documented name is pytest_cudadeps.plugin.CudaDepsWarning
    COLLECTOR_NAME,
    MARKER,
    PLUGIN_NAME,
    USER_MARKER,
    CudaDepsWarning,
    asked_for,
    settings_from_config,
)

if TYPE_CHECKING:
    from pytest_cudadeps.fixture import CudaEnv

__all__ = ["COLLECTOR_NAME", "MARKER", "PLUGIN_NAME", "USER_MARKER", "CudaDepsWarning", "cuda_env"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cudadeps", "CUDA environment checks (pytest-cudadeps)")

    def option(flag: str, ini: str, help: str, ini_type: Any, **kwargs: Any) -> None:
        group.addoption(flag, dest=ini, help=f"{help} (ini: {ini})", **kwargs)
        parser.addini(ini, help=help, type=ini_type, default=kwargs.get("default"))

    option("--cuda-deps", "cuda_deps", "add the CUDA environment checks to this run, beside your tests",
           "bool", action="store_true", default=None)
    option("--cuda-deps-only", "cuda_deps_only",
           "run only the CUDA environment checks; test files are not collected (a container build gate)",
           "bool", action="store_true", default=None)
    option("--cuda-deps-root", "cuda_deps_root",
           "distribution whose CUDA dependencies are checked; repeatable. Default: torch, plus every "
           "distribution that requires an nvidia-* or cuda-* distribution",
           "linelist", action="append", metavar="NAME", default=None)
    option("--cuda-deps-path", "cuda_deps_path",
           "look for installed distributions in this folder instead of sys.path; repeatable "
           "(check another environment's site-packages)",
           "linelist", action="append", metavar="DIR", default=None)
    option("--cuda-deps-no-ld-cache", "cuda_deps_no_ld_cache",
           "resolve libraries as if /etc/ld.so.cache were empty, as a clean container without a "
           "system CUDA sees them", "bool", action="store_true", default=None)
    option("--cuda-deps-no-probes", "cuda_deps_no_probes",
           "static checks only (metadata and ELF files): start no child process, load no library, touch no GPU",
           "bool", action="store_true", default=None)
    option("--cuda-deps-verify-hashes", "cuda_deps_verify_hashes",
           "compare the sha256 of every resolved CUDA library with its RECORD (reads some GiB; by default "
           "only sizes are compared, and hashes only for a file that two RECORDs claim)",
           "bool", action="store_true", default=None)
    option("--cuda-deps-timeout", "cuda_deps_timeout",
           "seconds each child-process probe may take before it counts as hung (default 60)",
           "string", metavar="SECONDS", default=None)
    option("--cuda-deps-host-root", "cuda_deps_host_root",
           "read the host's /proc and /dev under DIR (a container that mounts the host's root, as a "
           "node-problem-detector DaemonSet does at /host; default /)",
           "string", metavar="DIR", default=None)
    option("--cuda-deps-compile", "cuda_deps_compile",
           "also run a tiny torch.compile on the first GPU in the torch child: Triton builds and runs a kernel "
           "(seconds, so not by default)", "bool", action="store_true", default=None)
    option("--cuda-deps-strict-notes", "cuda_deps_strict_notes",
           "fail the item of a note (a risk as a wheel ships it, such as a DT_RUNPATH entry that reads the working "
           "directory), which otherwise fails nothing and shows in the summary", "bool", action="store_true",
           default=None)
    option("--cuda-deps-require-gpu", "cuda_deps_require_gpu",
           "fail, instead of skip, the checks that need a GPU and a driver when there is none (GPU runners)",
           "bool", action="store_true", default=None)
    option("--cuda-deps-json", "cuda_deps_json",
           "write the report (environment, findings, root causes; JSON, version 1) to PATH",
           "string", metavar="PATH", default=None)
    option("--cuda-deps-prometheus", "cuda_deps_prometheus",
           "write the verdict, the failed checks and one series per root cause to PATH (ending in .prom) for "
           "node_exporter's textfile collector, atomically", "string", metavar="PATH", default=None)
    option("--cuda-deps-compare", "cuda_deps_compare",
           "compare this environment with a report saved with --cuda-deps-json on a known-good host: "
           "each difference is a failing drift[...] item", "string", metavar="PATH", default=None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}: a CUDA environment check of pytest-cudadeps")
    config.addinivalue_line("markers", f"{USER_MARKER}: a test that needs a working CUDA torch; under --cuda-deps "
                                       "it is skipped with the root cause when the environment is broken")
    if not asked_for(config):
        return  # off: nothing else is imported, pytest runs as if we were absent
    from pytest_cudadeps.session import CudaDepsPlugin

    config.pluginmanager.register(CudaDepsPlugin(settings_from_config(config), config), PLUGIN_NAME)


@pytest.fixture(scope="session")
def cuda_env(request: pytest.FixtureRequest) -> CudaEnv:
    """What the environment checks found, for the user's own tests: findings, causes, torch's CUDA,
    the driver, the GPUs and where each CUDA library resolves. Works without --cuda-deps too (the checks
    then run for the fixture alone)."""
    from pytest_cudadeps.session import CudaDepsPlugin

    plugin = request.config.pluginmanager.get_plugin(PLUGIN_NAME)
    if not isinstance(plugin, CudaDepsPlugin):
        plugin = CudaDepsPlugin(settings_from_config(request.config), request.config)
    return plugin.cuda_env()

