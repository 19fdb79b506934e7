"""The garbage collector's settings for a long-running server process."""

from __future__ import annotations

import gc

# Allocations between young collections (CPython's default is 700). A streamed run
# allocates thousands of short-lived objects: at the default, collections (and the full
# ones they lead to) took about a tenth of a busy server's CPU.
YOUNG_THRESHOLD = 10_000


def settle() -> None:
    """Once a process has started (modules imported, the app built): what exists now lives
    as long as the process, so it is moved out of the collector's generations
    (``gc.freeze``) and full collections no longer walk it; and young collections run less
    often. Only for server processes: a test process building many apps keeps the default."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
