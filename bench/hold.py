"""Many streamed runs held open at once: errors and the server's memory.

Starts the benchmark upstream (bench/upstream.py) answering slowly (by default 120 chunks
1 s apart: each run streams for two minutes) and `assistd serve` pointed at it, then opens
N streamed runs at once (`POST /v1/threads/runs`, `stream: true`) and keeps them all open
until they end. Prints the runs that did not complete with `[DONE]` (errors), how long
opening them took, and the server's resident memory (VmRSS of its process) while they
were open.

    .venv/bin/python bench/hold.py [--runs 1000] [--words 120 --delay-ms 1000] [--postgres URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from runs import free_port, start_upstream, wait_http


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def hold(base: str, runs: int, pid: int) -> None:
    headers = {"Authorization": "Bearer bench", "OpenAI-Beta": "assistants=v2"}
    limits = httpx.Limits(max_connections=runs + 10, max_keepalive_connections=runs)
    timeout = httpx.Timeout(600, connect=60)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=timeout) as http:
        created = await http.post(f"{base}/assistants", json={"model": "bench-model"})
        created.raise_for_status()
        assistant = created.json()["id"]
        opened = 0
        errors: list[str] = []
        completed = 0
        body = {
            "assistant_id": assistant,
            "stream": True,
            "thread": {"messages": [{"role": "user", "content": "hi"}]},
        }

        async def one() -> None:
            nonlocal opened, completed
            try:
                async with http.stream("POST", f"{base}/threads/runs", json=body) as response:
                    response.raise_for_status()
                    opened += 1
                    ended = ""
                    async for line in response.aiter_lines():
                        if line.startswith("event: thread.run."):
                            ended = line
                        if line == "data: [DONE]":
                            break
                    if ended == "event: thread.run.completed":
                        completed += 1
                    else:
                        errors.append(f"ended with {ended!r}")
            except Exception as exc:  # counted and shown, not raised: every run is measured
                errors.append(repr(exc))

        started = time.perf_counter()
        tasks = [asyncio.create_task(one()) for _ in range(runs)]
        peak = rss_mib(pid)
        all_open = 0.0
        while not all(t.done() for t in tasks):
            await asyncio.sleep(1)
            peak = max(peak, rss_mib(pid))
            if not all_open and opened == runs:
                all_open = time.perf_counter() - started
                print(f"all {runs} streams open after {all_open:.1f} s, server RSS {peak:.0f} MiB")
        await asyncio.gather(*tasks)
        print(
            f"{runs} streamed runs held {time.perf_counter() - started:.0f} s: "
            f"{completed} completed, {len(errors)} errors; server RSS peak {peak:.0f} MiB, "
            f"at the end {rss_mib(pid):.0f} MiB"
        )
        for error in sorted(set(errors))[:10]:
            print("  error:", error)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--words", type=int, default=120)
    parser.add_argument("--delay-ms", type=float, default=1000.0)
    parser.add_argument("--postgres", help="postgresql+asyncpg:// URL of an empty database")
    args = parser.parse_args()
    up_port, port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTD_")}
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as data_dir:
        try:
            procs.append(start_upstream(up_port, args.words, args.delay_ms, env))
            env.update(
                ASSISTD_DATA_DIR=data_dir,
                ASSISTD_LOG_LEVEL="warning",
                ASSISTD_UPSTREAM_BASE_URL=f"http://127.0.0.1:{up_port}/v1",
                # Every run executes at once: none waits for a slot.
                ASSISTD_WORKER_CONCURRENCY=str(args.runs),
            )
            if args.postgres:
                env["ASSISTD_DATABASE_URL"] = args.postgres
            server = subprocess.Popen(
                [sys.executable, "-m", "assistd", "serve", "--port", str(port)], env=env
            )
            procs.append(server)
            wait_http(f"http://127.0.0.1:{port}/healthz", server)
            store = "PostgreSQL" if args.postgres else "SQLite"
            print(
                f"{args.runs} streamed runs at once, {store}, upstream answer {args.words} "
                f"chunks {args.delay_ms:g} ms apart, {os.cpu_count()} cores"
            )
            asyncio.run(hold(f"http://127.0.0.1:{port}/v1", args.runs, server.pid))
        finally:
            for proc in reversed(procs):
                proc.terminate()
                proc.wait(timeout=30)


if __name__ == "__main__":
    main()
