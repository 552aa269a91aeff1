"""Fail when a function of the package is above cyclomatic complexity 15, as radon counts it.

ruff's C901 (mccabe) does not count boolean operators; radon does, and so the house rule is radon's.
Run by ``tox -e lint``: ``python .ci/complexity.py [PACKAGE] [--max N]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from radon.complexity import cc_visit


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", nargs="?", default="pytest_cudadeps")
    parser.add_argument("--max", type=int, default=15)
    args = parser.parse_args()
    over = []
    for path in sorted(Path(args.package).rglob("*.py")):
        for block in cc_visit(path.read_text(encoding="utf-8")):
            if block.complexity > args.max:
                over.append(f"{path}:{block.lineno}: {block.fullname} has complexity {block.complexity}")
    print("\n".join(over) or f"no function of {args.package} above complexity {args.max}")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
