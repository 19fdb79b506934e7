"""``ProcessSandbox``: the ``Sandbox`` for kernels that are one isolated process each.

Everything but the isolation lives here: one kernel per thread, started on first use and
spoken to over its stdin and stdout (the JSON-lines protocol of ``guest/driver.py``);
executions of a thread serialised; a wall-clock limit per execution, enforced first by the
driver (which interrupts the cell and keeps its state) and then, ``grace_seconds`` later,
by killing the kernel; crashed kernels replaced on the next call; idle kernels reclaimed
after ``idle_seconds``; at most ``max_live`` kernels, the least recently used idle one
stopped to make room. Each live kernel holds a slot number below ``max_live``, which an
implementation may use to give it resources of its own (bubblewrap: a host user).

A subclass says how to start a kernel (``launch``): bubblewrap here, and a container or
gVisor is the same few lines with ``docker run -i --network none -v WORKDIR:/mnt/data``
or ``runsc`` in front of the same driver.
"""

from __future__ import annotations

import abc
import asyncio
import base64
import binascii
import collections
import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistd.observability import metrics
from assistd.sandbox import files
from assistd.sandbox.base import (
    ExecutionResult,
    ImageOutput,
    LogOutput,
    Output,
    SandboxError,
    check_thread_id,
)

logger = logging.getLogger(__name__)

GUEST_DIR = Path(__file__).parent / "guest"  # the driver and its matplotlib backend
MAX_REPLY_BYTES = 64 * 1024 * 1024  # one reply line: text is capped, images are not
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
REMEMBERED_THREADS = 10_000  # threads whose stopped kernel makes the next start a restart
RESTARTED = (
    "the execution environment was restarted: variables and imports from earlier "
    "executions are lost (files in /mnt/data are kept)"
)


@dataclass(frozen=True)
class Launch:
    """How to start one kernel: a command whose stdin and stdout are the driver's.

    ``env`` is the whole environment of the launching process; nothing of the server's
    own (API keys, database URL) is passed on unless listed here. ``pass_fds`` are
    inherited by it under the same numbers, and closed here once it has started.
    """

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    pass_fds: tuple[int, ...] = ()


@dataclass(eq=False)
class _Kernel:
    process: asyncio.subprocess.Process
    slot: int
    last_used: float
    busy: bool = False
    stderr_tail: bytearray = field(default_factory=bytearray)
    drain: asyncio.Task[None] | None = None


@dataclass(eq=False)
class _Thread:
    id: str
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    kernel: _Kernel | None = None


class ProcessSandbox(abc.ABC):
    """One driver process per thread; subclasses say how to isolate it (``launch``)."""

    def __init__(
        self,
        root: Path,
        *,
        timeout_seconds: float = 60.0,
        idle_seconds: float = 600.0,
        max_live: int = 8,
        grace_seconds: float = 3.0,
        start_seconds: float = 30.0,
        max_output_chars: int = 20_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """
        Args:
            root: Host directory holding one working directory per thread.
            timeout_seconds: Default wall-clock limit of one execution.
            idle_seconds: A kernel unused this long is stopped (its files stay).
            max_live: Most kernels alive at once.
            grace_seconds: After the limit, how long the driver has to report the
                interruption before the kernel is killed.
            start_seconds: How long a kernel may take to start.
            max_output_chars: Text kept per execution (and per traceback).
        """
        if max_live < 1:
            raise ValueError("max_live must be at least 1")
        self.root = root
        self.timeout_seconds = timeout_seconds
        self.idle_seconds = idle_seconds
        self.max_live = max_live
        self.grace_seconds = grace_seconds
        self.start_seconds = start_seconds
        self.max_output_chars = max_output_chars
        self._clock = clock
        self._threads: dict[str, _Thread] = {}
        self._stopped: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._free_slots = list(range(max_live - 1, -1, -1))
        self._slot_lock = asyncio.Lock()
        self._slot_freed = asyncio.Event()
        self._reclaimer: asyncio.Task[None] | None = None
        self._closed = False

    # -- what a subclass provides ------------------------------------------------------

    @abc.abstractmethod
    def launch(self, workdir: Path, slot: int) -> Launch:
        """The command that starts an isolated driver with ``workdir`` as ``/mnt/data``."""

    def prepare(self, workdir: Path, slot: int) -> None:  # noqa: B027 - an optional hook
        """Blocking set-up of ``workdir`` before a kernel in ``slot`` starts on it."""

    def file_owner(self, slot: int | None) -> tuple[int, int] | None:
        """Owner to give the files put in a workdir whose kernel holds ``slot``."""
        return None

    def driver_arguments(self) -> list[str]:
        """Options of ``guest/driver.py`` (limits, ...) after the script's path."""
        return [f"--max-output-chars={self.max_output_chars}"]

    # -- the Sandbox interface ---------------------------------------------------------

    def workdir(self, thread_id: str) -> Path:
        path = self.root / check_thread_id(thread_id)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.mkdir(mode=0o700, exist_ok=True)
        return path

    async def execute(
        self, thread_id: str, code: str, *, time_limit: float | None = None
    ) -> ExecutionResult:
        check_thread_id(thread_id)
        self._check_open()
        limit = self.timeout_seconds if time_limit is None else time_limit
        thread = self._threads.setdefault(thread_id, _Thread(thread_id))
        async with thread.lock:
            self._check_open()
            kernel = thread.kernel
            restarted = False
            if kernel is None or kernel.process.returncode is not None:
                if kernel is not None:  # it died between executions
                    await self._stop(thread)
                restarted = thread_id in self._stopped
                self._stopped.pop(thread_id, None)
                kernel = await self._start(thread)
            workdir = self.workdir(thread_id)
            kernel.busy = True
            try:
                before = await asyncio.to_thread(files.snapshot, workdir)
                result = await self._exchange(thread, kernel, code, limit)
                after = await asyncio.to_thread(files.snapshot, workdir)
            finally:
                kernel.busy = False
                kernel.last_used = self._clock()
                self._slot_freed.set()
        result.restarted = restarted
        result.files = files.changes(before, after)
        return result

    async def put_file(self, thread_id: str, name: str, data: bytes) -> None:
        workdir = self.workdir(thread_id)
        thread = self._threads.get(thread_id)
        slot = thread.kernel.slot if thread is not None and thread.kernel is not None else None
        await asyncio.to_thread(files.write_file, workdir, name, data, self.file_owner(slot))

    async def read_file(self, thread_id: str, name: str, *, max_bytes: int) -> bytes:
        return await asyncio.to_thread(files.read_file, self.workdir(thread_id), name, max_bytes)

    async def reset(self, thread_id: str) -> None:
        thread = self._threads.get(check_thread_id(thread_id))
        if thread is not None:
            async with thread.lock:
                await self._stop(thread)

    async def remove(self, thread_id: str) -> None:
        await self.reset(thread_id)
        self._threads.pop(thread_id, None)
        self._stopped.pop(thread_id, None)
        await asyncio.to_thread(files.remove_tree, self.root / thread_id)

    async def aclose(self) -> None:
        self._closed = True
        if self._reclaimer is not None:
            self._reclaimer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reclaimer
        await asyncio.gather(*(self._stop(thread) for thread in list(self._threads.values())))

    def process_ids(self) -> dict[str, int]:
        """The host pid of each live kernel's launcher (for measurements)."""
        return {
            thread.id: thread.kernel.process.pid
            for thread in self._threads.values()
            if thread.kernel is not None
        }

    # -- kernels -----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise SandboxError("the code interpreter's sandbox is closed")

    async def _start(self, thread: _Thread) -> _Kernel:
        if self._reclaimer is None:
            self._reclaimer = asyncio.create_task(self._reclaim(), name="sandbox-reclaimer")
        slot = await self._acquire_slot()
        try:
            workdir = self.workdir(thread.id)
            await asyncio.to_thread(self.prepare, workdir, slot)
            launch = self.launch(workdir, slot)
            try:
                process = await asyncio.create_subprocess_exec(
                    *launch.argv,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    env=launch.env,
                    pass_fds=launch.pass_fds,
                    start_new_session=True,  # one process group to kill
                    limit=MAX_REPLY_BYTES,
                )
            finally:
                for fd in launch.pass_fds:
                    os.close(fd)
            kernel = _Kernel(process, slot, self._clock())
            kernel.drain = asyncio.create_task(_drain(process, kernel.stderr_tail))
            thread.kernel = kernel
            metrics.SANDBOX_KERNELS.inc()  # every path that drops a kernel goes through _stop
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), self.start_seconds)
            if json.loads(line or b"null") != {"ready": True}:
                raise ValueError("no ready line")
        except BaseException as exc:  # cancellation included: the slot must come back
            tail = ""
            if thread.kernel is not None:
                if not isinstance(exc, asyncio.CancelledError):
                    await asyncio.sleep(0.05)  # let the drain read the launcher's last words
                tail = bytes(thread.kernel.stderr_tail).decode("utf-8", "replace").strip()
                await self._stop(thread, remember=False)
            else:
                self._release_slot(slot)
            if not isinstance(exc, OSError | ValueError | TimeoutError):
                raise
            logger.error("sandbox for thread %s failed to start: %r %s", thread.id, exc, tail)
            raise SandboxError("the code interpreter's sandbox failed to start") from exc
        return kernel

    async def _exchange(
        self, thread: _Thread, kernel: _Kernel, code: str, limit: float
    ) -> ExecutionResult:
        process = kernel.process
        assert process.stdin is not None
        assert process.stdout is not None
        request = json.dumps({"code": code, "timeout": limit}).encode("ascii") + b"\n"
        wait = limit + self.grace_seconds if limit > 0 else None
        try:
            process.stdin.write(request)
            await process.stdin.drain()
            line = await asyncio.wait_for(process.stdout.readline(), wait)
        except TimeoutError:
            await self._stop(thread)
            return ExecutionResult(
                error=f"Execution exceeded its time limit of {limit:g} s and could not "
                f"be interrupted, so {RESTARTED}.",
                timed_out=True,
            )
        except asyncio.CancelledError:
            # The cell may still be running and its reply would answer the next request:
            # the kernel goes (a driver can only be interrupted by its own timer).
            await self._stop(thread)
            raise
        except (OSError, ValueError):  # a closed pipe; ValueError: a line over the limit
            line = b""
        try:
            return _result(json.loads(line))
        except (ValueError, KeyError, TypeError, AttributeError):
            pass
        await asyncio.sleep(0.05)
        status = process.returncode
        tail = bytes(kernel.stderr_tail).decode("utf-8", "replace").strip()
        logger.warning("sandbox kernel of thread %s died (%s): %s", thread.id, status, tail)
        await self._stop(thread)
        cause = "it was killed" if status is not None and status < 0 else "it failed"
        return ExecutionResult(
            error=f"The execution environment crashed ({cause}; running out of memory or "
            f"processes can do that), so {RESTARTED}."
        )

    async def _stop(self, thread: _Thread, *, remember: bool = True) -> None:
        kernel, thread.kernel = thread.kernel, None
        if kernel is None:
            return
        if remember:
            self._stopped[thread.id] = None
            self._stopped.move_to_end(thread.id)
            while len(self._stopped) > REMEMBERED_THREADS:
                self._stopped.popitem(last=False)
        metrics.SANDBOX_KERNELS.dec()
        process = kernel.process
        if process.returncode is None:
            # The launcher leads its process group; the sandbox's processes die with it
            # (bwrap's --die-with-parent, then the end of its pid namespace).
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        if kernel.drain is not None:
            kernel.drain.cancel()
        self._release_slot(kernel.slot)

    def _release_slot(self, slot: int) -> None:
        self._free_slots.append(slot)
        self._slot_freed.set()

    async def _acquire_slot(self) -> int:
        while True:
            async with self._slot_lock:
                if self._free_slots:
                    return self._free_slots.pop()
                idle = [
                    thread
                    for thread in self._threads.values()
                    if thread.kernel is not None
                    and not thread.kernel.busy
                    and not thread.lock.locked()
                ]
                if idle:
                    victim = min(idle, key=lambda thread: _last_used(thread))
                    await self._stop(victim)
                    continue
                self._slot_freed.clear()
            await self._slot_freed.wait()

    async def _reclaim(self) -> None:
        interval = max(0.05, min(self.idle_seconds / 4, 30.0))
        while True:
            await asyncio.sleep(interval)
            try:
                await self._reclaim_idle()
            except Exception:  # keep reclaiming; a failure here is a bug to log
                logger.exception("reclaiming idle sandbox kernels failed")

    async def _reclaim_idle(self) -> None:
        deadline = self._clock() - self.idle_seconds
        for thread in list(self._threads.values()):
            if thread.lock.locked():
                continue
            if thread.kernel is not None and thread.kernel.last_used <= deadline:
                await self._stop(thread)
            if thread.kernel is None and not thread.lock.locked():
                self._threads.pop(thread.id, None)


def _last_used(thread: _Thread) -> float:
    return thread.kernel.last_used if thread.kernel is not None else 0.0


async def _drain(process: asyncio.subprocess.Process, tail: bytearray) -> None:
    """Keep the last 4 KiB the launcher wrote to stderr (bwrap's own errors)."""
    assert process.stderr is not None
    while chunk := await process.stderr.read(4096):
        tail += chunk
        del tail[:-4096]


def _result(reply: Any) -> ExecutionResult:
    """An ExecutionResult from the driver's reply; malformed replies raise."""
    outputs: list[Output] = []
    for item in reply["outputs"]:
        if item["type"] == "text":
            outputs.append(LogOutput(str(item["text"])))
        elif item["type"] == "image":
            try:
                png = base64.b64decode(item["png"], validate=True)
            except binascii.Error as exc:
                raise ValueError("bad image") from exc
            if png.startswith(PNG_SIGNATURE):
                outputs.append(ImageOutput(png))
    error = reply["error"]
    if error is not None and not isinstance(error, str):
        raise TypeError("bad error")
    return ExecutionResult(outputs=outputs, error=error, timed_out=bool(reply["timed_out"]))
