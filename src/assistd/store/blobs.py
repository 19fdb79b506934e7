"""File contents, kept apart from the database behind a small interface.

``LocalBlobStore`` writes under a directory; an S3-style store is a new class with the same
four methods. Keys are object ids chosen by the server, never client input.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class StoredBlob:
    size: int
    sha256: str


class BlobStore(Protocol):
    async def put(self, key: str, source: BinaryIO) -> StoredBlob:
        """Copy ``source`` (read from its start) under ``key``; return size and digest."""
        ...

    async def open(self, key: str) -> AsyncIterator[bytes]:
        """Open ``key`` (FileNotFoundError if absent, before any byte is sent) and stream it."""
        ...

    async def delete(self, key: str) -> None:
        """Remove ``key``; absent keys are not an error."""
        ...


class LocalBlobStore:
    """Blobs as files under ``root``, fanned out by the last characters of the key."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        if not key or "/" in key or key.startswith("."):
            raise ValueError("invalid blob key")
        return self.root / key[-2:] / key

    async def put(self, key: str, source: BinaryIO) -> StoredBlob:
        return await asyncio.to_thread(self._put_sync, key, source)

    def _put_sync(self, key: str, source: BinaryIO) -> StoredBlob:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        source.seek(0)
        # Write to a temporary name first so a crash never leaves a half blob under the key.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := source.read(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return StoredBlob(size=size, sha256=digest.hexdigest())

    async def open(self, key: str) -> AsyncIterator[bytes]:
        opening = asyncio.ensure_future(asyncio.to_thread(os.open, self._path(key), os.O_RDONLY))
        try:
            # Shielded: a caller cancelled while the thread opens the file must not drop
            # the descriptor the thread still returns; it is closed as soon as it arrives.
            fd = await asyncio.shield(opening)
        except asyncio.CancelledError:
            opening.add_done_callback(_close_opened)
            raise
        return _Chunks(fd)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, missing_ok=True)


def _close_opened(opening: asyncio.Future[int]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        os.close(opening.result())


class _Chunks:
    """The open file's chunks, read with ``os.read`` from a plain descriptor. It closes when
    the chunks are read, on ``aclose``, or when the reader drops the iterator unfinished (a
    client gone mid-download, an ingestion cancelled between open and read).

    A plain descriptor, not a file object: a file object dropped in a reference cycle can be
    finalised before this iterator and warn that it was left open, which failed unrelated
    tests. Reads run in worker threads and a cancelled reader does not stop its thread, so
    a lock makes a close wait for the read in flight.
    """

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd
        self._lock = threading.Lock()

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        chunk = await asyncio.to_thread(self._read)
        if not chunk:
            self._close()
            raise StopAsyncIteration
        return chunk

    def _read(self) -> bytes:
        with self._lock:
            return b"" if self._fd is None else os.read(self._fd, CHUNK)

    def _close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    async def aclose(self) -> None:
        await asyncio.to_thread(self._close)

    def __del__(self) -> None:
        self._close()
