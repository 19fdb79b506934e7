"""The application factory. Nothing is built at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator

from fastapi import FastAPI

from assistd import heap
from assistd.config import Settings
from assistd.http.deps import StateHeaders
from assistd.http.errors import install_error_handlers
from assistd.http.routes import (
    assistants,
    chat,
    embeddings,
    files,
    messages,
    metrics,
    models,
    runs,
    threads,
    usage,
    vector_store_files,
    vector_store_search,
    vector_stores,
)
from assistd.http.routes.console import mount_console
from assistd.observability import logs, tracing
from assistd.observability.asgi import ObserveRequests
from assistd.services.container import Services

logger = logging.getLogger("assistd")

API_PREFIX = "/v1"
EXPIRY_SWEEP_SECONDS = 60.0


async def _sweep_expired(services: Services) -> None:
    while True:
        try:
            await services.files.purge_expired()
        except Exception:
            logger.exception("expired-file sweep failed; retrying later")
        await asyncio.sleep(EXPIRY_SWEEP_SECONDS)


def _telemetry_configured() -> bool:
    """Whether OpenTelemetry is set up (it is through the environment: ``OTEL_*``, or
    FastAPI's ``FASTAPI_OTEL_*``)."""
    return any(name.startswith(("OTEL_", "FASTAPI_OTEL_")) for name in os.environ)


def create_app_from_environment() -> FastAPI:
    """The app of one of ``serve --workers N``'s processes (uvicorn imports it)."""
    settings = Settings()
    # A worker process starts afresh: the parent's logging set-up is not inherited.
    logs.configure_from(settings)
    app = create_app(settings)
    heap.settle()
    return app


def create_app(settings: Settings, services: Services | None = None) -> FastAPI:
    """Build the ASGI app; migrations run at start-up, background tasks stop at shutdown."""
    services = services or Services.build(settings)
    tracing.configure_from_environment(content=settings.trace_content)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await services.start()
        sweeper = asyncio.create_task(_sweep_expired(services), name="assistd-file-expiry")
        try:
            yield
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            await services.stop()
            tracing.shutdown()

    # FastAPI's built-in telemetry asks OpenTelemetry for its providers on every request
    # (reading the environment each time), a few percent of a streamed run's CPU: it is
    # only switched on where OpenTelemetry is configured. Its server span is the request's
    # span, made with assistd's tracer provider when assistd traces.
    telemetry_on = _telemetry_configured()
    tracing_on = telemetry_on or tracing.enabled()
    app = FastAPI(
        title="assistd",
        version="0.1.0",
        lifespan=lifespan,
        telemetry={
            "tracing": tracing_on,
            "tracer_provider": tracing.provider(),
            "metrics": telemetry_on,
            "logs": telemetry_on,
        },
    )
    app.state.services = services
    install_error_handlers(app)
    # runs first: its literal POST /threads/runs must win over POST /threads/{thread_id}.
    routers = (
        runs.router,
        assistants.router,
        threads.router,
        messages.router,
        files.router,
        models.router,
        chat.router,
        embeddings.router,
        vector_stores.router,
        vector_store_files.router,
        vector_store_search.router,
        usage.router,
    )
    for router in routers:
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(models.health)
    app.include_router(metrics.router)
    mount_console(app)
    # One layer for the headers that request state gives (project; rate limits when on).
    app.add_middleware(StateHeaders, rate_limits=services.rate_limiter is not None)
    # Outermost: it sees the status of every response, the catch-all's 500s included.
    app.add_middleware(ObserveRequests)
    return app
