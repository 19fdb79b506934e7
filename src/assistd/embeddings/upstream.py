"""Embeddings from an OpenAI-compatible upstream: ``POST {base_url}/embeddings``.

Retries 429s, 5xx answers and connection failures with the same policy as the chat
backend (exponential backoff with jitter, honouring ``Retry-After``). The package layers
keep ``assistd.backends`` out of reach, so the few lines of that policy are repeated here
rather than shared. Vectors are always asked for as ``float`` and returned as the upstream
sent them (as float32): the gateway stays a faithful proxy. OpenAI's are unit length; other
servers' may not be, so a caller that scores by dot product normalises them itself.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

import httpx
import numpy as np

from assistd.embeddings.base import (
    EmbedderError,
    EmbedderErrorCode,
    EmbeddingInput,
    EmbeddingResult,
)
from assistd.upstream import backoff_delay, error_text, http_failure, retry_after, scrub

logger = logging.getLogger(__name__)


class _Retryable(Exception):
    def __init__(self, error: EmbedderError, retry_after: float | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.retry_after = retry_after


class UpstreamEmbedder:
    """One OpenAI-compatible upstream; one pooled ``httpx.AsyncClient`` for every request.

    The API key lives only in the client's headers and is scrubbed from every message.
    """

    accepts_token_ids: ClassVar[bool] = True

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 600.0,
        max_retries: int = 3,
        name: str = "upstream",
        backoff: float = 0.5,
    ) -> None:
        """Args as ``OpenAICompatBackend``'s: ``name`` (never the URL or key) names the
        upstream in logs and errors; ``backoff`` is the first retry delay."""
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self.backoff = backoff
        self.dimensions: int | None = None  # the upstream's model decides
        self._secret = api_key or ""
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            headers=headers, timeout=httpx.Timeout(timeout, connect=min(timeout, 30.0))
        )

    def __repr__(self) -> str:
        return f"UpstreamEmbedder(name={self.name!r})"

    async def aclose(self) -> None:
        await self._client.aclose()

    async def embed(
        self,
        texts: EmbeddingInput,
        *,
        model: str | None = None,
        dimensions: int | None = None,
    ) -> EmbeddingResult:
        """Send every input in one request (token-id arrays as they are).

        Raises:
            EmbedderError: ``rate_limit_exceeded`` after the retries of a 429,
                ``invalid_request`` for the upstream's 400/404/422 (its message kept),
                ``server_error`` for the rest.
        """
        if not texts:
            return EmbeddingResult(np.zeros((0, dimensions or 0), dtype=np.float32), 0)
        body: dict[str, Any] = {
            "model": model or "text-embedding-3-small",
            "input": [t if isinstance(t, str) else list(t) for t in texts],
            "encoding_format": "float",
        }
        if dimensions is not None:
            body["dimensions"] = dimensions
        attempt = 0
        while True:
            try:
                payload = await self._attempt(body)
                return self._parse(payload, len(texts))
            except _Retryable as exc:
                if attempt >= self.max_retries:
                    logger.warning(
                        "upstream %s embeddings failed after %d attempt(s): %s",
                        self.name,
                        attempt + 1,
                        exc.error.message,
                    )
                    raise exc.error from None
                delay = backoff_delay(self.backoff, attempt, exc.retry_after)
                logger.info("upstream %s: %s; retry in %.2fs", self.name, exc.error.message, delay)
                attempt += 1
                await asyncio.sleep(delay)

    async def _attempt(self, body: dict[str, Any]) -> Any:
        try:
            response = await self._client.post(f"{self.base_url}/embeddings", json=body)
        except httpx.TimeoutException as exc:
            error = EmbedderError(f"Upstream '{self.name}' timed out ({type(exc).__name__}).")
            if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
                raise _Retryable(error) from None
            raise error from None
        except httpx.TransportError as exc:
            detail = scrub(f"{type(exc).__name__}: {exc}", self._secret)
            raise _Retryable(
                EmbedderError(f"Could not reach upstream '{self.name}' ({detail}).")
            ) from None
        if response.status_code != 200:
            self._raise_for_status(response)
        try:
            return response.json()
        except ValueError:
            raise EmbedderError(f"Upstream '{self.name}' sent a body that is not JSON.") from None

    def _raise_for_status(self, response: httpx.Response) -> None:
        status = response.status_code
        try:
            detail = error_text(response.json())
        except ValueError:
            detail = None
        detail = scrub(detail, self._secret) if detail else None
        failure = http_failure(self.name, status, detail)
        logger.warning("upstream %s embeddings: HTTP %d %s", self.name, status, detail or "")
        code: EmbedderErrorCode = "invalid_request" if failure.kind == "invalid" else failure.kind
        error = EmbedderError(failure.message, code=code)
        if failure.retryable:
            raise _Retryable(error, retry_after(response.headers))
        raise error

    def _parse(self, payload: Any, count: int) -> EmbeddingResult:
        data = payload.get("data") if isinstance(payload, dict) else None
        rows: list[Any] = [None] * count
        for position, item in enumerate(data if isinstance(data, list) else []):
            if not isinstance(item, dict):
                continue
            index = item.get("index", position)
            if isinstance(index, int) and 0 <= index < count:
                rows[index] = item.get("embedding")
        try:
            if any(not isinstance(r, list) or not r for r in rows):
                raise ValueError("missing embeddings")
            vectors = np.asarray(rows, dtype=np.float32)
            if vectors.ndim != 2:
                raise ValueError("ragged embeddings")
        except (TypeError, ValueError):
            raise EmbedderError(
                f"Upstream '{self.name}' sent an unreadable embeddings response."
            ) from None
        usage = payload.get("usage") if isinstance(payload, dict) else None
        tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        return EmbeddingResult(vectors, tokens if isinstance(tokens, int) else 0)
