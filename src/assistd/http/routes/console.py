"""The web console at ``/ui/`` (static files shipped in the package) and ``/`` → ``/ui/``.

The console is a client of the public ``/v1`` API like any other: these routes only serve
its files. A strict Content-Security-Policy keeps every script, style and connection on this
origin (nothing comes from a CDN), and nothing is cached across releases.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

CONSOLE_DIR = Path(__file__).resolve().parents[1] / "console"
HEADERS = {
    "content-security-policy": (
        "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
        "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}

router = APIRouter(include_in_schema=False)


class ConsoleFiles(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(HEADERS)
        return response


@router.get("/")
async def root(request: Request) -> RedirectResponse:
    # base_url keeps a proxy's root_path, so the console is found behind a prefix too.
    return RedirectResponse(f"{request.base_url}ui/")


def mount_console(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/ui", ConsoleFiles(directory=CONSOLE_DIR, html=True), name="console")
