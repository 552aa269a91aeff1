"""Tests of the faces: the pytest plugin, its session, the command line."""
