"""In-process run queue (an asyncio queue); runs survive restarts through the store."""

from __future__ import annotations

import asyncio


class InProcessRunQueue:
    def __init__(self) -> None:
        self._queue: asyncio.Queue[str] = asyncio.Queue()

    async def put(self, run_id: str) -> None:
        self._queue.put_nowait(run_id)

    async def get(self) -> str:
        return await self._queue.get()
