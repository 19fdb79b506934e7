"""GET /metrics: Prometheus' text format, for a scraper.

Who may read it: with ``ASSISTD_METRICS_TOKEN`` set, whoever sends that bearer token (and
nobody else, loopback included); without it, any loopback client, and others with an API
key. The metrics are server-wide counts (no project's data), but they still tell an outsider
how busy the server is.
"""

from __future__ import annotations

import hmac
import ipaddress

from fastapi import APIRouter, Request
from starlette.responses import Response

from assistd.errors import AuthenticationError
from assistd.http.deps import Svc
from assistd.observability import metrics

router = APIRouter(include_in_schema=False)


def _loopback(host: str | None) -> bool:
    if host is None:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _authorize(request: Request, svc: Svc) -> None:
    authorization = request.headers.get("authorization")
    token = svc.settings.metrics_token
    if token:
        scheme, _, supplied = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not supplied.strip():
            raise AuthenticationError(
                "You didn't provide the metrics token. Send it as Authorization: Bearer "
                "TOKEN (the server's ASSISTD_METRICS_TOKEN).",
                code="missing_api_key",
            )
        if not hmac.compare_digest(supplied.strip().encode(), token.encode()):
            raise AuthenticationError("Incorrect metrics token provided.", code="invalid_api_key")
        return
    if _loopback(request.client.host if request.client else None):
        return
    await svc.auth.project_for(authorization)  # 401 unless a valid key (or no keys at all)


@router.get("/metrics")
async def get_metrics(request: Request, svc: Svc) -> Response:
    await _authorize(request, svc)
    # Read at scrape time: a database count, nothing to keep up to date in between.
    metrics.INGESTION_BACKLOG.set(await svc.ingestion.backlog())
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)
