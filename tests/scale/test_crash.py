"""Crash tests with real processes: API and worker processes on PostgreSQL + Redis killed
with ``kill -9`` while 50 streamed runs are in flight; the single SQLite process killed
and restarted; Redis itself killed and restarted. Every run must end (or wait for tool
outputs, which the clients then submit), no message may be lost or duplicated, and a
client whose API process died resumes on another with ``Last-Event-ID`` and receives
every event exactly once."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fake_upstream import FakeUpstream
from tests.redis_support import REDIS_URL, drop_keys, require_redis
from tests.scale.cluster import (
    END,
    LEASE_SECONDS,
    SCENARIOS,
    WORDS,
    Process,
    RunClient,
    assistd,
    base_env,
    dump,
    free_port,
    full_log,
    redis_server,
    sdk,
    start_clients,
)

RUNS = 50
ENDING = {f"thread.run.{status}" for status in (*END, "requires_action")}
# Once the last process is killed, every run must end within the lease plus this.
GRACE = 10 + 5  # the 10 s, plus the longest scenario's own work (~4 s)


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    from tests.scale.cluster import respond

    with FakeUpstream(responder=respond) as fake:
        yield fake


def _assistant(api: Process) -> str:
    with sdk(api, max_retries=2) as client:
        return client.beta.assistants.create(
            model="gpt-4o",
            tools=[
                {"type": "code_interpreter"},
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "parameters": {
                            "type": "object",
                            "properties": {"city": {"type": "string"}},
                        },
                    },
                },
            ],
        ).id


def _launch(clients: list[RunClient], deadline: float) -> None:
    start_clients(clients, deadline)
    # Kills come once every run exists (each client knows its run and thread ids).
    until = time.monotonic() + 60
    while not all(c.run_id or c.error for c in clients):
        assert time.monotonic() < until, "runs were not all created"
        time.sleep(0.05)


def _wait(clients: list[RunClient], deadline: float) -> None:
    while any(c.frames[-1:] == [] or c.frames[-1].event != "done" or _waiting(c) for c in clients):
        if any(c.error for c in clients) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    errors = [c.error for c in clients if c.error]
    assert not errors, errors[0]


def _waiting(client: RunClient) -> bool:
    return len(client.frames) > 1 and client.frames[-2].event == "thread.run.requires_action"


def _check(clients: list[RunClient], api: Process, *, exactly_once: bool = True) -> None:
    """Every run ended; its messages are in the store once each; each client received
    every event of its run's log exactly once, in order."""
    with sdk(api, max_retries=2) as client:
        for c in clients:
            run = client.beta.threads.runs.retrieve(c.run_id, thread_id=c.thread_id)
            assert run.status in END, (c.scenario, run.status)
            if c.scenario != "text" or run.status != "completed":
                # A run cut off mid-stream fails as interrupted; its partial message stays.
                assert run.status in ("completed", "failed"), (run.status, run.last_error)
            messages = client.beta.threads.messages.list(c.thread_id, order="asc").data
            ids = [m.id for m in messages]
            assert len(ids) == len(set(ids))
            assert messages[0].role == "user"
            steps = client.beta.threads.runs.steps.list(c.run_id, thread_id=c.thread_id).data
            made = [
                s.step_details.message_creation.message_id
                for s in steps
                if s.step_details.type == "message_creation"
            ]
            assistant = [m.id for m in messages if m.role == "assistant"]
            assert sorted(made) == sorted(assistant), (made, assistant)
            announced = {f.data["id"] for f in c.frames if f.event == "thread.message.created"}
            assert announced <= set(assistant), "a streamed message is missing from the store"
            for m in messages:
                if m.role == "assistant" and m.status == "completed" and c.scenario == "text":
                    assert m.content[0].text.value == WORDS  # type: ignore[union-attr]
            received = [f for f in c.frames if f.event != "done"]
            logged = [f for f in received if f.id is not None]
            if exactly_once:
                log = full_log(api, c.thread_id, c.run_id)
                assert logged == log, (
                    f"{c.run_id}\n--- received\n{dump(received)}\n--- log\n{dump(log)}"
                )
                assert [f.id for f in logged] == [f.id for f in log]
            seen = [f.id for f in logged]
            assert len(seen) == len(set(seen)), "an event was delivered twice"
            # A process killed between a commit and the event announcing it leaves that
            # event out of the log: the stream then sends the run's stored state, without
            # an id, and only as the end of a stream.
            for k, frame in enumerate(c.frames):
                if frame.id is None and frame.event != "done":
                    assert frame.event in ENDING, frame.event
                    if frame.event != "thread.run.requires_action":  # its [DONE] was dropped
                        assert c.frames[k + 1].event == "done"


def test_killing_a_worker_and_an_api_process_loses_no_run(
    tmp_path: Path, postgres_url: str, upstream: FakeUpstream, started: list[Process]
) -> None:
    require_redis()
    prefix = "assistd-crash-" + str(free_port())
    env = base_env(
        tmp_path / "data",
        ASSISTD_DATABASE_URL=postgres_url,
        ASSISTD_REDIS_URL=REDIS_URL,
        ASSISTD_REDIS_PREFIX=prefix,
        ASSISTD_UPSTREAM_BASE_URL=upstream.base_url,
        ASSISTD_WORKER_CONCURRENCY="15",  # some runs wait in the queue, unclaimed
    )
    try:
        migrate = assistd("migrate", ["migrate"], env, tmp_path)
        migrate.start()
        assert migrate.proc is not None
        assert migrate.proc.wait(timeout=120) == 0, migrate.output()
        apis = [assistd(f"api{i}", ["serve", "--no-executor"], env, tmp_path) for i in range(2)]
        workers = [assistd(f"worker{i}", ["worker"], env, tmp_path) for i in range(2)]
        for proc in [*apis, *workers]:
            started.append(proc.start())
        for proc in [*apis, *workers]:
            proc.wait_ready()
        assistant_id = _assistant(apis[1])
        rng = random.Random()
        seed = rng.randrange(1 << 30)
        rng.seed(seed)
        clients = [
            RunClient(apis, assistant_id, SCENARIOS[i % len(SCENARIOS)], first_api=i % 2)
            for i in range(RUNS)
        ]
        deadline = time.monotonic() + 120
        _launch(clients, deadline)
        time.sleep(rng.uniform(0.2, 1.5))
        workers[0].kill()
        time.sleep(rng.uniform(0.2, 1.0))
        apis[0].kill()
        killed = time.monotonic()
        _wait(clients, killed + LEASE_SECONDS + GRACE)
        assert all(c.frames[-1].event == "done" for c in clients), f"seed {seed}"
        _check(clients, apis[1])
        # The clients of the dead API process came back through the other one.
        assert any(c.reconnects for c in clients if c.first_api == 0), f"seed {seed}"
    finally:
        drop_keys(prefix)


def test_killing_the_single_sqlite_process_and_restarting_it(
    tmp_path: Path, upstream: FakeUpstream, started: list[Process]
) -> None:
    require_redis()
    prefix = "assistd-crash-" + str(free_port())
    env = base_env(
        tmp_path / "data",
        ASSISTD_REDIS_URL=REDIS_URL,
        ASSISTD_REDIS_PREFIX=prefix,
        ASSISTD_UPSTREAM_BASE_URL=upstream.base_url,
    )
    try:
        api = assistd("single", ["serve"], env, tmp_path)
        started.append(api.start())
        api.wait_ready()
        assistant_id = _assistant(api)
        clients = [
            RunClient([api], assistant_id, SCENARIOS[i % len(SCENARIOS)], first_api=0)
            for i in range(RUNS)
        ]
        deadline = time.monotonic() + 120
        _launch(clients, deadline)
        time.sleep(random.uniform(0.3, 1.5))
        api.kill()
        api.start()  # same port, same database: start-up recovery ends what was cut off
        api.wait_ready()
        _wait(clients, time.monotonic() + LEASE_SECONDS + GRACE)
        assert all(c.frames[-1].event == "done" for c in clients)
        _check(clients, api)
        assert all(c.reconnects for c in clients if c.scenario == "text")
    finally:
        drop_keys(prefix)


def test_a_redis_restart_mid_run_loses_no_run(
    tmp_path: Path, postgres_url: str, upstream: FakeUpstream, started: list[Process]
) -> None:
    redis_port = free_port()
    redis = redis_server(tmp_path, redis_port)
    started.append(redis.start())
    redis.wait_ready()
    env = base_env(
        tmp_path / "data",
        ASSISTD_DATABASE_URL=postgres_url,
        ASSISTD_REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        ASSISTD_UPSTREAM_BASE_URL=upstream.base_url,
        ASSISTD_WORKER_CONCURRENCY="10",
    )
    api = assistd("api", ["serve", "--no-executor"], env, tmp_path)
    worker = assistd("worker", ["worker"], env, tmp_path)
    for proc in (api, worker):
        started.append(proc.start())
    for proc in (api, worker):
        proc.wait_ready()
    assistant_id = _assistant(api)
    clients = [
        RunClient([api], assistant_id, SCENARIOS[i % len(SCENARIOS)], first_api=0)
        for i in range(30)
    ]
    deadline = time.monotonic() + 120
    _launch(clients, deadline)
    time.sleep(0.5)
    # Redis loses everything (no persistence): queued runs, pending entries, event logs.
    redis.kill()
    time.sleep(1)
    redis.start()
    redis.wait_ready()
    _wait(clients, time.monotonic() + LEASE_SECONDS + GRACE + 10)
    # The database is the source of truth: every run ends; events published while Redis
    # was down are gone, so streams end on the run's stored state instead.
    _check(clients, api, exactly_once=False)
