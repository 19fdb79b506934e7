"""Throughput of the local embedder (all-MiniLM-L6-v2, int8 ONNX), directly and over HTTP.

Embeds PASSAGES synthetic passages of 100-200 words (most reach the model's 256-token
limit) in requests of BATCH passages:

- direct: ``LocalEmbedder.embed`` in this process, with the shipped batching (texts sorted
  by length, at most 1024 padded tokens per onnxruntime call) and with one text per call,
  on the passages and on as many short queries (5-30 words);
- HTTP: ``POST /v1/embeddings`` on `assistd serve` started as a subprocess on a free
  loopback port (SQLite in a temporary data dir, no upstream), base64 and float answers,
  1 and CONCURRENCY clients.

Prints texts/s and the median request latency, the best of --repeat rounds. The load
generator shares this machine's cores with the server, and onnxruntime uses all of them.

    .venv/bin/python bench/embeddings.py [--passages 512] [--batch 32] [--concurrency 4]
                                         [--repeat 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable

import httpx

from assistd.embeddings import local
from assistd.embeddings.local import MODEL_NAME, LocalEmbedder

_VOCABULARY = (
    "the of and to in is that it was for on are as with they at be this have from or one "
    "had by word but not what all were when your can said there use an each which she do "
    "how their if will up other about out many then them these so some her would make like "
    "him into time has look two more write go see number no way could people my than first "
    "water been call who oil its now find long down day did get come made may part search "
    "vector store file assistant thread message run embedding model server request answer"
)
WORDS = _VOCABULARY.split()


def passages(count: int, low: int = 100, high: int = 200, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    made = []
    for _ in range(count):
        words = [rng.choice(WORDS) for _ in range(rng.randint(low, high))]
        made.append(" ".join(words).capitalize() + ".")
    return made


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(data_dir: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTD_")}
    # Only the embedder: the bundled chat model would load at start-up and take cores.
    env.update(
        ASSISTD_DATA_DIR=data_dir, ASSISTD_LOG_LEVEL="warning", ASSISTD_EMBEDDED_MODEL="false"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "assistd", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return proc, f"http://127.0.0.1:{port}/v1"
        except httpx.TransportError:
            time.sleep(0.1)
    proc.terminate()
    raise RuntimeError("server did not start")


async def measure(
    name: str,
    requests: list[list[str]],
    concurrency: int,
    call: Callable[[list[str]], Awaitable[None]],
    repeat: int,
) -> None:
    """Run every request ``repeat`` times over; print the best round's texts/s and p50."""
    count = sum(len(r) for r in requests)
    best: tuple[float, list[float]] | None = None
    for _ in range(max(1, repeat)):
        latencies: list[float] = []
        pending = iter(requests)

        async def worker() -> None:
            for batch in pending:  # noqa: B023 - each round's workers share its iterator
                started = time.perf_counter()
                await call(batch)
                latencies.append(time.perf_counter() - started)  # noqa: B023

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        if best is None or elapsed < best[0]:
            best = (elapsed, latencies)
    assert best is not None
    median = statistics.median(best[1]) * 1000
    print(f"{name:<52} {count / best[0]:8.1f} texts/s   p50 {median:7.1f} ms/request")


def chunked(texts: list[str], batch: int) -> list[list[str]]:
    return [texts[i : i + batch] for i in range(0, len(texts), batch)]


async def direct(sets: dict[str, list[str]], batch: int, repeat: int) -> None:
    embedder = LocalEmbedder()
    await embedder.embed(["load and warm up"])

    async def call(chunk: list[str]) -> None:
        await embedder.embed(chunk)

    for label, texts in sets.items():
        await measure(f"direct, {label}, batched", chunked(texts, batch), 1, call, repeat)
        budget, size = local.BATCH_TOKENS, local.BATCH_SIZE
        local.BATCH_TOKENS, local.BATCH_SIZE = 0, 1  # one text per onnxruntime call
        try:
            name = f"direct, {label}, one text per call"
            await measure(name, chunked(texts, batch), 1, call, repeat)
        finally:
            local.BATCH_TOKENS, local.BATCH_SIZE = budget, size
    await embedder.aclose()


async def over_http(
    base_url: str, texts: list[str], batch: int, concurrency: int, repeat: int
) -> None:
    requests = chunked(texts, batch)
    headers = {"Authorization": "Bearer bench"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=300) as http:

        def caller(encoding_format: str) -> Callable[[list[str]], Awaitable[None]]:
            async def call(chunk: list[str]) -> None:
                body = {"model": MODEL_NAME, "input": chunk, "encoding_format": encoding_format}
                response = await http.post("/embeddings", json=body)
                response.raise_for_status()
                assert len(response.json()["data"]) == len(chunk)

            return call

        await caller("base64")(texts[:batch])  # the server loads the model on first use
        for clients in sorted({1, concurrency}):
            for encoding_format in ("base64", "float"):
                name = f"HTTP, passages, {encoding_format}, {clients} client(s)"
                await measure(name, requests, clients, caller(encoding_format), repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--passages", type=int, default=512)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    texts = passages(args.passages)
    queries = passages(args.passages, 5, 30, seed=11)
    print(
        f"{MODEL_NAME} int8 ONNX, {args.passages} passages of 100-200 words and "
        f"{args.passages} queries of 5-30 words, {args.batch} per request, "
        f"{os.cpu_count()} cores, best of {args.repeat}"
    )
    asyncio.run(direct({"passages": texts, "queries": queries}, args.batch, args.repeat))
    with tempfile.TemporaryDirectory() as data_dir:
        proc, base_url = start_server(data_dir)
        try:
            asyncio.run(over_http(base_url, texts, args.batch, args.concurrency, args.repeat))
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
