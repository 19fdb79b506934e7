"""The ``RunQueue`` interface: which runs wait for a worker, and which worker holds each.

A queued run is *held* by one queue consumer (a worker process) from the transaction that
queued it until the worker acks it, and the hold is a lease: while the run is held the
implementation keeps the lease fresh; once it lapses (the process died) ``recover`` in any
process takes the run over. Leases are the implementation's alone: the in-process queue
keeps them in the runs table; the Redis Streams queue keeps them there too, and as a
consumer group's pending entries (claimed with XAUTOCLAIM after the lease), a run put but
not yet read being held by the stream for whichever consumer reads it. Services only
``lease_new`` or ``reserve``, and ``put``; the worker does the rest.

Delivery is at least once: a run id may come out of ``get`` more than once, so workers
claim a run with a compare-and-set of its status, and every ``get`` is answered by one
``ack`` or ``release``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence, Set
from dataclasses import dataclass
from typing import Protocol

from assistd.protocol.runs import RunStatus
from assistd.store.database import Connection
from assistd.store.records import Message, Run


@dataclass(frozen=True)
class Abandoned:
    """A run ``recover`` found whose holder is gone, for the worker to end: it was
    ``in_progress`` (its execution was cut off) or ``cancelling``."""

    run_id: str
    status: RunStatus


@dataclass(frozen=True)
class Lease:
    """Who holds a run, and until when: what a new run's row is written with."""

    worker_id: str
    until: float


@dataclass(frozen=True)
class NewRun:
    """A run as its creation stored it. ``thread``: the thread's messages, when that
    creation wrote them all (a new thread, which its active run keeps as it is).
    ``committed``: for a run handed over before its creation committed (``start_now``),
    True once it has (and the run's first events are published), False if it failed."""

    run: Run
    thread: Sequence[Message] | None = None
    committed: asyncio.Future[bool] | None = None


class RunQueue(Protocol):
    def lease_new(self, run_id: str) -> Lease:
        """Hold ``run_id``, a run about to be created ``queued``, as ``reserve`` would: the
        caller writes the lease into the run's row as it creates it (one statement
        instead of an insert and then an update). If that transaction rolls back, nothing
        is held."""
        ...

    async def reserve(self, conn: Connection, run_id: str) -> None:
        """Hold ``run_id`` for this consumer, in the transaction that makes it ``queued``
        (created, or resumed with tool outputs), so that no recovery takes it before
        ``put``; if that transaction rolls back, nothing is held."""
        ...

    async def put(self, run_id: str, created: NewRun | None = None) -> None:
        """Once the transaction that called ``reserve`` has committed: make ``run_id``
        available to a worker. ``created``: a new run as that transaction stored it, which
        a worker of this process may start from without reading it (``created``)."""
        ...

    def start_now(self, run_id: str, created: NewRun) -> bool:
        """Hand ``created``, a run whose creation has not committed yet, to a worker of
        this process that is free now and starts it at once: its first upstream request
        goes out while the creation commits, which stores the run ``in_progress`` (with
        ``lease_new``'s lease), taken by that worker; the worker goes on once
        ``created.committed`` says so. False when no worker of this process is free (or
        runs are shared between processes, where a worker could read the run before it
        is stored): store the run ``queued`` and ``put`` it once committed."""
        ...

    def created(self, run_id: str) -> NewRun | None:
        """The run as ``put`` was given it, once, for the worker taking ``run_id`` from
        ``get`` in this process as it was put; None when it was not given, the run waited
        for a free worker (it may have changed since), or was put in another process
        (Redis: any worker may take it)."""
        ...

    async def get(self) -> str:
        """Wait for the next run id; it stays held by this consumer until ``ack`` or
        ``release``."""
        ...

    async def ack(self, run_id: str) -> None:
        """The worker is done with one ``get`` of ``run_id``: the run ended, waits for tool
        outputs (``requires_action``), or was no longer queued when it was claimed."""
        ...

    async def release(self, run_id: str) -> None:
        """Stop holding one ``get`` of ``run_id`` without finishing it (its execution
        crashed): the lease is left to lapse, and recovery takes the run."""
        ...

    async def renew(self) -> None:
        """Keep the leases of the held runs fresh; called periodically, well within the
        lease."""
        ...

    async def recover(self, *, ignore_leases: bool = False) -> list[Abandoned]:
        """Take over the runs whose holder is gone (lease lapsed; with ``ignore_leases``
        every unfinished run this consumer does not hold). Queued ones are held and put
        again on this queue; the others are returned, for the worker to end."""
        ...

    async def close(self) -> None:
        """Release connections (at shutdown, after the worker stopped)."""
        ...

    @property
    def held(self) -> Set[str]:
        """The run ids this consumer holds now, not yet acked: put (in-process), or read
        from the shared stream (Redis)."""
        ...
