"""Code that runs in child processes only: it loads foreign libraries, NVML, torch.

Nothing here is imported by the plugin process.  Each module is run by
:func:`pytest_cudadeps.probes.runner.run_probe` in a fresh interpreter; it reads its
request as JSON from stdin and reports each step as JSON lines (see :mod:`.protocol`).
"""
