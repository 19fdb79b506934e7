"""Operations: /metrics (Prometheus), traces (OpenTelemetry, GenAI conventions), JSON logs.

The metrics are process-wide counters shared by every server of the test session, so each
test compares a scrape before its work with one after: the differences are its own.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from assistd.backends.scripted import text_reply, tool_reply
from assistd.observability import logs, tracing
from tests.api.run_support import fn_tool, new_model, wait_until
from tests.conftest import STATIC_KEY, LiveServer, assert_error, make_settings

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
PROMPT = "Search the handbook for the zebra-parsnip policy"


def scrape(server: LiveServer, **headers: str) -> Samples:
    response = httpx.get(f"http://127.0.0.1:{server.port}/metrics", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


def tool_run(client: openai.OpenAI, server: LiveServer, model: str, prompt: str = PROMPT) -> Any:
    """A run that searches (file_search, no store: it still executes), then calls a client
    function, then answers once the output is submitted: two executions, three model calls."""
    assistant = client.beta.assistants.create(
        model=model, tools=[{"type": "file_search"}, fn_tool("get_weather", city="string")]
    )
    server.scripted.queue(
        tool_reply(("file_search", {"queries": ["zebra-parsnip"]})),
        tool_reply(("get_weather", {"city": "Oslo"})),
        text_reply("It is sunny in Oslo."),
        model=model,
    )
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": prompt}]},
        poll_interval_ms=20,
    )
    assert run.status == "requires_action", run.last_error
    [call] = run.required_action.submit_tool_outputs.tool_calls
    run = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=run.thread_id,
        tool_outputs=[{"tool_call_id": call.id, "output": "sunny"}],
        poll_interval_ms=20,
    )
    assert run.status == "completed", run.last_error
    return run


def test_metrics_count_requests_runs_and_tools(
    client: openai.OpenAI, http: httpx.Client, server: LiveServer
) -> None:
    before = scrape(server)
    run = tool_run(client, server, new_model())
    assert http.get(f"/threads/{run.thread_id}").status_code == 200
    assert_error(http.get("/threads/thread_missing"), 404)
    after = scrape(server)

    # Requests by route template (never the raw path, which holds ids) and status.
    requests = "assistd_http_requests_total"
    route = "/v1/threads/{thread_id}"
    assert delta(before, after, requests, method="GET", route=route, status="200") == 1
    assert delta(before, after, requests, method="GET", route=route, status="404") == 1
    assert delta(before, after, requests, method="GET", route="/metrics", status="200") == 1
    assert delta(before, after, requests, method="POST", route="/v1/threads/runs", status="200")
    assert not any(
        name == requests and ("route", "/v1/threads/thread_missing") in labels
        for name, labels in after
    )
    latency = "assistd_http_request_duration_seconds_count"
    assert delta(before, after, latency, method="GET", route=route) == 2

    # One run completed, after two executions (start, then after the tool outputs).
    assert delta(before, after, "assistd_runs_total", status="completed") == 1
    assert delta(before, after, "assistd_run_duration_seconds_count") == 1
    assert delta(before, after, "assistd_run_queue_wait_seconds_count") == 1
    assert delta(before, after, "assistd_run_time_to_first_token_seconds_count") == 2
    tools = "assistd_tool_executions_total"
    assert delta(before, after, tools, type="file_search", outcome="success") == 1
    assert delta(before, after, tools, type="function", outcome="delegated") == 1

    # The gauges are there (their values belong to the whole session).
    for gauge in (
        "assistd_active_streams",
        "assistd_ingestion_backlog_files",
        "assistd_sandbox_live_kernels",
    ):
        assert (gauge, frozenset()) in after, gauge


def test_metrics_count_streams(client: openai.OpenAI, server: LiveServer) -> None:
    model = new_model()
    assistant = client.beta.assistants.create(model=model)
    # The model holds its answer back: the stream stays open until the run is cancelled.
    server.scripted.queue(text_reply("Late.", delay=60), model=model)
    before = scrape(server)
    with client.beta.threads.create_and_run_stream(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "Hi"}]}
    ) as stream:
        for event in stream:
            if event.event == "thread.run.in_progress":
                break
        assert delta(before, scrape(server), "assistd_active_streams") == 1
        client.beta.threads.runs.cancel(run_id=event.data.id, thread_id=event.data.thread_id)
        stream.until_done()
    wait_until(
        lambda: scrape(server), lambda after: delta(before, after, "assistd_active_streams") == 0
    )


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[LiveServer]:
    with LiveServer(make_settings(tmp_path, metrics_token="metrics-secret-token")) as live:
        yield live


def test_metrics_token_is_required_when_set(guarded: LiveServer) -> None:
    url = f"http://127.0.0.1:{guarded.port}/metrics"
    assert_error(httpx.get(url), 401, code="missing_api_key")
    for wrong in ("Bearer nope", f"Bearer {STATIC_KEY}", "Basic metrics-secret-token"):
        response = httpx.get(url, headers={"Authorization": wrong})
        assert response.status_code == 401, wrong
        assert_error(response, 401)
    samples = scrape(guarded, Authorization="Bearer metrics-secret-token")
    assert any(
        name == "assistd_runs_total" or name == "assistd_http_requests_total" for name, _ in samples
    )


def test_metrics_off_loopback_need_an_api_key(server: LiveServer) -> None:
    """A client elsewhere (simulated: the app called with another peer address) needs a
    key; the loopback tests above needed none."""
    app = server.server.config.app

    async def get(headers: dict[str, str]) -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://assistd") as remote:
            return await remote.get("/metrics", headers=headers)

    assert_error(server.call(get({})), 401, code="missing_api_key")
    assert_error(server.call(get({"Authorization": "Bearer sk-wrong"})), 401)
    allowed = server.call(get({"Authorization": f"Bearer {STATIC_KEY}"}))
    assert allowed.status_code == 200
    assert "assistd_http_requests_total" in allowed.text


# ---- traces ---------------------------------------------------------------------------


@pytest.fixture
def traced(tmp_path: Path) -> Iterator[tuple[LiveServer, InMemorySpanExporter, TracerProvider]]:
    """A server whose tracer provider keeps its spans in memory (installed before the app
    is built, as the OTLP one is at start-up)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    live = LiveServer(make_settings(tmp_path))
    try:
        live.start()
        yield live, exporter, provider
    finally:
        live.stop()
        tracing.uninstall()
        provider.shutdown()


def spans_named(spans: list[ReadableSpan], prefix: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name.startswith(prefix)]


def all_attribute_text(spans: list[ReadableSpan]) -> str:
    return json.dumps([dict(s.attributes or {}) for s in spans], default=str)


def test_traces_follow_the_genai_conventions(
    traced: tuple[LiveServer, InMemorySpanExporter, TracerProvider],
) -> None:
    live, exporter, provider = traced
    with openai.OpenAI(base_url=live.base_url, api_key=STATIC_KEY, max_retries=0) as client:
        model = new_model()
        run = tool_run(client, live, model)
        # An execution's span ends just after the run's status is committed.
        spans = wait_until(
            lambda: list(exporter.get_finished_spans()),
            lambda found: len(spans_named(found, "invoke_agent ")) == 2,
        )
        agents = spans_named(spans, "invoke_agent ")  # the run's two executions
        for agent in agents:
            assert agent.name == f"invoke_agent {run.assistant_id}"
            attrs = agent.attributes or {}
            assert attrs["gen_ai.operation.name"] == "invoke_agent"
            assert attrs["gen_ai.agent.id"] == run.assistant_id
            assert attrs["gen_ai.conversation.id"] == run.thread_id
            assert attrs["gen_ai.request.model"] == model
            assert attrs["assistd.run.id"] == run.id
        assert (agents[-1].attributes or {})["assistd.run.status"] == "completed"
        agent_ids = {a.context.span_id for a in agents}

        chats = spans_named(spans, "chat ")
        assert [c.name for c in chats] == [f"chat {model}"] * 3
        for chat in chats:
            attrs = chat.attributes or {}
            assert attrs["gen_ai.operation.name"] == "chat"
            assert attrs["gen_ai.request.model"] == model
            assert attrs["gen_ai.provider.name"]
            assert isinstance(attrs["gen_ai.usage.input_tokens"], int)
            assert isinstance(attrs["gen_ai.usage.output_tokens"], int)
            assert chat.parent is not None
            assert chat.parent.span_id in agent_ids
            assert chat.context.trace_id in {a.context.trace_id for a in agents}

        [tool] = spans_named(spans, "execute_tool ")
        assert tool.name == "execute_tool file_search"
        attrs = tool.attributes or {}
        assert attrs["gen_ai.operation.name"] == "execute_tool"
        assert attrs["gen_ai.tool.name"] == "file_search"
        assert str(attrs["gen_ai.tool.call.id"]).startswith("call_")
        # A tool runs in its run's execution, after the model call that asked for it.
        assert tool.parent is not None
        assert tool.parent.span_id == agents[0].context.span_id

        # The request spans (FastAPI's own, with this provider) carry the route template.
        routes = {(s.attributes or {}).get("http.route") for s in spans}
        assert "/v1/threads/runs" in routes

        # No prompt, output or arguments unless asked for.
        text = all_attribute_text(spans)
        assert "zebra-parsnip" not in text
        assert "sunny" not in text
        assert "gen_ai.input.messages" not in text

        # With content tracing on, the prompt and the output are recorded.
        exporter.clear()
        tracing.install(provider, content=True)
        tool_run(client, live, new_model())
        spans = wait_until(
            lambda: list(exporter.get_finished_spans()),
            lambda found: len(spans_named(found, "invoke_agent ")) == 2,
        )
        first_chat = spans_named(spans, "chat ")[0].attributes or {}
        assert "zebra-parsnip" in str(first_chat["gen_ai.input.messages"])
        assert "gen_ai.output.messages" in first_chat
        [tool] = spans_named(spans, "execute_tool ")
        assert "zebra-parsnip" in str((tool.attributes or {})["gen_ai.tool.call.arguments"])


# ---- logs -----------------------------------------------------------------------------


@pytest.fixture
def json_lines(server: LiveServer) -> Iterator[io.StringIO]:
    """The assistd loggers' output, formatted as ASSISTD_LOG_FORMAT=json formats it."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.formatter("json", logs.secrets_of(server.settings)))
    root = logging.getLogger("assistd")
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def test_json_logs_carry_the_request_and_run(
    client: openai.OpenAI, http: httpx.Client, server: LiveServer, json_lines: io.StringIO
) -> None:
    model = new_model()
    assistant = client.beta.assistants.create(model=model)
    server.scripted.queue(text_reply("Logged."), model=model)
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "Hi"}]},
        poll_interval_ms=20,
    )
    assert run.status == "completed"
    response = http.get(f"/threads/{run.thread_id}")
    assert response.status_code == 200
    # A secret that does reach a message is masked, like the configured keys.
    logging.getLogger("assistd.test").warning(
        "keys %s %s (Authorization: Bearer %s)", client.api_key, STATIC_KEY, client.api_key
    )

    def entries_now() -> list[dict[str, Any]]:
        # Every line is one JSON object.
        return [json.loads(line) for line in json_lines.getvalue().splitlines() if line]

    def access_of(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        prefix = f"GET /v1/threads/{run.thread_id} "
        return [
            e
            for e in entries
            if e["logger"] == "assistd.access" and e["message"].startswith(prefix)
        ]

    def ended(entries: list[dict[str, Any]]) -> bool:
        return any(e.get("run_id") == run.id and "ended completed" in e["message"] for e in entries)

    # The access line follows the response, the run's last line its final status: both
    # may come just after the client saw them.
    entries = wait_until(entries_now, lambda found: bool(access_of(found)) and ended(found))
    for entry in entries:
        assert {"timestamp", "level", "logger", "message"} <= set(entry), entry
    project = server.call(server.services.auth.project_for(f"Bearer {client.api_key}"))

    [access] = access_of(entries)
    assert access["request_id"] == response.headers["x-request-id"]
    assert access["project"] == project
    assert access["thread_id"] == run.thread_id

    executed = [
        e for e in entries if e.get("run_id") == run.id and e["logger"] == "assistd.executor"
    ]
    assert executed, entries
    for entry in executed:
        assert entry["thread_id"] == run.thread_id
        assert entry["project"] == project
    assert any("ended completed" in e["message"] for e in executed)

    output = json_lines.getvalue()
    assert client.api_key not in output
    assert STATIC_KEY not in output
    [warned] = [e for e in entries if e["logger"] == "assistd.test"]
    assert warned["message"] == "keys *** *** (Authorization: Bearer ***)"


def test_text_logs_mask_secrets_too() -> None:
    formatter = logs.formatter("text", ["upstream-key-123"])
    record = logging.LogRecord(
        "assistd.x",
        logging.INFO,
        __file__,
        1,
        "calling with upstream-key-123 and %s",
        ("sk-abcdefgh",),
        None,
    )
    line = formatter.format(record)
    assert "upstream-key-123" not in line
    assert "sk-abcdefgh" not in line
    assert line.endswith("calling with *** and ***")


def test_log_context_stays_with_its_task() -> None:
    async def run_task(run_id: str) -> str | None:
        logs.bind(run_id=run_id)
        await asyncio.sleep(0)
        return logs.RUN_ID.get()

    async def both() -> list[str | None]:
        return list(await asyncio.gather(run_task("run_a"), run_task("run_b")))

    assert asyncio.run(both()) == ["run_a", "run_b"]
    assert logs.RUN_ID.get() is None
