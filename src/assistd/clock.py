"""The one place the server reads the time, so tests and sweepers agree on it."""

from __future__ import annotations

import time


def now() -> int:
    """Unix time in whole seconds, as every ``*_at`` field of the API."""
    return int(time.time())
