"""Object-API throughput and latency of a real `assistd serve` process.

Starts the server as a subprocess on a free loopback port (SQLite in a temporary data dir,
or PostgreSQL with --postgres URL), then drives it with CONCURRENCY async clients for a
fixed number of requests per operation and prints requests/s and latency percentiles.

    .venv/bin/python bench/objects.py [--requests 2000] [--concurrency 16] [--postgres URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    data_dir: str, database_url: str | None, **settings: str
) -> tuple[subprocess.Popen[bytes], str]:
    """`assistd serve` on a free port; ``settings`` are more ASSISTD_* variables."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTD_")}
    env.update(ASSISTD_DATA_DIR=data_dir, ASSISTD_LOG_LEVEL="warning", **settings)
    if database_url:
        env["ASSISTD_DATABASE_URL"] = database_url
    proc = subprocess.Popen(
        [sys.executable, "-m", "assistd", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return proc, f"http://127.0.0.1:{port}/v1"
        except httpx.TransportError:
            time.sleep(0.1)
    proc.terminate()
    raise RuntimeError("server did not start")


async def measure(
    name: str, total: int, concurrency: int, op: Callable[[int], Awaitable[None]]
) -> None:
    latencies: list[float] = []
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:
            started = time.perf_counter()
            await op(i)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    q = statistics.quantiles(latencies, n=100)
    print(
        f"{name:<22} {total / elapsed:8.0f} req/s   p50 {q[49] * 1000:6.1f} ms"
        f"   p95 {q[94] * 1000:6.1f} ms   p99 {q[98] * 1000:6.1f} ms"
    )


async def run(base_url: str, total: int, concurrency: int) -> None:
    headers = {"Authorization": "Bearer bench", "OpenAI-Beta": "assistants=v2"}
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits) as http:
        thread = (await http.post("/threads", json={})).json()["id"]
        assistants: list[str] = []

        async def create_assistant(i: int) -> None:
            body = {"model": "gpt-4o", "name": f"a{i}", "metadata": {"i": str(i)}}
            response = await http.post("/assistants", json=body)
            response.raise_for_status()
            assistants.append(response.json()["id"])

        async def retrieve_assistant(i: int) -> None:
            (await http.get(f"/assistants/{assistants[i % len(assistants)]}")).raise_for_status()

        async def list_assistants(_i: int) -> None:
            (await http.get("/assistants", params={"limit": 20})).raise_for_status()

        async def create_message(i: int) -> None:
            body = {"role": "user", "content": f"message {i}"}
            (await http.post(f"/threads/{thread}/messages", json=body)).raise_for_status()

        async def list_messages(_i: int) -> None:
            (
                await http.get(f"/threads/{thread}/messages", params={"limit": 100})
            ).raise_for_status()

        for name, op in (
            ("create assistant", create_assistant),
            ("retrieve assistant", retrieve_assistant),
            ("list assistants (20)", list_assistants),
            ("create message", create_message),
            ("list messages (100)", list_messages),
        ):
            await measure(name, total, concurrency, op)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--postgres", help="postgresql+asyncpg:// URL of an empty database")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        proc, base_url = start_server(data_dir, args.postgres)
        try:
            store = "PostgreSQL" if args.postgres else "SQLite"
            print(
                f"assistd object API, {store}, {args.concurrency} concurrent clients, "
                f"{args.requests} requests per operation, {os.cpu_count()} cores"
            )
            asyncio.run(run(base_url, args.requests, args.concurrency))
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
