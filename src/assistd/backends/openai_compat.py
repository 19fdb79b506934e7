"""A backend for any OpenAI-compatible Chat Completions upstream (OpenAI, vLLM, Ollama...).

The request is always streamed (``stream: true``) and the server-sent events are parsed as
they arrive, so text and tool-call pieces reach the run executor token by token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import urllib.parse
import urllib.request
from collections.abc import AsyncGenerator
from typing import Any, ClassVar

import aiohttp

from assistd.backends.base import (
    BackendError,
    ChatChunk,
    ChatRequest,
    ErrorCode,
    FinishReason,
    ToolCallDelta,
    Usage,
)
from assistd.observability import metrics
from assistd.upstream import backoff_delay, error_text, http_failure, retry_after, scrub

logger = logging.getLogger(__name__)

_DRAIN_SECONDS = 1.0
_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",  # the deprecated name some upstreams still send
    "content_filter": "content_filter",
}


class _RetryableError(Exception):
    """A failure worth another attempt (if nothing was yielded yet and attempts remain)."""

    def __init__(self, error: BackendError, retry_after: float | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.retry_after = retry_after


class OpenAICompatBackend:
    """Streams ``POST {base_url}/chat/completions`` from one OpenAI-compatible upstream.

    The backend's aiohttp session keeps connections pooled across runs, sized for hundreds
    of concurrent streams. aiohttp rather than httpx: reading a stream through httpx (its
    anyio cancel scopes and pure-Python HTTP parser on every read) cost about twice the
    CPU per stream, the largest single cost of a run. The API key lives only in the
    session's headers and is scrubbed from every error message.
    """

    supports_tools: ClassVar[bool] = True
    supports_streaming: ClassVar[bool] = True
    supports_json_schema: ClassVar[bool] = True

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 600.0,
        max_retries: int = 3,
        name: str = "upstream",
        backoff: float = 0.5,
        max_connections: int = 1000,
    ) -> None:
        """Create the backend; its HTTP session is made on first use, in the running loop.

        Args:
            base_url: The upstream's API root, e.g. ``https://api.openai.com/v1``.
            api_key: Sent as ``Authorization: Bearer``; ``None`` sends no header.
            timeout: Seconds allowed for each network operation (connect is capped at 30 s).
            max_retries: Extra attempts after a 429, a 5xx or a connection failure.
            name: Names the upstream in logs and error messages (never the URL or key).
            backoff: First retry delay; it doubles per attempt up to 8 s.
            max_connections: Size of the connection pool.
        """
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self.backoff = backoff
        self._secret = api_key or ""
        self._headers = {"Accept": "text/event-stream"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        # Connecting includes waiting for a free connection of the pool: both are worth
        # a retry when they time out, a read that timed out is not.
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=min(timeout, 30.0), sock_read=timeout
        )
        self._max_connections = max_connections
        # Read once: aiohttp's trust_env would read the environment and ~/.netrc in a
        # thread on every request.
        self._proxy = _env_proxy(self.base_url)
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"OpenAICompatBackend(name={self.name!r})"

    def _client(self) -> aiohttp.ClientSession:
        session, loop = self._session, asyncio.get_running_loop()
        # A session belongs to the loop it was made in (tests run several loops).
        if session is None or session.closed or self._loop is not loop:
            self._loop = loop
            session = self._session = aiohttp.ClientSession(
                headers=self._headers,
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0),
                # An upstream's cookies are not carried from one project's request to the next.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return session

    async def aclose(self) -> None:
        """Close the HTTP session and every pooled connection."""
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ChatChunk, None]:
        """Stream one completion, retrying transient failures before the first chunk.

        Text and tool-call pieces are yielded as they arrive; the finish reason and usage
        come together in one last chunk. Closing the iterator early closes the HTTP
        response, which drops the connection so the upstream stops generating.

        Args:
            request: The completion request; ``request.model`` is sent as is.

        Yields:
            ``ChatChunk`` objects in upstream order.

        Raises:
            BackendError: classified as ``rate_limit_exceeded``, ``invalid_prompt`` or
                ``server_error``.
        """
        body = self._body(request)
        attempt = 0
        while True:
            yielded = False
            try:
                # aclosing: an early close of this generator must reach the HTTP response.
                async with contextlib.aclosing(self._attempt(body)) as chunks:
                    async for chunk in chunks:
                        yielded = True
                        yield chunk
                return
            except BackendError as exc:  # not worth a retry (a 400, a read timeout...)
                metrics.UPSTREAM_ERRORS.labels(self.name, exc.code).inc()
                raise
            except _RetryableError as exc:
                if yielded or attempt >= self.max_retries:
                    logger.warning(
                        "upstream %s failed after %d attempt(s): %s",
                        self.name,
                        attempt + 1,
                        exc.error.message,
                    )
                    metrics.UPSTREAM_ERRORS.labels(self.name, exc.error.code).inc()
                    raise exc.error from None
                metrics.UPSTREAM_RETRIES.labels(self.name).inc()
                delay = backoff_delay(self.backoff, attempt, exc.retry_after)
                logger.info(
                    "upstream %s: %s; retry %d/%d in %.2fs",
                    self.name,
                    exc.error.message,
                    attempt + 1,
                    self.max_retries,
                    delay,
                )
                attempt += 1
                await asyncio.sleep(delay)

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"model": request.model, "messages": request.messages}
        if request.tools:
            body["tools"] = request.tools
            # Only meaningful with tools; some upstreams reject it otherwise.
            if request.parallel_tool_calls is not None:
                body["parallel_tool_calls"] = request.parallel_tool_calls
        optional = {
            "tool_choice": request.tool_choice,
            "response_format": request.response_format,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "max_tokens": request.max_tokens,
            "stop": request.stop,
            "reasoning_effort": request.reasoning_effort,
            "seed": request.seed,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        # Gateway pass-through (seed, penalties, user...); never overrides the fields above.
        body.update({k: v for k, v in request.extra.items() if k not in body})
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        return body

    async def _attempt(self, body: dict[str, Any]) -> AsyncGenerator[ChatChunk, None]:
        """One HTTP request; raises ``_RetryableError`` for what may succeed next time."""
        url = f"{self.base_url}/chat/completions"
        try:
            async with self._client().post(url, json=body, proxy=self._proxy) as response:
                if response.status != 200:
                    await self._raise_for_status(response)
                try:
                    async with contextlib.aclosing(self._events(response)) as chunks:
                        async for chunk in chunks:
                            yield chunk
                finally:
                    if not response.content.at_eof():
                        # Closed early (a cancel, an error, the caller stopped reading):
                        # drop the connection so that the upstream stops generating.
                        response.close()
        except (aiohttp.ConnectionTimeoutError, aiohttp.SocketTimeoutError, TimeoutError) as exc:
            # A slow upstream that timed out would likely time out again: only a connect
            # timeout (nothing sent yet) is worth a retry.
            error = BackendError(
                f"Upstream '{self.name}' timed out ({type(exc).__name__}).", code="server_error"
            )
            if isinstance(exc, aiohttp.ConnectionTimeoutError):
                raise _RetryableError(error) from None
            raise error from None
        except aiohttp.ClientError as exc:
            message = scrub(f"{type(exc).__name__}: {exc}", self._secret)
            error = BackendError(
                f"Could not reach upstream '{self.name}' ({message}).", code="server_error"
            )
            raise _RetryableError(error) from None

    async def _events(self, response: aiohttp.ClientResponse) -> AsyncGenerator[ChatChunk, None]:
        """Parse the SSE body incrementally; one ``data:`` payload is one chunk."""
        finish: FinishReason | None = None
        usage: Usage | None = None
        pending: list[str] = []  # data lines of a multi-line event, until its blank line
        done = False
        async with contextlib.aclosing(_lines(response.content)) as lines:
            async for line in lines:
                if line.startswith("data:"):
                    data = line[5:].removeprefix(" ")
                    if data == "[DONE]" and not pending:
                        done = True
                        break
                    # Upstreams put one JSON object per line: handle it at once rather than
                    # waiting for the blank line that ends the event.
                    event = None if pending else _json(data)
                    if event is None:
                        pending.append(data)
                        continue
                elif not line and pending:
                    event, pending = _json("\n".join(pending)), []
                    if event is None:
                        raise BackendError(
                            f"Upstream '{self.name}' sent an unreadable stream event.",
                            code="server_error",
                        )
                else:
                    continue  # blank lines, comments (":"), "event:", "id:", "retry:"
                chunk, chunk_finish, chunk_usage = self._chunk(event)
                finish, usage = chunk_finish or finish, chunk_usage or usage
                if chunk is not None:
                    yield chunk
            # A multi-line event still pending at the end is dropped, as the SSE spec says.
            if done and not response.content.at_eof():
                await _drain(lines)
        if finish is None and not done:
            content_type = response.headers.get("content-type", "")
            raise _RetryableError(
                BackendError(
                    f"Upstream '{self.name}' ended the stream before finishing "
                    f"(content-type {content_type or 'missing'}).",
                    code="server_error",
                )
            )
        yield ChatChunk(finish_reason=finish or "stop", usage=usage)

    def _chunk(self, data: Any) -> tuple[ChatChunk | None, FinishReason | None, Usage | None]:
        """Map one ``chat.completion.chunk`` to new content, finish reason and usage."""
        if not isinstance(data, dict):
            return None, None, None
        if data.get("error") is not None:
            # Some upstreams report failures inside an already started stream.
            message = scrub(error_text(data) or "unknown error", self._secret)
            raise BackendError(f"Upstream '{self.name}' error: {message}", code="server_error")
        usage = _usage(data.get("usage"))
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return None, None, usage
        choice = choices[0]
        raw_finish = choice.get("finish_reason")
        finish = _FINISH_REASONS.get(str(raw_finish), "stop") if raw_finish else None
        delta = choice.get("delta") or {}
        text = delta.get("content") or ""
        calls = [_tool_delta(i, call) for i, call in enumerate(delta.get("tool_calls") or [])]
        chunk = ChatChunk(text=text, tool_calls=calls) if text or calls else None
        return chunk, finish, usage

    async def _raise_for_status(self, response: aiohttp.ClientResponse) -> None:
        status = response.status
        try:
            raw = await response.read()
            detail = error_text(json.loads(raw))
        except (ValueError, aiohttp.ClientError, TimeoutError):
            detail = None
        detail = scrub(detail, self._secret) if detail else None
        failure = http_failure(self.name, status, detail)
        logger.warning("upstream %s: HTTP %d %s", self.name, status, detail or "")
        code: ErrorCode = "invalid_prompt" if failure.kind == "invalid" else failure.kind
        error = BackendError(failure.message, code=code)
        if failure.retryable:
            raise _RetryableError(error, retry_after(response.headers))
        raise error


def _env_proxy(url: str) -> str | None:
    """The proxy the environment (``HTTPS_PROXY``, ``HTTP_PROXY``, ``NO_PROXY``...) sets for
    ``url``, as the other HTTP clients honour it."""
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname or urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


def _json(data: str) -> Any:
    """The parsed value, or ``None`` when ``data`` is not (yet) a whole JSON document."""
    try:
        return json.loads(data)
    except ValueError:
        return None


async def _lines(body: aiohttp.StreamReader) -> AsyncGenerator[str, None]:
    """The body's lines, without their ends (``\\n``, ``\\r\\n`` or ``\\r``, as SSE allows),
    of any length."""
    held = b""
    async for data in body.iter_any():
        lines = (held + data).splitlines(keepends=True)
        # The last piece waits for more unless it ended with "\n" (one ending with "\r"
        # may be the first half of "\r\n").
        held = lines.pop() if not lines[-1].endswith(b"\n") else b""
        for line in lines:
            yield line.rstrip(b"\r\n").decode(errors="replace")
    for line in held.splitlines():
        yield line.decode(errors="replace")


async def _drain(lines: AsyncGenerator[str, None]) -> None:
    # Reading to the end of the body after [DONE] lets the connection return to the pool;
    # an upstream that keeps it open gets the connection dropped instead.
    with contextlib.suppress(TimeoutError, aiohttp.ClientError):
        async with asyncio.timeout(_DRAIN_SECONDS):
            async for _ in lines:
                pass


def _tool_delta(position: int, call: Any) -> ToolCallDelta:
    if not isinstance(call, dict):
        return ToolCallDelta(index=position)
    function = call.get("function") or {}
    index = call.get("index")
    return ToolCallDelta(
        index=index if isinstance(index, int) else position,
        id=call.get("id") or None,
        name=function.get("name") or None,
        arguments=function.get("arguments") or "",
    )


def _usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    return Usage(
        prompt_tokens=int(raw.get("prompt_tokens") or 0),
        completion_tokens=int(raw.get("completion_tokens") or 0),
    )
