"""Several real processes on one PostgreSQL: `serve --workers N` (uvicorn's processes,
which migrate at once on an empty database), and a cancel that reaches the process
executing the run, with Redis (through the bus) and without (through the lease renewal)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fake_upstream import FakeReply, FakeUpstream, text_reply
from tests.redis_support import REDIS_URL, drop_keys, require_redis
from tests.scale.cluster import KEY, Process, assistd, base_env, free_port, sdk


def slow_or_quick(body: Any) -> FakeReply:
    last = body["messages"][-1]
    if "slow" in str(last.get("content")):
        return text_reply(" ".join(f"w{i}" for i in range(400)), delay=0.05)
    return text_reply("Quick answer.")


def until_text(api: Process, thread_id: str, run_id: str) -> None:
    """Wait for the run's first text on a stream attached to it on ``api`` (the process
    that created it: its own bus holds the run's events without Redis). Its message is
    stored before the first token, so its being listed does not say that text came."""
    url = f"http://127.0.0.1:{api.port}/v1/threads/{thread_id}/runs/{run_id}"
    headers = {"Authorization": f"Bearer {KEY}", "OpenAI-Beta": "assistants=v2"}
    with httpx.stream("GET", url, params={"stream": "true"}, headers=headers, timeout=30) as got:
        got.raise_for_status()
        for line in got.iter_lines():
            if line == "event: thread.message.delta":
                return
    pytest.fail("the run's stream ended with no text")


def test_serve_workers_runs_several_api_processes_on_one_database(
    tmp_path: Path, postgres_url: str, started: list[Process]
) -> None:
    with FakeUpstream(responder=slow_or_quick) as upstream:
        env = base_env(
            tmp_path / "data",
            ASSISTD_DATABASE_URL=postgres_url,
            ASSISTD_UPSTREAM_BASE_URL=upstream.base_url,
        )
        # An empty database: both processes migrate at start-up, one after the other.
        api = assistd("api", ["serve", "--workers", "2"], env, tmp_path)
        started.append(api.start())
        api.wait_ready()
        with sdk(api) as client:
            assistant = client.beta.assistants.create(model="gpt-4o")
            runs = [
                client.beta.threads.create_and_run_poll(
                    assistant_id=assistant.id,
                    thread={"messages": [{"role": "user", "content": f"quick {i}"}]},
                    poll_interval_ms=50,
                )
                for i in range(12)
            ]
        assert [r.status for r in runs] == ["completed"] * 12
        assert "Traceback" not in api.output()


@pytest.mark.parametrize("with_redis", [False, True], ids=["lease-renewal", "redis"])
def test_a_cancel_sent_to_another_process_stops_the_run(
    tmp_path: Path, postgres_url: str, started: list[Process], with_redis: bool
) -> None:
    prefix = "assistd-cancel-" + str(free_port())
    extra = {"ASSISTD_REDIS_URL": REDIS_URL, "ASSISTD_REDIS_PREFIX": prefix} if with_redis else {}
    if with_redis:
        require_redis()
    try:
        with FakeUpstream(responder=slow_or_quick) as upstream:
            env = base_env(
                tmp_path / "data",
                ASSISTD_DATABASE_URL=postgres_url,
                ASSISTD_UPSTREAM_BASE_URL=upstream.base_url,
                **extra,
            )
            migrate = assistd("migrate", ["migrate"], env, tmp_path).start()
            assert migrate.proc is not None
            assert migrate.proc.wait(timeout=120) == 0
            apis = [assistd(f"api{i}", ["serve"], env, tmp_path) for i in range(2)]
            for proc in apis:
                started.append(proc.start())
            for proc in apis:
                proc.wait_ready()
            with sdk(apis[0]) as first, sdk(apis[1]) as second:
                assistant = first.beta.assistants.create(model="gpt-4o")
                run = first.beta.threads.create_and_run(
                    assistant_id=assistant.id,
                    thread={"messages": [{"role": "user", "content": "slow"}]},
                )
                # Cancel once the answer streams (its message announced, in progress).
                until_text(apis[0], run.thread_id, run.id)
                deadline = time.monotonic() + 30
                cancelling = second.beta.threads.runs.cancel(run.id, thread_id=run.thread_id)
                assert cancelling.status == "cancelling"
                # The run's 400 words take 20 s: it ends cancelled long before, whichever
                # process executes it.
                while run.status in ("queued", "in_progress", "cancelling"):
                    assert time.monotonic() < deadline, "the cancel never reached the worker"
                    time.sleep(0.05)
                    run = second.beta.threads.runs.retrieve(run.id, thread_id=run.thread_id)
                assert run.status == "cancelled"
                (message,) = [
                    m
                    for m in second.beta.threads.messages.list(run.thread_id).data
                    if m.role == "assistant"
                ]
                assert message.status == "incomplete"
                assert message.incomplete_details is not None
                assert message.incomplete_details.reason == "run_cancelled"
    finally:
        if with_redis:
            drop_keys(prefix)
