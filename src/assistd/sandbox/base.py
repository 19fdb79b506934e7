"""The ``Sandbox`` interface of the code interpreter, and what an execution returns.

A sandbox keeps one Python kernel per thread: variables, imports and files persist from
one execution to the next within a thread, and nothing is shared between threads. The
thread's files live in a working directory on the host that the kernel sees as
``/mnt/data``; kernels are started on first use, reclaimed when idle and restarted
transparently (the files stay, the variables do not, and ``restarted`` says so).

Implementations differ only in how they isolate a kernel (bubblewrap by default; a
container or gVisor in production): see ``process.ProcessSandbox``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

MNT_DATA = "/mnt/data"  # where the code sees its thread's files
_THREAD_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


@dataclass(frozen=True)
class LogOutput:
    """Text the code printed (stdout and stderr, in order) or the value of its last line."""

    text: str


@dataclass(frozen=True)
class ImageOutput:
    """A matplotlib figure, rendered as PNG."""

    png: bytes


Output = LogOutput | ImageOutput


@dataclass(frozen=True)
class FileChange:
    """A regular file under ``/mnt/data`` that an execution created or modified.

    ``name`` is relative to ``/mnt/data`` (``/``-separated); read it with
    ``Sandbox.read_file``.
    """

    name: str
    size: int


@dataclass
class ExecutionResult:
    """What one execution produced, in the order the code produced it.

    ``error`` is the traceback (or the reason the execution was cut short) when the code
    did not complete; the outputs before it are kept. ``timed_out``: the wall-clock limit
    interrupted it. ``restarted``: the kernel was started afresh for this execution though
    the thread had one before (it was reclaimed while idle, or crashed), so variables from
    earlier executions are gone; its files are not.
    """

    outputs: list[Output] = field(default_factory=list)
    error: str | None = None
    timed_out: bool = False
    restarted: bool = False
    files: list[FileChange] = field(default_factory=list)

    @property
    def text(self) -> str:
        """Every text output, concatenated: what a ``logs`` output would show."""
        return "".join(output.text for output in self.outputs if isinstance(output, LogOutput))

    @property
    def images(self) -> list[bytes]:
        return [output.png for output in self.outputs if isinstance(output, ImageOutput)]


class SandboxError(Exception):
    """The sandbox itself failed (it cannot start, or it is closed), not the code in it.

    ``message`` is safe to show to a client: it names no host path.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Sandbox(Protocol):
    """Per-thread Python kernels, isolated from the host and from each other."""

    async def execute(
        self, thread_id: str, code: str, *, time_limit: float | None = None
    ) -> ExecutionResult:
        """Run ``code`` in the thread's kernel, starting one if needed.

        Executions of one thread run one at a time, in call order. Failures of the code,
        including running out of time or memory, are reported in the result, and the next
        execution works; only a sandbox that cannot run at all raises ``SandboxError``.

        Args:
            time_limit: Wall-clock seconds before the execution is interrupted; the
                sandbox's default when None, none at all when 0.
        """
        ...

    def workdir(self, thread_id: str) -> Path:
        """The host directory the thread's code sees as ``/mnt/data`` (created if needed).

        The code controls its content: open nothing in it by a path that may follow a
        symbolic link (``read_file`` and ``put_file`` do it safely).
        """
        ...

    async def put_file(self, thread_id: str, name: str, data: bytes) -> None:
        """Place ``data`` at ``/mnt/data/<name>``, replacing what is there.

        ``name`` is a single file name (no ``/``); ``ValueError`` otherwise.
        """
        ...

    async def read_file(self, thread_id: str, name: str, *, max_bytes: int) -> bytes:
        """The content of the regular file ``/mnt/data/<name>`` (``name`` as in
        ``FileChange``), never following a symbolic link.

        Raises ``FileNotFoundError`` when there is no such regular file, and ``ValueError``
        when it is larger than ``max_bytes`` or the name leaves the directory.
        """
        ...

    async def reset(self, thread_id: str) -> None:
        """Stop the thread's kernel (its variables are lost; its files are kept)."""
        ...

    async def remove(self, thread_id: str) -> None:
        """Stop the thread's kernel and delete its files: the thread is gone."""
        ...

    async def aclose(self) -> None:
        """Stop every kernel; later calls raise ``SandboxError``. Files are kept."""
        ...


def check_thread_id(thread_id: str) -> str:
    """Thread ids name directories: only ids that cannot escape one are accepted."""
    if not _THREAD_ID.fullmatch(thread_id):
        raise ValueError(f"invalid thread id for the sandbox: {thread_id!r}")
    return thread_id
