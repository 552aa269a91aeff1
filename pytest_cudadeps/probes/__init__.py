"""The parent side of every child process: it starts them, sends their requests and decodes their answers.

Anything that runs foreign code (dlopen, libcuda, NVML, torch, a bundled tool) runs in a child started
here (:mod:`.runner` is the only code that starts one); what runs inside the child is :mod:`.child`,
which imports nothing of the parent.  A probe returns facts (answers, or the blame of a step the child
died in), never a finding: :mod:`pytest_cudadeps.checks` words them.
"""
