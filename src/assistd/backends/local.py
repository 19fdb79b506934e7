"""The embedded model: a GGUF file run in-process by llama.cpp (``xllamacpp``).

xllamacpp was chosen over llama-cpp-python because it installs as a prebuilt CPU wheel in
seconds (llama-cpp-python is an sdist that compiles for 5-12 minutes here), embeds
llama.cpp's own server (continuous batching over parallel slots, thread-safe) and does
JSON-schema constrained decoding natively.

One ``Server`` per model per process. Its calls block, so each request runs on a thread of
the backend's own pool (never the event loop's default pool); a semaphore admits as many
requests as the model has slots and queues the rest. Tokens cross back to the event loop
through ``call_soon_threadsafe`` as llama.cpp produces them, and closing the stream makes
the next callback return ``True``, which stops generation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import AsyncGenerator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from assistd.backends.base import (
    BackendError,
    ChatChunk,
    ChatRequest,
    FinishReason,
    ToolCallDelta,
    Usage,
)
from assistd.backends.local_model import LocalModelSpec, ModelFileError, verify_sha256
from assistd.backends.local_prompt import Plan, ReplyReader, build_plan, new_call_id

logger = logging.getLogger(__name__)

# A reply with no max_tokens stops here rather than at the end of the context: a tiny model
# can repeat itself until the context is full.
DEFAULT_MAX_TOKENS = 1024
_DONE = object()
_FINISH: dict[str, FinishReason] = {"stop": "stop", "length": "length"}


class LocalBackend:
    """Serves one local GGUF model; loaded on first use, shared by every run in the process."""

    supports_tools: ClassVar[bool] = True
    supports_streaming: ClassVar[bool] = True
    supports_json_schema: ClassVar[bool] = True

    def __init__(self, spec: LocalModelSpec) -> None:
        self.spec = spec
        self._server: Any = None
        self._load_lock = asyncio.Lock()
        self._slots = asyncio.Semaphore(spec.parallel)
        self._pool = ThreadPoolExecutor(spec.parallel, thread_name_prefix=f"llama-{spec.name}")

    def __repr__(self) -> str:
        return f"LocalBackend(name={self.spec.name!r})"

    @property
    def context_window(self) -> int:
        return self.spec.context_size

    async def load(self) -> Any:
        """Check the file and start the runtime (once); later calls return it at once."""
        if self._server is not None:
            return self._server
        async with self._load_lock:
            if self._server is None:
                loop = asyncio.get_running_loop()
                self._server = await loop.run_in_executor(self._pool, self._start)
        return self._server

    def _start(self) -> Any:
        import xllamacpp  # deferred: loading llama.cpp costs time and memory

        spec = self.spec
        if not spec.path.is_file():
            raise ModelFileError(f"model file {spec.path} does not exist")
        if spec.sha256:
            verify_sha256(spec.path, spec.sha256)
        params = xllamacpp.CommonParams()
        params.model.path = str(spec.path)
        # llama.cpp divides the context among the slots.
        params.n_ctx = spec.context_size * spec.parallel
        params.n_parallel = spec.parallel
        params.cpuparams.n_threads = spec.threads
        params.cpuparams_batch.n_threads = spec.threads
        # Errors only: llama.cpp logs every request at info level to stderr.
        params.verbosity = 1
        logger.info("loading local model %s from %s", spec.name, spec.path)
        return xllamacpp.Server(params)

    async def aclose(self) -> None:
        # llama.cpp's server stops when the object is released; wait for running calls.
        await asyncio.to_thread(self._pool.shutdown, wait=True)
        self._server = None

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ChatChunk, None]:
        """Stream one completion from the local model.

        Raises:
            BackendError: ``invalid_prompt`` for a request the model cannot take (too long,
                an unusable schema); ``server_error`` when the model cannot be loaded.
        """
        try:
            server = await self.load()
        except ModelFileError as exc:
            raise BackendError(str(exc)) from None
        plan = build_plan(request, default_max_tokens=DEFAULT_MAX_TOKENS)
        async with self._slots:
            pieces = self._generate(server, plan)
            try:
                async for chunk in self._chunks(pieces, plan):
                    yield chunk
            finally:
                await pieces.aclose()

    async def _generate(self, server: Any, plan: Plan) -> AsyncGenerator[dict[str, Any], None]:
        """Raw llama.cpp chunks, produced on a pool thread and handed over one by one."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()

        def on_chunk(chunk: Any) -> bool:
            loop.call_soon_threadsafe(queue.put_nowait, chunk)
            return stop.is_set()

        def call() -> None:
            try:
                result = server.handle_chat_completions(plan.body, on_chunk)
                if isinstance(result, dict) and "error" in result:
                    loop.call_soon_threadsafe(queue.put_nowait, result)
            except Exception as exc:  # schema or template errors surface as exceptions
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _DONE)

        future = loop.run_in_executor(self._pool, call)
        try:
            while (item := await queue.get()) is not _DONE:
                if isinstance(item, Exception):
                    raise BackendError(f"local model: {item}", code="invalid_prompt")
                if isinstance(item, dict) and "error" in item:
                    raise _error(item["error"])
                yield item
        finally:
            stop.set()
            # Generation stops at the next token; wait so the slot is really free.
            with contextlib.suppress(Exception):
                await asyncio.shield(future)

    async def _chunks(
        self, pieces: AsyncGenerator[dict[str, Any], None], plan: Plan
    ) -> AsyncGenerator[ChatChunk, None]:
        reader = ReplyReader() if plan.tool_mode else None
        finish: FinishReason | None = None
        usage: Usage | None = None
        async for raw in pieces:
            if raw.get("usage"):
                counts = raw["usage"]
                usage = Usage(
                    int(counts.get("prompt_tokens", 0)), int(counts.get("completion_tokens", 0))
                )
            for choice in raw.get("choices") or []:
                text = (choice.get("delta") or {}).get("content") or ""
                if choice.get("finish_reason"):
                    finish = _FINISH.get(choice["finish_reason"], "stop")
                if not text:
                    continue
                shown = reader.feed(text) if reader else text
                if shown:
                    yield ChatChunk(text=shown)
        if reader is None:
            yield ChatChunk(finish_reason=finish or "stop", usage=usage)
            return
        reply = reader.finish()
        if reply.call is not None:
            delta = ToolCallDelta(
                index=0,
                id=new_call_id(),
                name=str(reply.call.get("name")),
                arguments=json.dumps(reply.call.get("arguments", {}), ensure_ascii=False),
            )
            yield ChatChunk(tool_calls=[delta], finish_reason="tool_calls", usage=usage)
            return
        if reply.rest:
            yield ChatChunk(text=reply.rest)
        # Output that never became valid JSON was cut short by max_tokens.
        yield ChatChunk(finish_reason=finish if reply.complete else "length", usage=usage)


def _error(error: Any) -> BackendError:
    if not isinstance(error, dict):
        return BackendError(f"local model: {error}")
    too_long = error.get("type") == "exceed_context_size_error" or error.get("code") == 400
    return BackendError(
        f"local model: {error.get('message')}",
        code="invalid_prompt" if too_long else "server_error",
    )
