"""``python -m pytest_cudadeps``: the ``cudadeps`` command (:mod:`pytest_cudadeps.cli`)."""

import sys

from pytest_cudadeps.cli import main

if __name__ == "__main__":
    sys.exit(main())
