"""The ground floor: the one way to read a file, the run's settings as a value, the escaping of text.

Imports nothing of the package.
"""
