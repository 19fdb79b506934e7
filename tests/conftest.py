"""Shared fixtures: a real assistd server on an ephemeral loopback port, on SQLite and on
PostgreSQL, driven by the official ``openai`` SDK in strict validation mode.

Each test gets its own project (a fresh API key), so objects other tests made never show
up in its lists: the isolation under test is also what keeps tests independent.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import openai
import pytest
import uvicorn

from assistd.backends.registry import BackendRegistry
from assistd.backends.scripted import ScriptedBackend
from assistd.config import Settings
from assistd.http.app import create_app
from assistd.services.container import Services

T = TypeVar("T")

POSTGRES_URL = os.environ.get(
    "ASSISTD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
STATIC_KEY = "sk-test-static"  # in project "static", configured through ASSISTD_API_KEYS


class LiveServer:
    """uvicorn serving ``create_app(settings)`` in a thread with its own event loop."""

    def __init__(self, settings: Settings, **overrides: Any) -> None:
        self.settings = settings
        self.scripted = ScriptedBackend()
        # Any model name is served by the scripted backend unless a test passes a registry.
        overrides.setdefault("registry", BackendRegistry(fallback=self.scripted))
        self.services = Services.build(settings, **overrides)
        app = create_app(settings, self.services)
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
        self.server = uvicorn.Server(config)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="assistd-test-server", daemon=True)
        self.port = 0

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.serve())

    def start(self) -> LiveServer:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("test server failed to start")
            threading.Event().wait(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.loop.close()

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the server's loop (e.g. to make a key) and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def new_key(self, project: str) -> str:
        return self.call(self.services.auth.create_key(project))


def _postgres_database() -> Iterator[str]:
    """A throwaway database on the test PostgreSQL; skipped (or failed on CI) if absent."""
    import asyncpg

    name = "assistd_test_" + secrets.token_hex(6)

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(POSTGRES_URL, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        reason = f"PostgreSQL is not reachable at {POSTGRES_URL} ({exc!r}); run `make test`"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    base = POSTGRES_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """Settings for a fresh store on each database the project supports."""
    data_dir = tmp_path_factory.mktemp(f"data-{request.param}")
    if request.param == "sqlite":
        yield make_settings(data_dir)
        return
    gen = _postgres_database()
    url = next(gen)
    try:
        yield make_settings(data_dir, database_url=url)
    finally:
        gen.close()


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "api_keys": f"static:{STATIC_KEY}",
        # Small enough that the 413 test uploads little; large enough for every other test.
        "max_upload_bytes": 2 * 1024 * 1024,
        # Poll helpers follow this hint; a short one keeps run tests quick.
        "poll_after_ms": 20,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture(scope="session")
def server(backend: Settings) -> Iterator[LiveServer]:
    with LiveServer(backend) as live:
        yield live


ClientFactory = Callable[..., openai.OpenAI]


@pytest.fixture
def make_client(server: LiveServer) -> Iterator[ClientFactory]:
    """Builds strict SDK clients; each call with no key gets a brand-new project."""
    made: list[openai.OpenAI] = []

    def factory(api_key: str | None = None, **kwargs: Any) -> openai.OpenAI:
        key = api_key or server.new_key("proj_" + secrets.token_hex(6))
        client = openai.OpenAI(
            base_url=server.base_url,
            api_key=key,
            max_retries=0,
            _strict_response_validation=True,
            **kwargs,
        )
        made.append(client)
        return client

    yield factory
    for client in made:
        client.close()


@pytest.fixture
def client(make_client: ClientFactory) -> openai.OpenAI:
    return make_client()


def raw_client(server: LiveServer, api_key: str) -> httpx.Client:
    """An httpx client with the key and the beta header the SDK would send."""
    return httpx.Client(
        base_url=server.base_url,
        headers={"Authorization": f"Bearer {api_key}", "OpenAI-Beta": "assistants=v2"},
        timeout=30,
    )


@pytest.fixture
def http(server: LiveServer, client: openai.OpenAI) -> Iterator[httpx.Client]:
    """Raw HTTP in the same project as ``client``, for what the SDK cannot send."""
    with raw_client(server, client.api_key) as raw:
        yield raw


def assert_error(
    response: httpx.Response, status: int, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """Check OpenAI's envelope exactly: four keys, a message, the type for the status."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str)
    assert error["message"]
    expected_type = "server_error" if status >= 500 else "invalid_request_error"
    assert error["type"] == expected_type, error
    if param is not None:
        assert error["param"] == param, error
    if code is not None:
        assert error["code"] == code, error
    return dict(error)
