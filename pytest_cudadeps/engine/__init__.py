"""Reads the environment and returns facts, never a finding: distributions, requirements, RECORD owners,
ELF files, the loader's search, linkage, roots, the snapshot.  Nothing here runs foreign code."""
