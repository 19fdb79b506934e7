"""The garbage collector's settings for a long-running server process."""

from __future__ import annotations

import gc

# Allocations between young collections (CPython's default is 700), and young (then
# middle) collections between older ones (default 10 each). A streamed run allocates
# thousands of short-lived objects: at the defaults, collections took about a third of a
# busy server's CPU, and each full one (every run in flight walked) stalled every stream
# for tens of milliseconds.
YOUNG_THRESHOLD = 10_000
MIDDLE_THRESHOLD = 50
OLD_THRESHOLD = 100


def settle() -> None:
    """Once a process has started (modules imported, the app built): what exists now lives
    as long as the process, so it is moved out of the collector's generations
    (``gc.freeze``) and full collections no longer walk it; and collections run less
    often. Only for server processes: a test process building many apps keeps the default."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
