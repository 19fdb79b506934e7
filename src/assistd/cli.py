"""Command line: ``assistd serve | worker | migrate | keys create | usage``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

from assistd import heap
from assistd.config import Settings
from assistd.observability import logs
from assistd.services.auth import AuthService
from assistd.store import usage
from assistd.store.database import Database
from assistd.store.records import UsageDay


class ConfigurationError(Exception):
    """A setting that makes the command unsafe or impossible to run."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(
                ipaddress.ip_address(info[4][0]).is_loopback
                for info in socket.getaddrinfo(host, None)
            )
        except OSError:
            return False


async def _migrate(settings: Settings) -> None:
    db = Database(settings.resolved_database_url)
    try:
        await db.migrate()
    finally:
        await db.dispose()


async def _check_bind(settings: Settings) -> None:
    db = Database(settings.resolved_database_url)
    try:
        await db.migrate()
        has_keys = await AuthService(db, settings.static_keys()).has_keys()
    finally:
        await db.dispose()
    if not has_keys and not is_loopback(settings.host):
        raise ConfigurationError(
            f"refusing to listen on {settings.host}: no API keys are configured, so anyone "
            "who can reach this address could use the server. Set ASSISTD_API_KEYS or run "
            "`assistd keys create --project NAME`, or bind to 127.0.0.1."
        )


async def _create_key(settings: Settings, project: str) -> str:
    db = Database(settings.resolved_database_url)
    try:
        await db.migrate()
        return await AuthService(db, []).create_key(project)
    finally:
        await db.dispose()


async def _usage(
    settings: Settings, project: str | None, since: date | None, until: date | None
) -> list[UsageDay]:
    db = Database(settings.resolved_database_url)
    try:
        await db.migrate()
        async with db.read() as conn:
            return await usage.daily(conn, project, start=since, end=until)
    finally:
        await db.dispose()


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


def print_usage(rows: list[UsageDay], *, as_json: bool) -> None:
    """The rows as JSON lines' worth of objects, or as a table with a total line."""
    if as_json:
        data = [
            {
                "date": r.day.isoformat(),
                "project": r.project,
                "model": r.model,
                "prompt_tokens": r.prompt_tokens,
                "completion_tokens": r.completion_tokens,
                "total_tokens": r.prompt_tokens + r.completion_tokens,
                "requests": r.requests,
            }
            for r in rows
        ]
        print(json.dumps(data, indent=2))
        return
    header = ("DATE", "PROJECT", "MODEL", "PROMPT", "COMPLETION", "TOTAL", "REQUESTS")
    table = [header] + [
        (
            r.day.isoformat(),
            r.project,
            r.model,
            str(r.prompt_tokens),
            str(r.completion_tokens),
            str(r.prompt_tokens + r.completion_tokens),
            str(r.requests),
        )
        for r in rows
    ]
    prompt = sum(r.prompt_tokens for r in rows)
    completion = sum(r.completion_tokens for r in rows)
    total = ("total", "", "", str(prompt), str(completion), str(prompt + completion))
    table.append((*total, str(sum(r.requests for r in rows))))
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        cells = [
            cell.ljust(w) if i < 3 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())


def check_scale_out(settings: Settings, *, processes: int, worker: bool = False) -> None:
    """Several processes need a shared database; executor-less API processes and
    executor-only workers need Redis to hand runs and events to each other."""
    what = "`assistd worker`" if worker else None
    if what is None and processes > 1:
        what = "--workers above 1"
    if what is None and not settings.executor:
        what = "--no-executor"
    if what is None:
        return
    if settings.resolved_database_url.startswith("sqlite"):
        raise ConfigurationError(
            f"{what} needs PostgreSQL (ASSISTD_DATABASE_URL): SQLite is one process's store."
        )
    if (worker or not settings.executor) and settings.redis_url is None:
        raise ConfigurationError(
            f"{what} needs Redis (ASSISTD_REDIS_URL) to pass runs between API and worker processes."
        )


@contextlib.contextmanager
def metrics_directory(processes: int) -> Iterator[str | None]:
    """Several processes share their metrics through files (prometheus_client's
    multiprocess mode), in ``PROMETHEUS_MULTIPROC_DIR``: the operator's (which they empty
    before starting), else a fresh one for this command's processes, removed at exit.
    It must be set before prometheus_client is imported, which is why this runs first."""
    configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if configured or processes == 1:
        yield configured or None
        return
    made = tempfile.mkdtemp(prefix="assistd-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = made
    try:
        yield made
    finally:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        shutil.rmtree(made, ignore_errors=True)


def serve(settings: Settings, *, workers: int = 1) -> None:
    check_scale_out(settings, processes=workers)
    with metrics_directory(workers):
        _serve(settings, workers)


def _serve(settings: Settings, workers: int) -> None:
    import uvicorn

    from assistd.http.app import create_app

    asyncio.run(_check_bind(settings))
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        # Logging is set up by main (and by each worker process's app): uvicorn's records
        # go to the same handler, in the same format (ASSISTD_LOG_FORMAT).
        "log_config": None,
        # Forwarded headers are only trusted from a proxy the operator configures.
        "proxy_headers": False,
    }
    if workers == 1:
        app = create_app(settings)
        heap.settle()
        uvicorn.run(app, **options)
        return
    # uvicorn's worker processes import the app: they read the settings from the
    # environment, so what the command line changed goes there first.
    os.environ["ASSISTD_EXECUTOR"] = "true" if settings.executor else "false"
    if settings.config is not None:
        os.environ["ASSISTD_CONFIG"] = str(settings.config)
    uvicorn.run(
        "assistd.http.app:create_app_from_environment", factory=True, workers=workers, **options
    )


def run_worker(settings: Settings) -> None:
    check_scale_out(settings, processes=1, worker=True)
    asyncio.run(_work(settings))


async def _work(settings: Settings) -> None:
    from assistd.observability import tracing
    from assistd.services.container import Services

    tracing.configure_from_environment(content=settings.trace_content)
    services = Services.build(settings)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await services.start_worker()
    heap.settle()
    print("assistd worker started: executing runs", flush=True)
    try:
        await stopping.wait()
    finally:
        await services.stop()
        tracing.shutdown()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="assistd", description=__doc__)
    parser.add_argument("--config", type=Path, help="TOML config file (or ASSISTD_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)
    serve_cmd = sub.add_parser("serve", help="run the API server")
    serve_cmd.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve_cmd.add_argument("--port", type=int, help="port (default 8000; 0 picks a free one)")
    serve_cmd.add_argument(
        "--workers", type=int, default=1, help="API processes (above 1 needs PostgreSQL)"
    )
    serve_cmd.add_argument(
        "--no-executor",
        action="store_true",
        help="serve the API only; `assistd worker` processes execute the runs (needs Redis)",
    )
    sub.add_parser("worker", help="execute runs, without HTTP (needs PostgreSQL and Redis)")
    sub.add_parser("migrate", help="apply database migrations")
    keys = sub.add_parser("keys", help="manage API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key; prints it once")
    create.add_argument("--project", required=True, help="project the key belongs to")
    usage_cmd = sub.add_parser("usage", help="token usage per project, model and UTC day")
    usage_cmd.add_argument("--project", help="only this project (default: all)")
    usage_cmd.add_argument("--since", type=_day, help="first UTC day, YYYY-MM-DD (inclusive)")
    usage_cmd.add_argument("--until", type=_day, help="last UTC day, YYYY-MM-DD (inclusive)")
    usage_cmd.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides: dict[str, object] = {}
    if args.config is not None:
        overrides["config"] = args.config
    if args.command == "serve":
        if args.host:
            overrides["host"] = args.host
        if args.port is not None:
            overrides["port"] = args.port
        if args.no_executor:
            overrides["executor"] = False
    settings = Settings(**overrides)  # type: ignore[arg-type]
    logs.configure_from(settings)
    try:
        if args.command == "serve":
            if args.workers < 1:
                raise ConfigurationError("--workers must be at least 1")
            serve(settings, workers=args.workers)
        elif args.command == "worker":
            run_worker(settings)
        elif args.command == "migrate":
            asyncio.run(_migrate(settings))
            print("migrations applied")
        elif args.command == "usage":
            rows = asyncio.run(_usage(settings, args.project, args.since, args.until))
            print_usage(rows, as_json=args.json)
        else:
            print(asyncio.run(_create_key(settings, args.project)))
    except ConfigurationError as exc:
        print(f"assistd: {exc}", file=sys.stderr)
        return 2
    return 0
