"""Latency assistd adds to a streamed run, and run throughput.

Starts a fake OpenAI-compatible upstream (bench/upstream.py) and `assistd serve` pointed at
it, each in its own process. Then, at 1 and at N concurrent clients, measures:

- direct: streaming a chat completion straight from the upstream: time to the first
  content chunk and to [DONE];
- assistd: `POST /v1/threads/runs` with `stream: true` (a new thread per run): time to the
  first `thread.message.delta` and to [DONE];

and the throughput of streamed runs (completed runs per second). Figures are printed; the
load generator shares this machine's cores with both servers.

    .venv/bin/python bench/runs.py [--runs 200] [--concurrency 200] [--rounds 3]
        [--words 40 --delay-ms 5] [--postgres URL [--workers N] [--redis URL [--executors M]]]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

HERE = Path(__file__).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def start_upstream(
    port: int, words: int, delay_ms: float, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    """bench/upstream.py in its own process, once it answers."""
    args = ["--port", str(port), "--words", str(words), "--delay-ms", str(delay_ms)]
    upstream = subprocess.Popen([sys.executable, str(HERE / "upstream.py"), *args], env=env)
    wait_http(f"http://127.0.0.1:{port}/", upstream)
    return upstream


async def stream_direct(http: httpx.AsyncClient, upstream: str) -> tuple[float, float]:
    body = {"model": "bench", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    started = time.perf_counter()
    first = 0.0
    async with http.stream("POST", f"{upstream}/chat/completions", json=body) as response:
        async for line in response.aiter_lines():
            if not first and '"content"' in line:
                first = time.perf_counter() - started
            if line == "data: [DONE]":
                break
    return first, time.perf_counter() - started


async def stream_run(http: httpx.AsyncClient, base: str, assistant: str) -> tuple[float, float]:
    body = {
        "assistant_id": assistant,
        "stream": True,
        "thread": {"messages": [{"role": "user", "content": "hi"}]},
    }
    started = time.perf_counter()
    first = 0.0
    async with http.stream("POST", f"{base}/threads/runs", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not first and line == "event: thread.message.delta":
                first = time.perf_counter() - started
            if line == "data: [DONE]":
                break
    return first, time.perf_counter() - started


async def measure(
    total: int, concurrency: int, one: Callable[[], Awaitable[tuple[float, float]]]
) -> tuple[list[float], list[float], float]:
    firsts: list[float] = []
    dones: list[float] = []
    remaining = iter(range(total))

    async def worker() -> None:
        for _ in remaining:
            first, done = await one()
            firsts.append(first)
            dones.append(done)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return firsts, dones, time.perf_counter() - started


def pct(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] * 1000
    return statistics.quantiles(values, n=100)[q - 1] * 1000


def _stat(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return []


def cpu_seconds(*pids: int) -> float:
    """User + system CPU time so far (Linux) of processes ``pids`` and their descendants
    (``serve --workers N`` runs the API in child processes), 0 where unknown."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))):
            parents[int(entry.name)] = int(fields[1])
    tree = set(pids)
    grew = True
    while grew:
        found = {p for p, parent in parents.items() if parent in tree} - tree
        grew = bool(found)
        tree |= found
    ticks = 0
    for pid in tree:
        fields = _stat(pid)
        if fields:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


async def bench(
    base: str,
    upstream: str,
    runs: int,
    concurrency: int,
    pids: dict[str, list[int]],
    rounds: int = 1,
) -> None:
    headers = {"Authorization": "Bearer bench", "OpenAI-Beta": "assistants=v2"}
    limits = httpx.Limits(max_connections=concurrency + 10, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=120) as http:
        created = await http.post(f"{base}/assistants", json={"model": "bench-model"})
        created.raise_for_status()
        assistant = created.json()["id"]
        # Warm-up, not measured: first-use costs (imports, tokenizers, connections).
        for _ in range(5):
            await stream_direct(http, upstream)
            await stream_run(http, base, assistant)
        print(
            f"{'':<26}{'first token p50/p95 ms':>26}{'[DONE] p50/p95 ms':>24}{'per second':>12}"
            f"{'CPU ms/run':>12}"
        )
        summary = []
        for label, n, c in (
            ("1 at a time", min(runs, 50), 1),
            (f"{concurrency} at once", runs, concurrency),
        ):
            # Rounds alternate direct and assistd, so that both see the machine's speed
            # (which drifts) alike; each round's added latency and rate ratio are its own.
            added: list[float] = []
            ratios: list[float] = []
            for _ in range(rounds):
                got: dict[str, tuple[float, float]] = {}
                for name, one in (
                    ("direct upstream", lambda: stream_direct(http, upstream)),
                    ("assistd run", lambda: stream_run(http, base, assistant)),
                ):
                    # CPU of the process serving the stream: the upstream's for a direct
                    # one, assistd's (the upstream's comes on top) for a run.
                    pid = pids["upstream" if name.startswith("direct") else "assistd"]
                    cpu = cpu_seconds(*pid)
                    firsts, dones, elapsed = await measure(n, c, one)
                    cpu = cpu_seconds(*pid) - cpu
                    got[name] = (pct(firsts, 50), n / elapsed)
                    print(
                        f"{name + ', ' + label:<26}"
                        f"{pct(firsts, 50):>13.1f} / {pct(firsts, 95):<10.1f}"
                        f"{pct(dones, 50):>11.1f} / {pct(dones, 95):<10.1f}"
                        f"{n / elapsed:>10.1f}{cpu * 1000 / n:>12.1f}"
                    )
                added.append(got["assistd run"][0] - got["direct upstream"][0])
                ratios.append(got["assistd run"][1] / got["direct upstream"][1])
            summary.append(
                f"{label}: first token added {statistics.median(added):.1f} ms p50, "
                f"runs/s {statistics.median(ratios):.2f}x direct (median of {rounds} "
                f"round(s): {', '.join(f'{a:.1f}' for a in added)} ms; "
                f"{', '.join(f'{r:.2f}' for r in ratios)})"
            )
        print("\n".join(summary))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--words", type=int, default=40)
    parser.add_argument("--delay-ms", type=float, default=5.0)
    parser.add_argument("--postgres", help="postgresql+asyncpg:// URL of an empty database")
    parser.add_argument("--workers", type=int, default=1, help="API processes (serve --workers)")
    parser.add_argument(
        "--rounds", type=int, default=1, help="measure each load this many times, alternating"
    )
    parser.add_argument(
        "--redis",
        metavar="URL",
        help="queue and events on this Redis: API processes with --no-executor, and "
        "--executors `assistd worker` processes",
    )
    parser.add_argument("--executors", type=int, default=2, help="worker processes (--redis)")
    parser.add_argument(
        "--profile", metavar="FILE", help="run the server under cProfile, its stats to FILE"
    )
    args = parser.parse_args()
    up_port, port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTD_")}
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as data_dir:
        try:
            upstream = start_upstream(up_port, args.words, args.delay_ms, env)
            procs.append(upstream)
            env.update(
                ASSISTD_DATA_DIR=data_dir,
                ASSISTD_LOG_LEVEL="warning",
                ASSISTD_UPSTREAM_BASE_URL=f"http://127.0.0.1:{up_port}/v1",
            )
            if args.postgres:
                env["ASSISTD_DATABASE_URL"] = args.postgres
            serve = ["serve", "--port", str(port), "--workers", str(args.workers)]
            executors: list[subprocess.Popen[bytes]] = []
            if args.redis:
                env.update(ASSISTD_REDIS_URL=args.redis, ASSISTD_REDIS_PREFIX=f"bench{port}")
                serve.append("--no-executor")
                migrate = [sys.executable, "-m", "assistd", "migrate"]
                subprocess.run(migrate, env=env, check=True, stdout=subprocess.DEVNULL)
                for _ in range(args.executors):
                    executors.append(
                        subprocess.Popen([sys.executable, "-m", "assistd", "worker"], env=env)
                    )
                procs.extend(executors)
            profile = ["-m", "cProfile", "-o", args.profile] if args.profile else []
            server = subprocess.Popen([sys.executable, *profile, "-m", "assistd", *serve], env=env)
            procs.append(server)
            wait_http(f"http://127.0.0.1:{port}/healthz", server)
            store = "PostgreSQL" if args.postgres else "SQLite"
            layout = f"{args.workers} API process(es)"
            if args.redis:
                layout += f" + {args.executors} workers, Redis"
            print(
                f"streamed runs, {store}, {layout}, upstream answer {args.words} chunks "
                f"{args.delay_ms:g} ms apart, {os.cpu_count()} cores"
            )
            asyncio.run(
                bench(
                    f"http://127.0.0.1:{port}/v1",
                    f"http://127.0.0.1:{up_port}/v1",
                    args.runs,
                    args.concurrency,
                    rounds=args.rounds,
                    pids={
                        "upstream": [upstream.pid],
                        "assistd": [server.pid, *(p.pid for p in executors)],
                    },
                )
            )
        finally:
            for proc in reversed(procs):
                # SIGINT: a clean exit, so that cProfile writes its stats.
                proc.send_signal(signal.SIGINT)
                proc.wait(timeout=60)


if __name__ == "__main__":
    main()
