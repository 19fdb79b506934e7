"""What every OpenAI-compatible upstream client reads the same way: error messages, retry
hints and backoff, and the key scrubbed from anything shown.

Shared by the chat backend and the embeddings client, which sit side by side in the layers.
"""

from __future__ import annotations

import contextlib
import email.utils
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

MAX_BACKOFF = 8.0
MAX_RETRY_AFTER = 30.0
# Upstream messages end up in run.last_error and API errors: keep them readable.
MAX_MESSAGE = 500


def error_text(body: Any) -> str | None:
    """The message of OpenAI's error envelope, or of the common variations of it."""
    if not isinstance(body, dict):
        return None
    error = body.get("error", body)
    if isinstance(error, str):
        return error
    if isinstance(error, dict):
        for key in ("message", "detail"):
            if isinstance(error.get(key), str):
                return str(error[key])
    return None


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    if (ms := headers.get("retry-after-ms")) is not None:
        with contextlib.suppress(ValueError):
            return float(ms) / 1000
    value = headers.get("retry-after")
    if value is None:
        return None
    with contextlib.suppress(ValueError):
        return float(value)
    with contextlib.suppress(TypeError, ValueError):
        return email.utils.parsedate_to_datetime(value).timestamp() - time.time()
    return None


def backoff_delay(backoff: float, attempt: int, hinted: float | None) -> float:
    """The upstream's own hint (capped), else exponential backoff with jitter (which
    spreads out the retries of many requests throttled at the same moment)."""
    if hinted is not None:
        return min(max(hinted, 0.0), MAX_RETRY_AFTER)
    return min(backoff * 2.0**attempt, MAX_BACKOFF) * random.uniform(0.75, 1.0)


def scrub(text: str, secret: str) -> str:
    """``text`` without ``secret``, shortened to ``MAX_MESSAGE`` characters."""
    if secret:
        text = text.replace(secret, "***")
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


@dataclass(frozen=True)
class Failure:
    """An upstream's HTTP error status as assistd reports it.

    ``kind`` is ``invalid`` for the request's own fault (400, 404, 422), which each client
    names in its own vocabulary; ``retryable`` for 429 and 5xx.
    """

    message: str
    kind: Literal["server_error", "rate_limit_exceeded", "invalid"]
    retryable: bool


def http_failure(name: str, status: int, detail: str | None) -> Failure:
    """Classify an error status; ``detail`` is the upstream's (already scrubbed) message."""
    kind: Literal["server_error", "rate_limit_exceeded", "invalid"] = "server_error"
    if status == 429:
        kind = "rate_limit_exceeded"
    elif status in (400, 404, 422):
        kind = "invalid"
    if status in (401, 403):
        # An auth failure is the operator's problem: tell the client nothing about it.
        message = f"Upstream '{name}' rejected its credentials (HTTP {status})."
    else:
        message = f"Upstream '{name}' returned HTTP {status}"
        message += f": {detail}" if detail else "."
    return Failure(message, kind, status == 429 or status >= 500)
