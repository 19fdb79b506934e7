"""The request middleware: counts and times each request by its route template."""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistd.observability import metrics

access = logging.getLogger("assistd.access")

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Where this (the outermost of assistd's layers) leaves the ``send`` it was given: a
# streamed body's chunks may go straight to it once the response started through every
# layer, whose wrappers act on the start only (status, headers).
BODY_SEND = "assistd.body_send"


def route_template(scope: Scope) -> str:
    """The matched route's path template (``/v1/threads/{thread_id}``), never the raw
    path: raw paths hold ids, which would make a label value per object.

    The route knows its template below the prefix it was included under (``/v1``); the
    prefix is what the raw path has before the route's own part, filled in with the
    path's parameters.
    """
    template = getattr(scope.get("route"), "path_format", None)
    if not isinstance(template, str):
        return "unmatched"
    params = scope.get("path_params") or {}
    try:
        filled = template.format_map({k: str(v) for k, v in params.items()})
    except (KeyError, IndexError, ValueError):
        return template
    path: str = scope.get("path", "")
    if filled and path.endswith(filled):
        return path[: len(path) - len(filled)] + template
    return template


class ObserveRequests:
    """Pure ASGI (no per-request task): one counter increment and one histogram
    observation per request, at its end; a DEBUG access line when that level is on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0  # no response: the client went away first
        scope[BODY_SEND] = send

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed)
        except BaseException:
            status = status or 500
            raise
        finally:
            elapsed = time.perf_counter() - started
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            route = route_template(scope)
            metrics.HTTP_REQUESTS.labels(method, route, str(status)).inc()
            metrics.HTTP_DURATION.labels(method, route).observe(elapsed)
            if access.isEnabledFor(logging.DEBUG):
                access.debug("%s %s %d %.1fms", method, scope["path"], status, elapsed * 1000.0)
