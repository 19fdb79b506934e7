"""Usage accounting (``GET /v1/usage``, ``assistd usage``), project token budgets and
per-key request rate limits."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import openai
import pytest

from assistd.backends.base import Usage
from assistd.backends.scripted import text_reply, tool_reply
from assistd.cli import main as cli_main
from assistd.config import Settings
from assistd.services.ratelimit import LocalBuckets
from tests.api.run_support import fn_tool, new_model, wait_run
from tests.conftest import ClientFactory, LiveServer, raw_client

USER: Any = [{"role": "user", "content": "What is the weather in Paris?"}]


def utc_today() -> str:
    return datetime.now(UTC).date().isoformat()


def usage_rows(http: httpx.Client, **params: str) -> list[dict[str, Any]]:
    response = http.get("/usage", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list"
    rows: list[dict[str, Any]] = body["data"]
    for row in rows:
        assert set(row) == {
            "object",
            "date",
            "model",
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
            "requests",
        }
        assert row["object"] == "usage.daily"
        assert row["total_tokens"] == row["prompt_tokens"] + row["completion_tokens"]
    return rows


def two_turn_run(client: openai.OpenAI, server: LiveServer, model: str) -> None:
    """A run whose model calls a function (80 + 15 tokens), then answers (21 + 9)."""
    server.scripted.queue(
        tool_reply(("get_weather", {"city": "Paris"}), usage=Usage(80, 15)),
        text_reply("It is 18°C and sunny in Paris.", usage=Usage(21, 9)),
        model=model,
    )
    tools: Any = [fn_tool("get_weather", city="string")]
    assistant = client.beta.assistants.create(model=model, tools=tools)
    thread = client.beta.threads.create(messages=USER)
    run = client.beta.threads.runs.create(thread.id, assistant_id=assistant.id)
    run = wait_run(client, run, {"requires_action"})
    assert run.required_action is not None
    (call,) = run.required_action.submit_tool_outputs.tool_calls
    final = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread.id,
        tool_outputs=[{"tool_call_id": call.id, "output": "18C"}],
    )
    assert final.status == "completed"
    assert final.usage is not None
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (101, 24)


def test_runs_and_chat_completions_are_counted_per_model_and_day(
    client: openai.OpenAI, server: LiveServer, http: httpx.Client, make_client: ClientFactory
) -> None:
    model, other = new_model(), new_model()
    day_before = utc_today()
    two_turn_run(client, server, model)
    # A non-streamed completion of the run's model, and a streamed one of another model
    # without include_usage: both counted all the same.
    server.scripted.queue(text_reply("Sunny.", usage=Usage(11, 4)), model=model)
    client.chat.completions.create(model=model, messages=USER)
    server.scripted.queue(text_reply("Mild.", usage=Usage(9, 6)), model=other)
    stream = client.chat.completions.create(model=other, messages=USER, stream=True)
    with stream:
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Mild."
    day_after = utc_today()

    rows = usage_rows(http)
    assert {r["date"] for r in rows} <= {day_before, day_after}
    by_model = {r["model"]: r for r in rows}
    assert set(by_model) == {model, other}
    # The run's two turns (80+15, 21+9) and the completion (11+4), each counted once.
    assert by_model[model]["prompt_tokens"] == 112
    assert by_model[model]["completion_tokens"] == 28
    assert by_model[model]["requests"] == 3
    assert by_model[other]["prompt_tokens"] == 9
    assert by_model[other]["completion_tokens"] == 6
    assert by_model[other]["requests"] == 1

    # Filters: by model, by date range.
    (only,) = usage_rows(http, model=other)
    assert only["model"] == other
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert usage_rows(http, start_date=tomorrow) == []
    assert len(usage_rows(http, start_date=day_before, end_date=day_after)) == 2

    # Another project never sees this one's usage (and has none of its own).
    stranger = make_client()
    with raw_client(server, stranger.api_key) as other_http:
        assert usage_rows(other_http) == []


def test_usage_dates_are_validated(http: httpx.Client) -> None:
    for param in ("start_date", "end_date"):
        response = http.get("/usage", params={param: "2024-13-45"})
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["param"] == param
        assert error["type"] == "invalid_request_error"
    response = http.get("/usage", params={"start_date": "2024-05-02", "end_date": "2024-05-01"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "end_date"


def test_cli_prints_the_same_numbers(
    client: openai.OpenAI,
    server: LiveServer,
    http: httpx.Client,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = new_model()
    two_turn_run(client, server, model)
    project = server.call(server.services.auth.project_for(f"Bearer {client.api_key}"))
    (row,) = usage_rows(http)

    for name in [n for n in os.environ if n.startswith("ASSISTD_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("ASSISTD_DATA_DIR", str(server.settings.data_dir))
    monkeypatch.setenv("ASSISTD_LOG_LEVEL", "warning")
    if server.settings.database_url:
        monkeypatch.setenv("ASSISTD_DATABASE_URL", server.settings.database_url)

    assert cli_main(["usage", "--project", project, "--json"]) == 0
    (printed,) = json.loads(capsys.readouterr().out)
    assert printed == {
        "date": row["date"],
        "project": project,
        "model": model,
        "prompt_tokens": 101,
        "completion_tokens": 24,
        "total_tokens": 125,
        "requests": 2,
    }

    assert cli_main(["usage", "--project", project, "--since", row["date"]]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "DATE",
        "PROJECT",
        "MODEL",
        "PROMPT",
        "COMPLETION",
        "TOTAL",
        "REQUESTS",
    ]
    assert lines[1].split() == [row["date"], project, model, "101", "24", "125", "2"]
    assert lines[2].split() == ["total", "101", "24", "125", "2"]

    # A range after today: nothing but the header and a zero total.
    later = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
    assert cli_main(["usage", "--project", project, "--since", later, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


# ---- budgets -----------------------------------------------------------------------------

BUDGET = 100


@pytest.fixture(scope="module")
def budgeted(
    backend: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, str]]:
    """A server where one project may use ``BUDGET`` tokens a month."""
    project = "proj_budget_" + secrets.token_hex(4)
    settings = backend.model_copy(
        update={
            "data_dir": tmp_path_factory.mktemp("budget"),
            "project_token_budgets": {project: BUDGET},
        }
    )
    live = LiveServer(settings).start()
    try:
        yield live, project
    finally:
        live.stop()


def sdk(live: LiveServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=live.base_url, api_key=key, max_retries=0, _strict_response_validation=True
    )


def assert_quota_error(exc: pytest.ExceptionInfo[openai.RateLimitError]) -> None:
    assert exc.value.status_code == 429
    assert exc.value.body == {
        "message": "You exceeded your current quota, please check your plan and billing "
        "details. For more information on this error, read the docs: "
        "https://platform.openai.com/docs/guides/error-codes/api-errors.",
        "type": "insufficient_quota",
        "param": None,
        "code": "insufficient_quota",
    }
    assert exc.value.code == "insufficient_quota"
    assert exc.value.type == "insufficient_quota"


def test_spent_budget_refuses_new_runs_and_completions(
    budgeted: tuple[LiveServer, str],
) -> None:
    live, project = budgeted
    model = new_model()
    client = sdk(live, live.new_key(project))
    # A run that waits for a tool output: in flight when the budget runs out.
    live.scripted.queue(
        tool_reply(("get_weather", {"city": "Paris"}), usage=Usage(30, 10)),
        text_reply("18°C.", usage=Usage(5, 5)),
        model=model,
    )
    tools: Any = [fn_tool("get_weather", city="string")]
    assistant = client.beta.assistants.create(model=model, tools=tools)
    thread = client.beta.threads.create(messages=USER)
    run = client.beta.threads.runs.create(thread.id, assistant_id=assistant.id)
    run = wait_run(client, run, {"requires_action"})
    # 40 used; this completion brings the month to 110, past the budget of 100.
    chat_model = new_model()  # its own script: the run's next reply stays queued
    live.scripted.queue(text_reply("Sunny.", usage=Usage(50, 20)), model=chat_model)
    client.chat.completions.create(model=chat_model, messages=USER)

    with pytest.raises(openai.RateLimitError) as exc:
        client.chat.completions.create(model=chat_model, messages=USER)
    assert_quota_error(exc)
    with pytest.raises(openai.RateLimitError) as exc:
        client.chat.completions.create(model=chat_model, messages=USER, stream=True)
    assert_quota_error(exc)
    other_thread = client.beta.threads.create(messages=USER)
    with pytest.raises(openai.RateLimitError) as exc:
        client.beta.threads.runs.create(other_thread.id, assistant_id=assistant.id)
    assert_quota_error(exc)
    with pytest.raises(openai.RateLimitError) as exc:
        client.beta.threads.create_and_run(assistant_id=assistant.id)
    assert_quota_error(exc)

    # The run in flight is not cut off: its tool output is taken and it completes.
    assert run.required_action is not None
    (call,) = run.required_action.submit_tool_outputs.tool_calls
    final = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": call.id, "output": "18"}]
    )
    assert final.status == "completed"
    with raw_client(live, client.api_key) as http:
        by_model = {r["model"]: r for r in usage_rows(http)}
    counted = {
        m: (r["prompt_tokens"], r["completion_tokens"], r["requests"]) for m, r in by_model.items()
    }
    assert counted == {model: (35, 15, 2), chat_model: (50, 20, 1)}

    # Projects without a budget are not limited.
    free = sdk(live, live.new_key("proj_free_" + secrets.token_hex(4)))
    live.scripted.queue(text_reply("Fine.", usage=Usage(500, 500)), model=model)
    live.scripted.queue(text_reply("Still fine."), model=model)
    free.chat.completions.create(model=model, messages=USER)
    answer = free.chat.completions.create(model=model, messages=USER)
    assert answer.choices[0].message.content == "Still fine."
    client.close()
    free.close()


# ---- rate limits -------------------------------------------------------------------------


class FrozenClock:
    """The rate limiter's clock: still unless a test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def rate_limited(
    backend: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, FrozenClock]]:
    """A server allowing 3 requests a minute per key, on a clock that does not move."""
    settings = backend.model_copy(
        update={"data_dir": tmp_path_factory.mktemp("rpm"), "rate_limit_rpm": 3}
    )
    live = LiveServer(settings)
    clock = FrozenClock()
    live.services.rate_limiter = LocalBuckets(3, clock=clock)
    live.start()
    try:
        yield live, clock
    finally:
        live.stop()


def test_fourth_request_in_a_minute_is_rate_limited(
    rate_limited: tuple[LiveServer, FrozenClock],
) -> None:
    live, clock = rate_limited
    project = "proj_rpm_" + secrets.token_hex(4)
    key = live.new_key(project)
    with raw_client(live, key) as http:
        for remaining in (2, 1, 0):
            response = http.get("/models")
            assert response.status_code == 200, response.text
            assert response.headers["x-ratelimit-limit-requests"] == "3"
            assert response.headers["x-ratelimit-remaining-requests"] == str(remaining)
            assert "retry-after" not in response.headers
        # Empty after 3: full again in a minute, one more request in 20 seconds.
        assert response.headers["x-ratelimit-reset-requests"] == "1m0s"
        response = http.get("/models")
        assert response.status_code == 429
        assert response.json() == {
            "error": {
                "message": f"Rate limit reached for requests in project {project} on requests "
                "per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s.",
                "type": "requests",
                "param": None,
                "code": "rate_limit_exceeded",
            }
        }
        assert response.headers["retry-after"] == "20"
        assert response.headers["x-ratelimit-limit-requests"] == "3"
        assert response.headers["x-ratelimit-remaining-requests"] == "0"
        assert response.headers["x-ratelimit-reset-requests"] == "1m0s"

    client = sdk(live, key)
    with pytest.raises(openai.RateLimitError) as exc:
        client.models.list()
    assert exc.value.code == "rate_limit_exceeded"
    assert exc.value.type == "requests"
    # Each key has its own bucket, even in the same project.
    with raw_client(live, live.new_key(project)) as other:
        assert other.get("/models").status_code == 200
    # 20 seconds later one request is allowed again, and only one.
    clock.now += 20
    assert client.models.list().data
    with pytest.raises(openai.RateLimitError):
        client.models.list()
    client.close()


def test_no_rate_limit_headers_when_limits_are_off(http: httpx.Client) -> None:
    response = http.get("/models")
    assert response.status_code == 200
    assert not [h for h in response.headers if h.startswith("x-ratelimit")]


def test_redis_buckets_are_shared_by_processes() -> None:
    """Two limiters on one Redis prefix (two API processes) draw from one bucket per key."""
    from redis.asyncio import Redis

    from assistd.services.ratelimit import RedisBuckets
    from tests.redis_support import redis_prefix, redis_url

    clock = FrozenClock()

    async def scenario(prefix: str) -> list[bool]:
        first = RedisBuckets(Redis.from_url(redis_url()), 3, prefix=prefix, clock=clock)
        second = RedisBuckets(Redis.from_url(redis_url()), 3, prefix=prefix, clock=clock)
        try:
            taken = [(await limiter.take("k")).allowed for limiter in (first, second, first)]
            denied = await second.take("k")
            assert (denied.allowed, denied.remaining, denied.retry_after) == (False, 0, 20.0)
            taken.append((await first.take("other")).allowed)  # another key: its own bucket
            clock.now += 20
            taken.append((await second.take("k")).allowed)
            taken.append((await first.take("k")).allowed)
            return taken
        finally:
            await first.aclose()
            await second.aclose()

    with redis_prefix() as prefix:
        assert asyncio.run(scenario(prefix)) == [True, True, True, True, True, False]
