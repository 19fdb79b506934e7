"""The only place exceptions become HTTP responses, always in OpenAI's error envelope."""

from __future__ import annotations

import json
import logging
import secrets

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistd.errors import APIError, InvalidRequestError, NotFoundError
from assistd.http.validation import to_api_error
from assistd.observability import logs

logger = logging.getLogger("assistd.http")

SERVER_ERROR = APIError("The server had an error while processing your request. Sorry about that!")
NULL_IN_URL = InvalidRequestError(
    "Invalid URL: it contains a null character (%00).", code="invalid_value"
)


def error_response(error: APIError) -> JSONResponse:
    headers = None
    if error.status_code == 413:
        # The body was refused part-read: closing the connection stops a client that is
        # still sending it (kept alive, the server would have to read the rest to discard).
        headers = {"connection": "close"}
    return JSONResponse(error.to_dict(), status_code=error.status_code, headers=headers)


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, APIError)
    return error_response(exc)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(to_api_error(exc.errors(), None))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    target = f"{request.method} {request.url.path}"
    error: APIError
    if exc.status_code == 404:
        error = NotFoundError(f"Invalid URL ({target}).")
    elif exc.status_code == 405:
        error = NotFoundError(f"Invalid method for URL ({target}).")
    elif exc.status_code < 500:
        error = InvalidRequestError(str(exc.detail))
        error.status_code = exc.status_code
    else:
        error = SERVER_ERROR
    return error_response(error)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(APIError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_middleware(RequestIdAndCatchAll)


class RequestIdAndCatchAll:
    """Tags each response with ``x-request-id`` and turns any escaped exception into a 500
    (and a NUL anywhere in the URL into a 400).

    The traceback is logged with the request id; the client only gets the envelope, so no
    internal detail (paths, SQL, settings) leaks into a response.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = "req_" + secrets.token_hex(16)
        logs.REQUEST_ID.set(request_id)  # this request's task (and those it starts) only
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
            # No id or parameter holds a NUL, and PostgreSQL cannot even compare one (it
            # would fail the query): refuse it here, for every route at once.
            await _send(send_with_id, NULL_IN_URL)
            return
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            logger.exception(
                "unhandled error in %s %s (%s)", scope["method"], scope["path"], request_id
            )
            if started:
                raise
            await _send(send_with_id, SERVER_ERROR)


async def _send(send: Send, error: APIError) -> None:
    body = json.dumps(error.to_dict()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.status_code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
