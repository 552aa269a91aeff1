"""The child side of the progress protocol: one JSON object per line on the original stdout.

``{"begin": STEP}`` before a step, ``{"end": STEP, "data": {...}}`` after it, and
``{"done": true}`` last.  A child that dies or hangs leaves a ``begin`` without its
``end``: the parent names that step.  File descriptor 1 is pointed at stderr before
any foreign code runs, so a library that prints cannot garble the protocol.
"""

from __future__ import annotations

import json
import os
import sys
from typing import IO, Any

_channel: IO[str] | None = None


def open_channel() -> None:
    """Keep the real stdout for the protocol; send everything else written to fd 1 to stderr."""
    global _channel
    sys.stdout.flush()
    _channel = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)


def _emit(event: dict[str, Any]) -> None:
    assert _channel is not None, "open_channel() first"
    _channel.write(json.dumps(event, default=str) + "\n")
    _channel.flush()


def begin(step: str) -> None:
    _emit({"begin": step})


def end(step: str, **data: Any) -> None:
    _emit({"end": step, "data": data})


def done() -> None:
    _emit({"done": True})


def read_request() -> Any:
    return json.loads(sys.stdin.read() or "null")
