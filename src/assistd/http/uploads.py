"""Multipart uploads, bounded while they stream in.

The size limit is enforced on the bytes as they arrive (not after buffering the whole
body), so an oversized upload is refused with 413 having cost at most the limit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.types import Message

from assistd.errors import InvalidRequestError
from assistd.services.files import Upload, too_large

# Room for the multipart framing and the small text fields around the file itself.
FORM_OVERHEAD = 64 * 1024


def _bounded(request: Request, limit: int) -> Request:
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        received += len(message.get("body", b""))
        if received > limit:
            raise too_large(limit - FORM_OVERHEAD)
        return message

    return Request(request.scope, receive)


@asynccontextmanager
async def parse_upload(request: Request, max_bytes: int) -> AsyncIterator[Upload]:
    """Parse ``file``, ``purpose`` and ``expires_after[...]`` from a multipart request."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise InvalidRequestError(
            "Invalid Content-Type header: expected multipart/form-data.",
            param="file",
            code="invalid_value",
        )
    limit = max_bytes + FORM_OVERHEAD
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(max_bytes)
    form = await _bounded(request, limit).form(max_files=1, max_fields=16)
    try:
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise InvalidRequestError(
                "Missing required parameter: 'file'.",
                param="file",
                code="missing_required_parameter",
            )

        def text(name: str) -> str | None:
            value = form.get(name)
            return value if isinstance(value, str) else None

        yield Upload(
            filename=file.filename or "",
            content_type=file.content_type,
            data=file.file,
            purpose=text("purpose"),
            expires_anchor=text("expires_after[anchor]"),
            expires_seconds=text("expires_after[seconds]"),
        )
    finally:
        await form.close()
