"""Request-scoped dependencies: the caller's project, bounded bodies, list parameters."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Awaitable, Callable
from typing import Annotated, Literal, TypeVar

from fastapi import Depends, Query, Request
from pydantic import BaseModel, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistd.errors import InvalidRequestError, PayloadTooLargeError, RequestRateLimitError
from assistd.http.json_input import parse_json_body
from assistd.http.validation import to_api_error
from assistd.observability import logs
from assistd.services.container import Services
from assistd.services.ratelimit import Decision
from assistd.store.repository import PageQuery

M = TypeVar("M", bound=BaseModel)

# JSON bodies are small in this API (instructions top out at 256k characters); anything
# much larger is a mistake or an attack and is refused before it is read into memory.
MAX_JSON_BYTES = 8 * 1024 * 1024


# Dependencies are ``async def``: FastAPI runs a plain ``def`` one in its thread pool, a
# thread hop (and a wake-up of the loop) per request for what is a dictionary lookup.


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_services(request: Request) -> Services:
    return services_of(request)


async def get_project(request: Request) -> str:
    services = services_of(request)
    authorization = request.headers.get("authorization")
    project = await services.auth.project_for(authorization)
    request.state.project = project  # named in the response by StateHeaders
    params = request.path_params
    logs.bind(project=project, thread_id=params.get("thread_id"), run_id=params.get("run_id"))
    limiter = services.rate_limiter
    if limiter is not None:
        # Limited per key, once the key is known to be valid (a flood of made-up keys
        # gets 401s without filling the buckets).
        key = hashlib.sha256((authorization or "").encode()).hexdigest()
        decision = await limiter.take(key)
        request.state.ratelimit = decision  # reported by StateHeaders
        if not decision.allowed:
            raise RequestRateLimitError(project, decision.limit, decision.retry_after)
    return project


def _duration(seconds: float) -> str:
    """A duration as OpenAI's x-ratelimit-reset-* headers write it: "20ms", "6s", "1m0s"."""
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    whole = math.ceil(seconds)
    return f"{whole // 60}m{whole % 60}s" if whole >= 60 else f"{whole}s"


def _ratelimit_headers(decision: Decision) -> list[tuple[bytes, bytes]]:
    """OpenAI's ``x-ratelimit-*-requests`` headers, and ``retry-after`` on a 429."""
    headers = [
        (b"x-ratelimit-limit-requests", str(decision.limit).encode()),
        (b"x-ratelimit-remaining-requests", str(decision.remaining).encode()),
        (b"x-ratelimit-reset-requests", _duration(decision.reset_seconds).encode()),
    ]
    if not decision.allowed:
        retry = max(1, math.ceil(decision.retry_after))
        headers.append((b"retry-after", str(retry).encode()))
    return headers


class StateHeaders:
    """Adds to each response what the request's dependencies left in its state: the key's
    project (``openai-project``, as OpenAI does; the console shows it) and, with limits on,
    the rate-limit headers. Pure ASGI: one wrapped ``send`` per request."""

    def __init__(self, app: ASGIApp, *, rate_limits: bool = False) -> None:
        self.app = app
        self.rate_limits = rate_limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def named(message: Message) -> None:
            if message["type"] == "http.response.start":
                state = scope.get("state", {})
                added: list[tuple[bytes, bytes]] = []
                project = state.get("project")
                if project:
                    added.append((b"openai-project", project.encode()))
                decision: Decision | None = state.get("ratelimit") if self.rate_limits else None
                if decision is not None:
                    added += _ratelimit_headers(decision)
                if added:
                    message = {**message, "headers": [*message.get("headers", []), *added]}
            await send(message)

        await self.app(scope, receive, named)


Svc = Annotated[Services, Depends(get_services)]
Project = Annotated[str, Depends(get_project)]


async def read_bounded(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"Request body is too large (limit {limit} bytes).")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"Request body is too large (limit {limit} bytes).")
        chunks.append(chunk)
    return b"".join(chunks)


def json_body(model: type[M]) -> Callable[[Request], Awaitable[M]]:
    """A dependency parsing the JSON body into ``model``; an empty body means ``{}``."""

    async def dependency(request: Request) -> M:
        data = parse_json_body(await read_bounded(request, MAX_JSON_BYTES))
        if not isinstance(data, dict):
            raise InvalidRequestError(
                "Invalid type for the request body: expected an object.", code="invalid_type"
            )
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            # Located under "body" as FastAPI's own errors are: a body field named like a
            # location ("query" in vector store search) must not be taken for one.
            errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
            raise to_api_error(errors, data) from None

    return dependency


async def page_query(
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Literal["asc", "desc"] = "desc",
    after: str | None = None,
    before: str | None = None,
) -> PageQuery:
    return PageQuery(limit=limit, order=order, after=after, before=before)


async def file_page_query(
    limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
    order: Literal["asc", "desc"] = "desc",
    after: str | None = None,
) -> PageQuery:
    return PageQuery(limit=limit, order=order, after=after)


Page = Annotated[PageQuery, Depends(page_query)]
FilePage = Annotated[PageQuery, Depends(file_page_query)]
