"""Log records with their request and run, as text or as one JSON object per line.

What a record is about comes from context variables: the HTTP layer binds the request id,
the project and the thread and run a path names; the executor binds the run it executes.
asyncio copies them into the tasks a request or a run starts, so they follow the work.

Secrets never reach the output: the configured keys (API keys, upstream keys, the
metrics token) and anything shaped like a bearer token or an ``sk-`` key are masked in
every formatted line, tracebacks included.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from assistd.config import LogFormat, Settings

REQUEST_ID: ContextVar[str | None] = ContextVar("assistd_request_id", default=None)
PROJECT: ContextVar[str | None] = ContextVar("assistd_project", default=None)
THREAD_ID: ContextVar[str | None] = ContextVar("assistd_thread_id", default=None)
RUN_ID: ContextVar[str | None] = ContextVar("assistd_run_id", default=None)
_FIELDS = (
    ("request_id", REQUEST_ID),
    ("project", PROJECT),
    ("thread_id", THREAD_ID),
    ("run_id", RUN_ID),
)
# Bearer credentials and OpenAI-style keys (assistd's own are sk-assistd-...).
_SHAPED = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=\-]+|\bsk-[A-Za-z0-9_\-]{6,}")
MASK = "***"

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def bind(
    *,
    project: str | None = None,
    thread_id: str | None = None,
    run_id: str | None = None,
) -> None:
    """Name what the current task's records are about (None leaves a field as it is)."""
    if project is not None:
        PROJECT.set(project)
    if thread_id is not None:
        THREAD_ID.set(thread_id)
    if run_id is not None:
        RUN_ID.set(run_id)


class Redactor:
    """Masks known secrets and secret-shaped strings."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        # Longest first: a key that contains another is masked whole.
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return _SHAPED.sub(lambda m: (m.group(1) or "") + MASK, text)


class TextFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__(TEXT_FORMAT)
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(f"{name}={value}" for name, var in _FIELDS if (value := var.get()))
        return self.redact(f"{line} [{context}]" if context else line)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: timestamp (UTC, ISO 8601), level, logger, message, the
    request and run it belongs to where known, and the traceback if any."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": self.redact(record.getMessage()),
        }
        for name, var in _FIELDS:
            value = var.get()
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.redact(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exception"] = self.redact(record.exc_text)
        return json.dumps(entry, ensure_ascii=False, default=str)


def formatter(fmt: LogFormat, secrets: Iterable[str | None] = ()) -> logging.Formatter:
    redact = Redactor(secrets)
    return JsonFormatter(redact) if fmt == "json" else TextFormatter(redact)


def configure(level: str, fmt: LogFormat, secrets: Iterable[str | None] = ()) -> None:
    """Send every logger's records (uvicorn's included) to stderr in ``fmt``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt, secrets))
    root = logging.getLogger()
    for previous in list(root.handlers):
        root.removeHandler(previous)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn's loggers go through the root handler instead of their own.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True


def secrets_of(settings: Settings) -> list[str]:
    """Every secret the settings hold: API keys, upstream keys, the metrics token."""
    found = [key for _project, key in settings.static_keys()]
    found += [settings.upstream_api_key or "", settings.metrics_token or ""]
    found += [upstream.api_key or "" for upstream in settings.upstreams]
    return [s for s in found if s]


def configure_from(settings: Settings) -> None:
    configure(settings.log_level, settings.log_format, secrets_of(settings))
