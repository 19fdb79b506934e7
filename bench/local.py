"""The embedded model through assistd's endpoints against the same model through the bare
runtime, in the same run, on the same machine.

1. bare: xllamacpp's ``Server`` called in this process (no HTTP, no assistd), streamed;
2. gateway: ``POST /v1/chat/completions`` with ``stream: true`` on `assistd serve`;
3. run: ``POST /v1/threads/runs`` with ``stream: true`` (a new thread per run).

Every request is the same prompt with temperature 0 and the same ``max_tokens``, one at a
time, the three paths interleaved so that other load on the machine weighs on each alike.
For each: time to the first token, prompt tokens/s (prompt tokens / time to first
token) and generation tokens/s (tokens after the first / time after the first). The ratio
column is assistd's median over the bare runtime's (1.0 = no overhead). Both models stay
loaded, but only one request runs at a time, so they never share the cores.

    .venv/bin/python bench/local.py [--requests 8] [--max-tokens 128]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import httpx
from runs import free_port, wait_http  # bench/ is on sys.path when a script here runs

from assistd.backends.local_model import BUNDLED_FILE, BUNDLED_PACKAGE, package_file

# Each request starts with its own number, so llama.cpp's prompt cache (which both sides
# have) cannot skip the prompt and prompt processing is measured every time.
SYSTEM = (
    "Session {n}. "
    + (
        "You are a patient teacher. Explain things step by step, with a short example for each "
        "idea, and keep a friendly tone. "
    )
    * 8
)
QUESTION = "Explain how a bicycle stays upright while it moves, in detail."


@dataclass
class Sample:
    ttft: float
    total: float
    prompt_tokens: int
    completion_tokens: int

    @property
    def prompt_rate(self) -> float:
        return self.prompt_tokens / self.ttft

    @property
    def gen_rate(self) -> float:
        return max(self.completion_tokens - 1, 1) / max(self.total - self.ttft, 1e-9)


def bare_server(threads: int) -> Any:
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(package_file(BUNDLED_PACKAGE, BUNDLED_FILE))
    params.n_ctx = 8192 * 2
    params.n_parallel = 2
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.verbosity = 1
    return xllamacpp.Server(params)


def bare(server: Any, n: int, max_tokens: int) -> Sample:
    body = _chat_body(n, max_tokens)
    started = time.perf_counter()
    first = 0.0
    usage: dict[str, Any] = {}

    def on_chunk(chunk: dict[str, Any]) -> bool:
        nonlocal first, usage
        for choice in chunk.get("choices") or []:
            if (choice.get("delta") or {}).get("content") and not first:
                first = time.perf_counter() - started
        usage = chunk.get("usage") or usage
        return False

    server.handle_chat_completions(body, on_chunk)
    total = time.perf_counter() - started
    return Sample(first, total, usage["prompt_tokens"], usage["completion_tokens"])


def _chat_body(n: int, max_tokens: int) -> dict[str, Any]:
    return {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": SYSTEM.format(n=n)},
            {"role": "user", "content": QUESTION},
        ],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def gateway(http: httpx.Client, n: int, max_tokens: int) -> Sample:
    started = time.perf_counter()
    first = 0.0
    usage: dict[str, Any] = {}
    with http.stream("POST", "/chat/completions", json=_chat_body(n, max_tokens)) as response:
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            for choice in chunk.get("choices") or []:
                if (choice.get("delta") or {}).get("content") and not first:
                    first = time.perf_counter() - started
            usage = chunk.get("usage") or usage
    total = time.perf_counter() - started
    return Sample(first, total, usage["prompt_tokens"], usage["completion_tokens"])


def run(http: httpx.Client, assistant: str, n: int, max_tokens: int) -> Sample:
    body = {
        "assistant_id": assistant,
        "stream": True,
        "instructions": SYSTEM.format(n=n),
        # Runs take at least 256 (OpenAI's minimum); generation rates are per token.
        "max_completion_tokens": max(max_tokens, 256),
        "thread": {"messages": [{"role": "user", "content": QUESTION}]},
    }
    started = time.perf_counter()
    first = 0.0
    usage: dict[str, Any] = {}
    event = ""
    with http.stream("POST", "/threads/runs", json=body) as response:
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: {"):
                if event == "thread.message.delta" and not first:
                    first = time.perf_counter() - started
                elif event in ("thread.run.completed", "thread.run.incomplete"):
                    usage = json.loads(line[6:])["usage"]
    total = time.perf_counter() - started
    return Sample(first, total, usage["prompt_tokens"], usage["completion_tokens"])


def row(name: str, samples: list[Sample], base: list[Sample] | None) -> str:
    def med(values: list[float]) -> float:
        return statistics.median(values)

    ttft = med([s.ttft for s in samples]) * 1000
    prompt = med([s.prompt_rate for s in samples])
    gen = med([s.gen_rate for s in samples])
    tokens = f"{samples[0].prompt_tokens}+{samples[0].completion_tokens}"
    ratio = ""
    if base:
        ratio = (
            f" | {med([s.ttft for s in base]) * 1000 / ttft:.2f}"
            f" | {prompt / med([s.prompt_rate for s in base]):.2f}"
            f" | {gen / med([s.gen_rate for s in base]):.2f}"
        )
    else:
        ratio = " | 1.00 | 1.00 | 1.00"
    return f"| {name} | {tokens} | {ttft:.0f} | {prompt:.0f} | {gen:.1f}{ratio} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args()
    threads = os.cpu_count() or 1
    server = bare_server(threads)
    base: list[Sample] = []
    via_gateway: list[Sample] = []
    via_runs: list[Sample] = []
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTD_")}
    with tempfile.TemporaryDirectory() as data:
        env.update(ASSISTD_DATA_DIR=data, ASSISTD_LOG_LEVEL="warning")
        process = subprocess.Popen(
            [sys.executable, "-m", "assistd", "serve", "--port", str(port)], env=env
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz", process)
            with httpx.Client(base_url=f"http://127.0.0.1:{port}/v1", timeout=600) as http:
                gateway(http, 10_000, 8)  # loads the model
                bare(server, 10_001, 8)
                assistant = http.post(
                    "/assistants", json={"model": "gpt-4o", "temperature": 0}
                ).json()["id"]
                # Interleaved, one request at a time: whatever else loads the machine
                # weighs on the three paths alike.
                for n in range(args.requests):
                    base.append(bare(server, n, args.max_tokens))
                    via_gateway.append(gateway(http, 1_000 + n, args.max_tokens))
                    via_runs.append(run(http, assistant, 2_000 + n, args.max_tokens))
        finally:
            process.terminate()
            process.wait(timeout=30)

    print(
        f"SmolLM2-135M-Instruct Q4_1, {threads} threads, {args.requests} requests one at a "
        "time, temperature 0; medians"
    )
    print(
        "| path | prompt+completion tokens | first token ms | prompt tok/s | generation tok/s "
        "| ratio first token | ratio prompt | ratio generation |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print(row("bare xllamacpp", base, None))
    print(row("assistd /v1/chat/completions", via_gateway, base))
    print(row("assistd streamed run", via_runs, base))


if __name__ == "__main__":
    main()
