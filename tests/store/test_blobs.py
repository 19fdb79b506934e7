"""The local blob store's reads: every way a reader stops closes the file.

pytest turns ResourceWarning into an error (``filterwarnings = error``), so a handle left
for the garbage collector fails these tests as it failed a later, unrelated test before.
"""

from __future__ import annotations

import asyncio
import gc
import io
import os
import warnings
from pathlib import Path

import pytest

from assistd.store.blobs import CHUNK, LocalBlobStore


def _store(tmp_path: Path, data: bytes) -> LocalBlobStore:
    blobs = LocalBlobStore(tmp_path)
    asyncio.run(blobs.put("file-abc", io.BytesIO(data)))
    return blobs


def _open_blob_descriptors(root: Path) -> list[str]:
    """Descriptors of this process open on a file under ``root``."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(root)):
            found.append(target)
    return found


def _no_unclosed_file(root: Path | None = None) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        gc.collect()
    if root is not None:
        assert _open_blob_descriptors(root) == []


def test_reading_to_the_end_gives_every_byte(tmp_path: Path) -> None:
    data = bytes(range(256)) * (CHUNK // 128 + 3)  # a few chunks and a partial one
    blobs = _store(tmp_path, data)

    async def read() -> bytes:
        return b"".join([piece async for piece in await blobs.open("file-abc")])

    assert asyncio.run(read()) == data
    _no_unclosed_file(tmp_path)


def test_an_iterator_dropped_before_its_first_read_closes_the_file(tmp_path: Path) -> None:
    blobs = _store(tmp_path, b"hello")

    async def open_only() -> None:
        stream = await blobs.open("file-abc")
        del stream

    asyncio.run(open_only())
    _no_unclosed_file(tmp_path)


def test_aclose_mid_read_closes_the_file_and_ends_the_stream(tmp_path: Path) -> None:
    blobs = _store(tmp_path, b"x" * (CHUNK + 1))

    async def read_one_then_close() -> list[bytes]:
        stream = await blobs.open("file-abc")
        first = await anext(stream)
        await stream.aclose()
        rest = [piece async for piece in stream]
        return [first, *rest]

    assert asyncio.run(read_one_then_close()) == [b"x" * CHUNK]
    _no_unclosed_file(tmp_path)


def test_a_missing_blob_fails_at_open(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        asyncio.run(LocalBlobStore(tmp_path).open("file-missing"))


def test_a_reader_cancelled_while_the_file_opens_leaves_no_handle(tmp_path: Path) -> None:
    blobs = _store(tmp_path, b"hello")

    async def cancel_during_open() -> None:
        task = asyncio.create_task(blobs.open("file-abc"))
        await asyncio.sleep(0)  # the open is now running in a worker thread
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Let the thread finish and its result arrive (bounded: 500 loop turns).
        for _ in range(500):
            if not [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
                break
            await asyncio.sleep(0.001)

    asyncio.run(cancel_during_open())
    _no_unclosed_file(tmp_path)


def test_closing_while_a_cancelled_read_runs_waits_for_it(tmp_path: Path) -> None:
    blobs = _store(tmp_path, b"y" * (4 * CHUNK))

    async def cancel_mid_read() -> None:
        stream = await blobs.open("file-abc")
        reading = asyncio.create_task(anext(stream))  # type: ignore[arg-type]
        await asyncio.sleep(0)  # the read is now running in a worker thread
        reading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reading
        # The thread may still be reading: the close waits for it instead of failing.
        await stream.aclose()  # type: ignore[attr-defined]
        assert [piece async for piece in stream] == []

    asyncio.run(cancel_mid_read())
    _no_unclosed_file(tmp_path)
