"""A minimal OpenAI-compatible streaming upstream for benchmarks (not for tests).

Every chat completion streams the same answer, WORDS words, one chunk per word, with
DELAY_MS between chunks, then usage and [DONE]. Run it as its own process so it does not
share an interpreter with the load generator:

    python bench/upstream.py --port 9100 --words 40 --delay-ms 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

import uvicorn


def make_app(words: int, delay: float) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )

        async def chunk(payload: dict[str, Any]) -> None:
            data = f"data: {json.dumps(payload)}\n\n".encode()
            await send({"type": "http.response.body", "body": data, "more_body": True})

        base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "model": "bench"}
        for i in range(words):
            if delay:
                await asyncio.sleep(delay)
            delta = {"content": f"word{i} "} if i else {"role": "assistant", "content": "word0 "}
            await chunk({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
        await chunk({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        usage = {"prompt_tokens": 20, "completion_tokens": words, "total_tokens": 20 + words}
        await chunk({**base, "choices": [], "usage": usage})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--words", type=int, default=40)
    parser.add_argument("--delay-ms", type=float, default=5.0)
    args = parser.parse_args()
    uvicorn.run(
        make_app(args.words, args.delay_ms / 1000),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
