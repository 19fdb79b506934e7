"""Run queue on Redis Streams: runs shared by worker processes through one consumer group.

Keys (under the configured prefix): the stream ``{prefix}:runs`` of entries ``{run, until}``;
the consumer group ``{prefix}:workers``, one consumer per process (its worker id); and the
hash ``{prefix}:runs:latest``, each run's newest entry, which tells recovery whether Redis
still has the run.

The database stays the source of truth; Redis only carries runs to workers quickly, so a
Redis restart without persistence loses no run:

- ``reserve`` leases the run in the database, in the transaction that queues it (as the
  in-process queue does), and ``put`` adds an entry once committed. Until a worker takes the
  entry the run is covered by Redis (the entry) or, if Redis lost it, by that lease: once
  it lapses, recovery finds the run missing from the stream and adds it again.
- ``get`` reads the next entry for this consumer; the entry stays pending (the run held by
  this process) until ``ack``, which removes it. The worker takes the database lease over
  (unless the one from ``reserve`` still has long to run), and ``renew`` keeps both fresh:
  the database leases of the held runs in one write, and their pending entries' idle time.
- ``recover`` claims (XAUTOCLAIM) entries pending longer than the lease, whose consumer is
  gone: a queued run comes out of ``get`` again, any other entry is dropped. Whether an
  executing run was abandoned is the database's lease to say, as in the in-process queue:
  runs whose lease lapsed are taken over with a compare-and-set on that lease (so that of
  several recovering processes one takes each run), queued ones added to the stream
  again when Redis no longer has them, the others returned for the worker to end.

Delivery stays at least once (a reclaimed entry of a live but unreachable consumer, a run
re-added after Redis came back): workers claim runs with a compare-and-set on the status.
While Redis is unreachable ``get`` backs off and retries, ``put`` and ``renew`` log and go
on: the database leases cover the runs meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Set
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from assistd.protocol.runs import RunStatus
from assistd.queue.base import Abandoned, Lease, NewRun
from assistd.store import runs
from assistd.store.database import Connection, Database

logger = logging.getLogger("assistd.queue")

# Adds the run's entry and records it as the run's newest, atomically.
_ADD = """
local id = redis.call('XADD', KEYS[1], '*', 'run', ARGV[1], 'until', ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], id)
return id
"""

# Acknowledges and deletes an entry (acked entries are never read again), and forgets it as
# its run's newest. Acking an entry someone else already acked changes nothing.
_ACK = """
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
if redis.call('HGET', KEYS[2], ARGV[3]) == ARGV[2] then
  redis.call('HDEL', KEYS[2], ARGV[3])
end
return 1
"""

# Fields of an XINFO reply (a flat list of names and values).
_FIELDS = """
local function fields(flat)
  local out = {}
  for i = 1, #flat, 2 do out[flat[i]] = flat[i + 1] end
  return out
end
"""

# The runs (ARGV[2:]) that Redis will not hand to a consumer: no entry (never added, or
# lost with Redis's data), or one read but no longer pending (its record was lost).
_MISSING = (
    _FIELDS
    + """
local function after(a, b)
  local am, as = string.match(a, '(%d+)-(%d+)')
  local bm, bs = string.match(b, '(%d+)-(%d+)')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am > bm or (am == bm and as > bs)
end
local last = '0-0'
if redis.call('EXISTS', KEYS[1]) == 1 then
  for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local info = fields(group)
    if info['name'] == ARGV[1] then last = info['last-delivered-id'] end
  end
end
local missing = {}
for i = 2, #ARGV do
  local run = ARGV[i]
  local id = redis.call('HGET', KEYS[2], run)
  local present = id and #redis.call('XRANGE', KEYS[1], id, id) > 0
    and (after(id, last) or #redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1) > 0)
  if not present then missing[#missing + 1] = run end
end
return missing
"""
)

# Drops the group's consumers with nothing pending that have been idle longer than ARGV[3]
# (processes long gone), atomically: a consumer that reads meanwhile keeps its entries.
# One that was merely idle is made again by its next read.
_FORGET_CONSUMERS = (
    _FIELDS
    + """
for _, consumer in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = fields(consumer)
  if info['name'] ~= ARGV[2] and info['pending'] == 0 and info['idle'] > tonumber(ARGV[3]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
  end
end
return 1
"""
)

_CLAIM_BATCH = 100
# A consumer idle this many leases with nothing pending is a process long gone.
_FORGET_CONSUMER_LEASES = 10


class _Backoff:
    """Growing pauses while a dependency fails; back to short once it answers."""

    def __init__(self, first: float = 0.1, most: float = 5.0) -> None:
        self.first = self.delay = first
        self.most = most

    async def wait(self) -> None:
        await asyncio.sleep(self.delay)
        self.delay = min(self.most, self.delay * 2)

    def reset(self) -> None:
        self.delay = self.first


class RedisRunQueue:
    def __init__(
        self,
        db: Database,
        redis: Redis,
        reader: Redis,
        *,
        worker_id: str,
        lease_seconds: float,
        prefix: str,
    ) -> None:
        """``redis`` serves every command but the blocking read, which holds ``reader``
        (a client of its own connection) so that it never waits for, or starves, the pool."""
        self.db = db
        self.redis = redis
        self.reader = reader
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.stream = f"{prefix}:runs"
        self.group = f"{prefix}:workers"
        self.latest = f"{prefix}:runs:latest"
        self.block_ms = max(50, int(min(1.0, lease_seconds / 4) * 1000))
        self._add_script = redis.register_script(_ADD)
        self._ack_script = redis.register_script(_ACK)
        self._missing_script = redis.register_script(_MISSING)
        self._forget_script = redis.register_script(_FORGET_CONSUMERS)
        # Entries this consumer read and has not acked, per run, oldest first: a run resumed
        # with tool outputs can come out of ``get`` again before the worker acked the
        # execution that parked it.
        self._entries: dict[str, deque[str]] = {}
        # Reclaimed entries of queued runs, for ``get`` to hand out before reading more.
        self._ready: deque[tuple[str, str]] = deque()
        # The database lease ``reserve`` wrote, for ``put`` to carry in the entry.
        self._reserved: dict[str, float] = {}
        # Acks Redis did not take (unreachable), retried with the next renewal.
        self._unacked: list[tuple[str, str]] = []

    @classmethod
    def from_url(
        cls, url: str, db: Database, *, worker_id: str, lease_seconds: float, prefix: str
    ) -> RedisRunQueue:
        options: dict[str, Any] = {
            "decode_responses": True,
            "socket_connect_timeout": 5.0,
            # Longer than a blocking read, so that only a dead connection times out.
            "socket_timeout": 10.0,
            "health_check_interval": 30,
        }
        redis = Redis.from_url(url, **options)
        reader = Redis.from_url(url, single_connection_client=True, **options)
        return cls(
            db, redis, reader, worker_id=worker_id, lease_seconds=lease_seconds, prefix=prefix
        )

    async def close(self) -> None:
        await self.reader.aclose()
        await self.redis.aclose()

    @property
    def held(self) -> Set[str]:
        """The runs whose entries this consumer read and has not acked. A run put but not
        read yet is held by the stream (any consumer may read it), not by this process."""
        return frozenset(self._entries)

    def _deadline(self) -> float:
        return time.time() + self.lease_seconds

    # ---- services ---------------------------------------------------------------------

    def lease_new(self, run_id: str) -> Lease:
        lease = Lease(self.worker_id, self._deadline())
        self._hold_reserved(run_id, lease.until)
        return lease

    async def reserve(self, conn: Connection, run_id: str) -> None:
        until = self._deadline()
        if await runs.lease_queued(conn, run_id, worker_id=self.worker_id, until=until):
            self._hold_reserved(run_id, until)

    def _hold_reserved(self, run_id: str, until: float) -> None:
        if len(self._reserved) > 1024:
            # Reservations whose transaction rolled back are never put.
            now = time.time()
            self._reserved = {k: v for k, v in self._reserved.items() if v > now}
        self._reserved[run_id] = until

    async def put(self, run_id: str, created: NewRun | None = None) -> None:
        # ``created`` is not kept: whichever worker reads the stream takes the run.
        until = self._reserved.pop(run_id, 0.0)
        try:
            await self._add(run_id, until)
        except RedisError as exc:
            # The run is queued in the database under the lease ``reserve`` wrote; once it
            # lapses, recovery (in any worker) adds the run again.
            logger.warning("could not queue run %s on Redis (%s); recovery will", run_id, exc)

    async def _add(self, run_id: str, until: float) -> None:
        await self._add_script(keys=[self.stream, self.latest], args=[run_id, repr(until)])

    # ---- the worker -------------------------------------------------------------------

    def start_now(self, run_id: str, created: NewRun) -> bool:
        return False

    def created(self, run_id: str) -> NewRun | None:
        return None

    async def get(self) -> str:
        backoff = _Backoff()
        while True:
            if self._ready:
                entry_id, run_id = self._ready.popleft()
                until = 0.0
            else:
                try:
                    read = await self._read()
                except RedisError as exc:
                    logger.warning("reading the run queue failed (%s); retrying", exc)
                    await backoff.wait()
                    continue
                backoff.reset()
                if read is None:
                    continue
                entry_id, run_id, until = read
                self._entries.setdefault(run_id, deque()).append(entry_id)
            if await self._take_over(run_id, until):
                return run_id
            # Not renewed, the entry is reclaimed after the lease (by any consumer).
            self._forget(run_id, entry_id)
            await backoff.wait()

    async def _read(self) -> tuple[str, str, float] | None:
        """The next new entry for this consumer (waiting up to ``block_ms``), if any."""
        try:
            reply: Any = await self.reader.xreadgroup(
                self.group, self.worker_id, {self.stream: ">"}, count=1, block=self.block_ms
            )
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # First use, or Redis lost its data: the group (from the stream's start) again.
            await self._ensure_group()
            return None
        # [[stream, [(id, fields)]]], or {stream: [...]} in redis-py's newer reply format.
        entries = reply.get(self.stream) if isinstance(reply, dict) else reply and reply[0][1]
        if not entries:
            return None
        entry_id, fields = str(entries[0][0]), entries[0][1] or {}
        run_id = fields.get("run")
        if run_id is None:
            await self._ack_entry(entry_id, "")
            return None
        return entry_id, str(run_id), float(fields.get("until") or 0.0)

    async def _take_over(self, run_id: str, until: float) -> bool:
        """Lease the run to this worker in the database, unless the lease ``reserve`` wrote
        outlasts the first renewal anyway; False when the database could not be reached."""
        if until - time.time() > self.lease_seconds / 2:
            return True
        try:
            async with self.db.write() as conn:
                # A run no longer queued is left alone: its executor declines it, and acks.
                await runs.lease_queued(
                    conn, run_id, worker_id=self.worker_id, until=self._deadline()
                )
        except Exception:
            logger.exception("could not lease run %s; leaving it to recovery", run_id)
            return False
        return True

    async def ack(self, run_id: str) -> None:
        entry_id = self._forget(run_id)
        if entry_id is None:
            return
        try:
            await self._ack_entry(entry_id, run_id)
        except RedisError as exc:
            logger.warning("could not ack run %s on Redis (%s); retrying", run_id, exc)
            self._unacked.append((entry_id, run_id))

    async def release(self, run_id: str) -> None:
        # The entry stays pending and is no longer renewed: once idle past the lease it is
        # reclaimed, as the database lease lapses.
        self._forget(run_id)

    def _forget(self, run_id: str, entry_id: str | None = None) -> str | None:
        """Stop holding one entry of ``run_id`` (``entry_id``, or its oldest)."""
        entries = self._entries.get(run_id)
        if not entries:
            return None
        if entry_id is None:
            entry_id = entries.popleft()
        elif entry_id in entries:
            entries.remove(entry_id)
        if not entries:
            del self._entries[run_id]
        return entry_id

    async def _ack_entry(self, entry_id: str, run_id: str) -> None:
        await self._ack_script(keys=[self.stream, self.latest], args=[self.group, entry_id, run_id])

    async def renew(self) -> None:
        await self._retry_acks()
        if not self._entries:
            return
        entry_ids: list[Any] = [e for entries in self._entries.values() for e in entries]
        try:
            # Claiming one's own entries resets their idle time (JUSTID: not a delivery).
            await self.redis.xclaim(
                self.stream, self.group, self.worker_id, 0, entry_ids, justid=True
            )
        except RedisError as exc:
            # The database leases below cover the runs; a reclaimed entry is harmless.
            logger.warning("could not renew run entries on Redis (%s)", exc)
        async with self.db.write() as conn:
            await runs.renew_leases(
                conn, list(self._entries), worker_id=self.worker_id, until=self._deadline()
            )

    async def _retry_acks(self) -> None:
        while self._unacked:
            entry_id, run_id = self._unacked[0]
            try:
                await self._ack_entry(entry_id, run_id)
            except RedisError:
                return
            self._unacked.pop(0)

    # ---- recovery ---------------------------------------------------------------------

    async def recover(self, *, ignore_leases: bool = False) -> list[Abandoned]:
        reachable = True
        try:
            await self._reclaim(0 if ignore_leases else int(self.lease_seconds * 1000))
        except RedisError as exc:
            logger.warning("could not reclaim run entries on Redis (%s)", exc)
            reachable = False
        now = None if ignore_leases else time.time()
        async with self.db.read() as conn:
            stale = await runs.with_lapsed_lease(conn, now=now)
        stale = [run for run in stale if run.id not in self._entries]
        queued = [run.id for run in stale if run.status == "queued"]
        if queued and reachable:
            # Runs still in the stream wait for a consumer (a backlog), or are reclaimed
            # above once their consumer is gone; the others were lost, or never added.
            try:
                missing = await self._missing(queued)
            except RedisError as exc:
                logger.warning("could not look for runs on Redis (%s)", exc)
                missing = []
            for run_id in missing:
                await self._adopt(run_id, now)
        abandoned: list[Abandoned] = []
        for run in stale:
            if run.status != "queued" and await self._take(run.id, run.status, now):
                abandoned.append(Abandoned(run.id, run.status))
        return abandoned

    async def _reclaim(self, min_idle_ms: int) -> None:
        """Take the entries pending longer than ``min_idle_ms`` (their consumer is gone):
        queued runs go out through ``get`` again, the others' entries are acked."""
        claimed: list[tuple[str, str]] = []
        start = "0-0"
        for _ in range(1000):
            try:
                reply = await self.redis.xautoclaim(
                    self.stream,
                    self.group,
                    self.worker_id,
                    min_idle_ms,
                    start,
                    count=_CLAIM_BATCH,
                )
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                await self._ensure_group()
                return
            start, entries = str(reply[0]), reply[1]
            for entry_id, fields in entries:
                if fields is None:
                    continue  # deleted meanwhile (Redis drops it from the pending list)
                if entry_id in self._entries.get(fields.get("run", ""), ()):
                    continue  # this consumer's own, still held
                claimed.append((str(entry_id), str(fields.get("run", ""))))
            if start == "0-0":
                break
        if not claimed:
            await self._forget_consumers()
            return
        async with self.db.read() as conn:
            found = {run_id: await runs.get(conn, run_id) for _, run_id in claimed}
        for entry_id, run_id in claimed:
            run = found.get(run_id)
            if run is not None and run.status == "queued":
                logger.info("resuming queued run %s", run_id)
                self._entries.setdefault(run_id, deque()).append(entry_id)
                self._ready.append((entry_id, run_id))
            else:
                # Executing runs are the database lease's to recover; ended ones need none.
                await self._ack_entry(entry_id, run_id)

    async def _forget_consumers(self) -> None:
        """Keep the group from growing with every process ever started."""
        idle_ms = int(self.lease_seconds * 1000 * _FORGET_CONSUMER_LEASES)
        await self._forget_script(keys=[self.stream], args=[self.group, self.worker_id, idle_ms])

    async def _missing(self, run_ids: list[str]) -> list[str]:
        found = await self._missing_script(
            keys=[self.stream, self.latest], args=[self.group, *run_ids]
        )
        return [str(run_id) for run_id in found]

    async def _adopt(self, run_id: str, now: float | None) -> None:
        until = self._deadline()
        if not await self._take(run_id, "queued", now, until=until):
            return
        logger.info("resuming queued run %s", run_id)
        try:
            await self._add(run_id, until)
        except RedisError as exc:
            logger.warning("could not queue run %s on Redis (%s)", run_id, exc)

    async def _take(
        self, run_id: str, status: RunStatus, now: float | None, *, until: float | None = None
    ) -> bool:
        """Of several recovering processes, one takes over each lapsed run."""
        async with self.db.write() as conn:
            return await runs.take_over_lapsed(
                conn,
                run_id,
                status,
                worker_id=self.worker_id,
                until=until if until is not None else self._deadline(),
                now=now,
            )

    async def _ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
