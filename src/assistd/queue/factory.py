"""Which run queue a process uses: Redis Streams across processes when Redis is configured,
else the in-process queue."""

from __future__ import annotations

from assistd.config import Settings
from assistd.queue.base import RunQueue
from assistd.queue.inprocess import InProcessRunQueue
from assistd.queue.redis import RedisRunQueue
from assistd.store.database import Database


def build_queue(settings: Settings, db: Database, *, worker_id: str) -> RunQueue:
    """The queue of this process, consuming as ``worker_id``; ``close`` it at shutdown."""
    if settings.redis_url:
        return RedisRunQueue.from_url(
            settings.redis_url,
            db,
            worker_id=worker_id,
            lease_seconds=settings.run_lease_seconds,
            prefix=settings.redis_prefix,
        )
    return InProcessRunQueue(db, worker_id=worker_id, lease_seconds=settings.run_lease_seconds)
