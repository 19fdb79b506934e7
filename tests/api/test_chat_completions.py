"""``POST /v1/chat/completions``: the gateway in front of the model registry.

Driven by the official SDK in strict mode (and raw HTTP for the wire details): each test
scripts its own model name on the shared ``ScriptedBackend`` and reads back what reached the
backend with ``requests_for``. The last section routes through a real HTTP upstream
(``FakeUpstream``) with ``OpenAICompatBackend``, as a deployment would.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pydantic
import pytest

from assistd.backends.base import Usage
from assistd.backends.openai_compat import OpenAICompatBackend
from assistd.backends.registry import BackendRegistry
from assistd.backends.scripted import Reply, ScriptedBackend, text_reply, tool_reply
from tests.conftest import LiveServer, assert_error, make_settings
from tests.fake_upstream import FakeUpstream, error_reply
from tests.fake_upstream import text_reply as upstream_text
from tests.fake_upstream import tool_reply as upstream_tools

USER = [{"role": "user", "content": "What is the weather in Paris?"}]
GET_WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
GET_TIME: dict[str, Any] = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}


def new_model() -> str:
    return f"chat-{secrets.token_hex(5)}"


def sse_payloads(response: httpx.Response) -> list[str]:
    """The ``data:`` payloads of a raw stream, checking that no frame is named."""
    payloads = []
    for line in response.iter_lines():
        assert not line.startswith("event:"), line
        if line.startswith("data: "):
            payloads.append(line[len("data: ") :])
    return payloads


# ---- text --------------------------------------------------------------------------------


def test_text_completion(client: openai.OpenAI, server: LiveServer) -> None:
    model = new_model()
    server.scripted.queue(
        text_reply("Sunny and mild.", usage=Usage(prompt_tokens=11, completion_tokens=4)),
        model=model,
    )
    completion = client.chat.completions.create(
        model=model,
        messages=[{"role": "system", "content": "Be brief."}, *USER],
    )
    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == model
    (choice,) = completion.choices
    assert choice.index == 0
    assert choice.finish_reason == "stop"
    assert choice.logprobs is None
    assert choice.message.role == "assistant"
    assert choice.message.content == "Sunny and mild."
    assert choice.message.refusal is None
    assert choice.message.tool_calls is None
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (11, 4)
    assert completion.usage.total_tokens == 15
    (request,) = server.scripted.requests_for(model)
    assert request.messages == [{"role": "system", "content": "Be brief."}, *USER]
    assert request.tools == []
    assert request.tool_choice is None
    assert request.extra == {}


def test_wire_object_has_openai_fields(
    client: openai.OpenAI, server: LiveServer, http: httpx.Client
) -> None:
    model = new_model()
    server.scripted.queue(text_reply("Hi."), model=model)
    body = http.post("/chat/completions", json={"model": model, "messages": USER}).json()
    assert set(body) == {
        "id",
        "object",
        "created",
        "model",
        "choices",
        "usage",
        "system_fingerprint",
    }
    message = body["choices"][0]["message"]
    # No calls: the key is left out, as OpenAI does; content null only with calls.
    assert message == {"role": "assistant", "content": "Hi.", "refusal": None, "annotations": []}
    assert set(body["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}


def test_usage_is_estimated_when_the_backend_reports_none(
    client: openai.OpenAI, server: LiveServer
) -> None:
    class NoUsage(ScriptedBackend):
        def _chunks(self, reply: Reply, request: Any) -> list[Any]:
            chunks = super()._chunks(reply, request)
            chunks[-1].usage = None
            return chunks

    model = new_model()
    backend = NoUsage()
    server.services.registry.add(model, backend)
    try:
        completion = client.chat.completions.create(model=model, messages=USER)
    finally:
        del server.services.registry.routes[model]
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 0
    assert completion.usage.completion_tokens > 0


def test_stream_text_with_usage(client: openai.OpenAI, server: LiveServer) -> None:
    model = new_model()
    server.scripted.queue(
        text_reply("It is sunny in Paris today.", usage=Usage(9, 6)),
        model=model,
    )
    chunks = list(
        client.chat.completions.create(
            model=model,
            messages=USER,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].id.startswith("chatcmpl-")
    assert len({c.created for c in chunks}) == 1
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert {c.model for c in chunks} == {model}
    first, *middle, finish, usage = chunks
    assert first.choices[0].delta.role == "assistant"
    assert first.choices[0].delta.content == ""
    texts = [c.choices[0].delta.content for c in middle]
    assert len(texts) > 2  # token by token, not one piece
    assert "".join(t or "" for t in texts) == "It is sunny in Paris today."
    assert all(c.choices[0].finish_reason is None for c in [first, *middle])
    assert finish.choices[0].finish_reason == "stop"
    assert finish.choices[0].delta.content is None
    assert finish.choices[0].delta.tool_calls is None
    assert usage.choices == []
    assert usage.usage is not None
    assert (usage.usage.prompt_tokens, usage.usage.completion_tokens) == (9, 6)
    assert usage.usage.total_tokens == 15
    assert all(c.usage is None for c in chunks[:-1])


def test_stream_wire_format(server: LiveServer, http: httpx.Client) -> None:
    model = new_model()
    server.scripted.queue(text_reply("One two."), model=model)
    body = {"model": model, "messages": USER, "stream": True}
    with http.stream("POST", "/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        payloads = sse_payloads(response)
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    # Without stream_options.include_usage no chunk carries a usage key at all.
    assert all("usage" not in c for c in chunks)
    assert chunks[0]["choices"] == [
        {
            "index": 0,
            "delta": {"role": "assistant", "content": ""},
            "logprobs": None,
            "finish_reason": None,
        }
    ]
    assert chunks[1]["choices"][0]["delta"] == {"content": "One "}
    assert chunks[-1]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }


def test_sdk_stream_helper(client: openai.OpenAI, server: LiveServer) -> None:
    model = new_model()
    server.scripted.queue(text_reply("Streaming through the helper."), model=model)
    deltas = []
    with client.beta.chat.completions.stream(model=model, messages=USER) as stream:
        for event in stream:
            if event.type == "content.delta":
                deltas.append(event.delta)
        final = stream.get_final_completion()
    assert "".join(deltas) == "Streaming through the helper."
    assert final.choices[0].message.content == "Streaming through the helper."
    assert final.choices[0].finish_reason == "stop"


# ---- tools -------------------------------------------------------------------------------


def test_tool_calls(client: openai.OpenAI, server: LiveServer) -> None:
    model = new_model()
    server.scripted.queue(
        tool_reply(("get_weather", {"city": "Paris"}), ("get_time", {})), model=model
    )
    completion = client.chat.completions.create(
        model=model,
        messages=USER,
        tools=[GET_WEATHER, GET_TIME],
    )
    (choice,) = completion.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert calls is not None
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert [json.loads(c.function.arguments) for c in calls] == [{"city": "Paris"}, {}]
    assert all(c.type == "function" and c.id for c in calls)
    assert len({c.id for c in calls}) == 2
    (request,) = server.scripted.requests_for(model)
    assert request.tools == [GET_WEATHER, GET_TIME]


def test_stream_tool_calls(server: LiveServer, http: httpx.Client) -> None:
    model = new_model()
    server.scripted.queue(
        tool_reply(("get_weather", {"city": "Paris, France"}), ("get_time", {"tz": "CET"})),
        model=model,
    )
    body = {"model": model, "messages": USER, "tools": [GET_WEATHER, GET_TIME], "stream": True}
    with http.stream("POST", "/chat/completions", json=body) as response:
        chunks = [json.loads(p) for p in sse_payloads(response)[:-1]]
    deltas = [c["choices"][0]["delta"] for c in chunks]
    # A call-only answer opens with the role and its first call, content null.
    assert deltas[0]["role"] == "assistant"
    assert "content" not in deltas[0]
    pieces = [p for d in deltas for p in d.get("tool_calls", [])]
    intros = [p for p in pieces if "id" in p]
    assert [(p["index"], p["type"], p["function"]["name"]) for p in intros] == [
        (0, "function", "get_weather"),
        (1, "function", "get_time"),
    ]
    rest = [p for p in pieces if "id" not in p]
    assert rest
    assert all(
        set(p) == {"index", "function"} and set(p["function"]) == {"arguments"} for p in rest
    )
    arguments = [
        "".join(p["function"]["arguments"] for p in pieces if p["index"] == i) for i in (0, 1)
    ]
    assert [json.loads(a) for a in arguments] == [{"city": "Paris, France"}, {"tz": "CET"}]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_sdk_stream_helper_with_a_pydantic_tool(client: openai.OpenAI, server: LiveServer) -> None:
    class GetWeather(pydantic.BaseModel):
        city: str

    model = new_model()
    server.scripted.queue(tool_reply(("GetWeather", {"city": "Paris"})), model=model)
    with client.beta.chat.completions.stream(
        model=model,
        messages=USER,
        tools=[openai.pydantic_function_tool(GetWeather)],
    ) as stream:
        final = stream.get_final_completion()
    (call,) = final.choices[0].message.tool_calls or []
    assert call.function.parsed_arguments == GetWeather(city="Paris")
    assert final.choices[0].finish_reason == "tool_calls"
    (request,) = server.scripted.requests_for(model)
    assert request.tools[0]["function"]["strict"] is True


def test_parallel_tool_calls_false_keeps_the_first_call(
    client: openai.OpenAI, server: LiveServer
) -> None:
    model = new_model()
    server.scripted.queue(
        tool_reply(("get_weather", {"city": "Paris"}), ("get_time", {})), model=model
    )
    completion = client.chat.completions.create(
        model=model,
        messages=USER,
        tools=[GET_WEATHER, GET_TIME],
        parallel_tool_calls=False,
    )
    calls = completion.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather"]
    (request,) = server.scripted.requests_for(model)
    assert request.parallel_tool_calls is False


def test_tool_results_reach_the_backend(client: openai.OpenAI, server: LiveServer) -> None:
    model = new_model()
    server.scripted.queue(text_reply("It is 21 degrees in Paris."), model=model)
    call = {
        "id": "call_abc",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    messages: list[dict[str, Any]] = [
        *USER,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_abc", "content": '{"temperature": 21}'},
    ]
    completion = client.chat.completions.create(
        model=model,
        messages=messages,
        tools=[GET_WEATHER],
    )
    assert completion.choices[0].message.content == "It is 21 degrees in Paris."
    (request,) = server.scripted.requests_for(model)
    assert request.messages == messages


# ---- structured outputs and parameters ---------------------------------------------------


def test_parse_with_a_pydantic_response_format(client: openai.OpenAI, server: LiveServer) -> None:
    class Weather(pydantic.BaseModel):
        city: str
        temperature: int

    model = new_model()
    server.scripted.queue(text_reply('{"city": "Paris", "temperature": 21}'), model=model)
    completion = client.beta.chat.completions.parse(
        model=model,
        messages=USER,
        response_format=Weather,
    )
    assert completion.choices[0].message.parsed == Weather(city="Paris", temperature=21)
    (request,) = server.scripted.requests_for(model)
    assert request.response_format is not None
    assert request.response_format["type"] == "json_schema"
    assert request.response_format["json_schema"]["name"] == "Weather"
    assert request.response_format["json_schema"]["strict"] is True
    assert "properties" in request.response_format["json_schema"]["schema"]


def test_parameters_reach_the_backend(client: openai.OpenAI, server: LiveServer) -> None:
    model = new_model()
    server.scripted.queue(tool_reply(("get_weather", {"city": "Paris"})), model=model)
    client.chat.completions.create(
        model=model,
        messages=USER,
        tools=[GET_WEATHER, GET_TIME],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=50,
        max_completion_tokens=70,
        temperature=0.2,
        top_p=0.9,
        stop="END",
        seed=42,
        response_format={"type": "json_object"},
        presence_penalty=0.5,
        frequency_penalty=-0.5,
        logit_bias={"50256": -100},
        user="user-123",
        metadata={"team": "a"},
        store=False,
        n=1,
        logprobs=False,
        extra_body={"reasoning_effort": "low", "prompt_cache_key": "k1"},
    )
    (request,) = server.scripted.requests_for(model)
    assert request.model == model
    assert request.tool_choice == {"type": "function", "function": {"name": "get_weather"}}
    assert request.max_tokens == 70  # max_completion_tokens wins over max_tokens
    assert (request.temperature, request.top_p, request.seed) == (0.2, 0.9, 42)
    assert request.stop == ["END"]
    assert request.response_format == {"type": "json_object"}
    assert request.reasoning_effort == "low"
    assert request.extra == {
        "presence_penalty": 0.5,
        "frequency_penalty": -0.5,
        "logit_bias": {"50256": -100},
        "user": "user-123",
        "metadata": {"team": "a"},
        "store": False,
        "prompt_cache_key": "k1",
    }


def test_max_tokens_truncates_with_length(client: openai.OpenAI, server: LiveServer) -> None:
    model = new_model()
    server.scripted.queue(text_reply("one two three four five six"), model=model)
    completion = client.chat.completions.create(
        model=model,
        messages=USER,
        max_tokens=3,
        stop=["x", "y"],
    )
    assert completion.choices[0].finish_reason == "length"
    assert completion.choices[0].message.content == "one two three "
    (request,) = server.scripted.requests_for(model)
    assert request.max_tokens == 3
    assert request.stop == ["x", "y"]


def test_tool_choice_none_and_no_tools(client: openai.OpenAI, server: LiveServer) -> None:
    model = new_model()
    server.scripted.queue(text_reply("No tools needed."), text_reply("Plain."), model=model)
    client.chat.completions.create(
        model=model,
        messages=USER,
        tools=[GET_WEATHER],
        tool_choice="none",
    )
    # Without tools, tool_choice "auto" and parallel_tool_calls mean nothing: not forwarded.
    client.chat.completions.create(
        model=model,
        messages=USER,
        tool_choice="auto",
        parallel_tool_calls=True,
    )
    first, second = server.scripted.requests_for(model)
    assert first.tool_choice == "none"
    assert (second.tool_choice, second.parallel_tool_calls) == (None, None)


# ---- refusals ----------------------------------------------------------------------------


def test_n_above_one_is_refused(client: openai.OpenAI, server: LiveServer) -> None:
    model = new_model()
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=model, messages=USER, n=2)
    assert caught.value.param == "n"
    assert caught.value.type == "invalid_request_error"
    assert "n" in caught.value.message
    assert server.scripted.requests_for(model) == []


@pytest.mark.parametrize(
    ("extra", "param", "code"),
    [
        ({"logprobs": True}, "logprobs", "unsupported_value"),
        ({"top_logprobs": 2}, "top_logprobs", "unsupported_value"),
        ({"functions": [{"name": "f"}]}, "functions", "unsupported_value"),
        ({"temperature": 2.5}, "temperature", "decimal_above_max_value"),
        ({"top_p": -0.1}, "top_p", "decimal_below_min_value"),
        ({"max_completion_tokens": 0}, "max_completion_tokens", "integer_below_min_value"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "array_above_max_length"),
        ({"messages": []}, "messages", "array_below_min_length"),
        ({"messages": [{"role": "function", "content": "x"}]}, "messages[0].role", None),
        ({"messages": [{"role": "user"}]}, "messages[0].content", "missing_required_parameter"),
        ({"tools": [{"type": "custom", "custom": {}}]}, "tools[0].type", "invalid_value"),
        ({"response_format": {"type": "xml"}}, "response_format.type", "invalid_value"),
        ({"stream_options": {"include_usage": True}}, "stream_options", None),
        ({"tools": [GET_WEATHER], "tool_choice": "bogus"}, "tool_choice", "invalid_value"),
    ],
)
def test_invalid_requests(
    http: httpx.Client, extra: dict[str, Any], param: str, code: str | None
) -> None:
    body = {"model": new_model(), "messages": USER, **extra}
    assert_error(http.post("/chat/completions", json=body), 400, param=param, code=code)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        (
            {
                "tools": [GET_WEATHER],
                "tool_choice": {"type": "function", "function": {"name": "x"}},
            },
            "tool_choice",
        ),
        ({"tool_choice": "required"}, "tool_choice"),
        (
            {"messages": [*USER, {"role": "tool", "tool_call_id": "c1", "content": "1"}]},
            "messages[1].role",
        ),
        (
            {
                "messages": [
                    *USER,
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "c1",
                                "type": "function",
                                "function": {"name": "f", "arguments": "{}"},
                            }
                        ],
                    },
                    {"role": "user", "content": "and?"},
                ]
            },
            "messages[1].role",
        ),
        ({"messages": [*USER, {"role": "assistant", "content": None}]}, "messages[1].content"),
    ],
)
def test_inconsistent_requests(
    server: LiveServer, http: httpx.Client, extra: dict[str, Any], param: str
) -> None:
    model = new_model()
    body = {"model": model, "messages": USER, **extra}
    assert_error(http.post("/chat/completions", json=body), 400, param=param)
    assert server.scripted.requests_for(model) == []


def test_authentication_required(server: LiveServer) -> None:
    response = httpx.post(
        f"{server.base_url}/chat/completions", json={"model": "m", "messages": USER}
    )
    assert_error(response, 401)


# ---- backend failures --------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("code", "status", "error_type", "exception"),
    [
        ("rate_limit_exceeded", 429, "rate_limit_exceeded", openai.RateLimitError),
        ("invalid_prompt", 400, "invalid_request_error", openai.BadRequestError),
        ("server_error", 500, "server_error", openai.InternalServerError),
    ],
)
def test_backend_error_before_the_first_token_is_an_http_error(
    client: openai.OpenAI,
    server: LiveServer,
    http: httpx.Client,
    stream: bool,
    code: str,
    status: int,
    error_type: str,
    exception: type[openai.APIStatusError],
) -> None:
    model = new_model()
    failing = Reply(error="The model is unavailable.", error_code=code)
    server.scripted.queue(failing, failing, model=model)
    with pytest.raises(exception) as caught:
        client.chat.completions.create(model=model, messages=USER, stream=stream)
    assert caught.value.status_code == status
    response = http.post(
        "/chat/completions", json={"model": model, "messages": USER, "stream": stream}
    )
    assert response.status_code == status
    assert response.json() == {
        "error": {
            "message": "The model is unavailable.",
            "type": error_type,
            "param": None,
            "code": code,
        }
    }


def test_backend_error_mid_stream_raises_in_the_sdk(
    client: openai.OpenAI, server: LiveServer, http: httpx.Client
) -> None:
    model = new_model()
    failing = Reply(text="one two three four five", error="Lost the model.", fail_after=2)
    server.scripted.queue(failing, failing, model=model)
    received: list[str | None] = []
    stream = client.chat.completions.create(model=model, messages=USER, stream=True)
    with pytest.raises(openai.APIError) as caught:
        received.extend(chunk.choices[0].delta.content for chunk in stream)
    assert caught.value.message == "Lost the model."
    assert caught.value.code == "server_error"
    assert received == ["", "one ", "two "]
    body = {"model": model, "messages": USER, "stream": True}
    with http.stream("POST", "/chat/completions", json=body) as response:
        assert response.status_code == 200
        payloads = sse_payloads(response)
    # The error is the last event: OpenAI's envelope, and no [DONE] after it.
    assert json.loads(payloads[-1]) == {
        "error": {
            "message": "Lost the model.",
            "type": "server_error",
            "param": None,
            "code": "server_error",
        }
    }


# ---- through a real HTTP upstream --------------------------------------------------------

UPSTREAM_KEY = "sk-upstream-" + "s3cret" * 4


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(api_key=UPSTREAM_KEY) as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    registry = BackendRegistry()  # no fallback: unknown names are unknown
    backend = OpenAICompatBackend(upstream.base_url, UPSTREAM_KEY, max_retries=1, backoff=0.01)
    registry.add("up-chat", backend, upstream_model="fake-model")
    live = LiveServer(make_settings(tmp_path_factory.mktemp("chat-gateway")), registry=registry)
    live.start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture
def gw_client(gateway: LiveServer) -> Iterator[openai.OpenAI]:
    key = gateway.new_key("proj_" + secrets.token_hex(6))
    with openai.OpenAI(
        base_url=gateway.base_url, api_key=key, max_retries=0, _strict_response_validation=True
    ) as sdk:
        yield sdk


@pytest.fixture
def gw_http(gateway: LiveServer, gw_client: openai.OpenAI) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=gateway.base_url,
        headers={"Authorization": f"Bearer {gw_client.api_key}"},
        timeout=30,
    ) as raw:
        yield raw


def test_upstream_text_and_forwarded_fields(
    upstream: FakeUpstream, gw_client: openai.OpenAI, gw_http: httpx.Client
) -> None:
    before = len(upstream.chat_requests)
    upstream.queue(upstream_text("Hello from upstream.", usage=(7, 3)))
    response = gw_client.chat.completions.with_raw_response.create(
        model="up-chat",
        messages=USER,
        presence_penalty=0.3,
        user="user-9",
        seed=7,
        logit_bias={"42": 5},
    )
    completion = response.parse()
    assert completion.model == "up-chat"
    assert completion.choices[0].message.content == "Hello from upstream."
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (7, 3)
    (request,) = upstream.chat_requests[before:]
    assert request.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert request.body["model"] == "fake-model"
    assert request.body["messages"] == USER
    assert request.body["presence_penalty"] == 0.3
    assert request.body["user"] == "user-9"
    assert request.body["seed"] == 7
    assert request.body["logit_bias"] == {"42": 5}
    # The upstream's key never reaches the client, in the body or in a header.
    assert UPSTREAM_KEY not in response.http_response.text
    assert all(UPSTREAM_KEY not in value for value in response.headers.values())


def test_upstream_stream_tool_calls(upstream: FakeUpstream, gw_client: openai.OpenAI) -> None:
    upstream.queue(upstream_tools(("get_weather", {"city": "Paris"}), ("get_time", {})))
    with gw_client.beta.chat.completions.stream(
        model="up-chat",
        messages=USER,
        tools=[GET_WEATHER, GET_TIME],
        stream_options={"include_usage": True},
    ) as stream:
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_time", {}),
    ]
    assert [c.id for c in calls] == ["call_fake0", "call_fake1"]  # the upstream's own ids
    assert final.choices[0].finish_reason == "tool_calls"
    assert final.usage is not None


def test_unknown_model_is_404(gw_client: openai.OpenAI, gw_http: httpx.Client) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        gw_client.chat.completions.create(model="no-such-model", messages=USER)
    assert caught.value.code == "model_not_found"
    response = gw_http.post(
        "/chat/completions", json={"model": "no-such-model", "messages": USER, "stream": True}
    )
    assert_error(response, 404, param="model", code="model_not_found")


def test_upstream_rate_limit_is_429(upstream: FakeUpstream, gw_client: openai.OpenAI) -> None:
    before = len(upstream.chat_requests)
    upstream.queue(error_reply(429, "Slow down.", headers={"Retry-After": "0"}, times=2))
    with pytest.raises(openai.RateLimitError) as caught:
        gw_client.chat.completions.create(model="up-chat", messages=USER)
    assert "Slow down." in caught.value.message
    assert len(upstream.chat_requests[before:]) == 2  # the backend retried once


def test_upstream_bad_request_is_400(upstream: FakeUpstream, gw_client: openai.OpenAI) -> None:
    upstream.queue(error_reply(400, "This model's maximum context length is 8192 tokens."))
    with pytest.raises(openai.BadRequestError) as caught:
        gw_client.chat.completions.create(model="up-chat", messages=USER, stream=True)
    assert "maximum context length" in caught.value.message
    assert UPSTREAM_KEY not in str(caught.value.body)


def test_disconnect_mid_stream_closes_the_upstream_request(
    upstream: FakeUpstream, gw_http: httpx.Client
) -> None:
    disconnects = upstream.disconnects
    upstream.queue(upstream_text("Partial answer", hang=True))
    body = {"model": "up-chat", "messages": USER, "stream": True}
    with gw_http.stream("POST", "/chat/completions", json=body) as response:
        lines = response.iter_lines()
        assert next(line for line in lines if line.startswith("data: "))
    assert upstream.wait_for_disconnect(disconnects + 1)


def test_disconnect_while_waiting_closes_the_upstream_request(
    upstream: FakeUpstream, gateway: LiveServer, gw_client: openai.OpenAI
) -> None:
    disconnects = upstream.disconnects
    upstream.queue(upstream_text("Never finished", hang=True))
    with (
        httpx.Client(
            base_url=gateway.base_url,
            headers={"Authorization": f"Bearer {gw_client.api_key}"},
            timeout=httpx.Timeout(30, read=0.5),
        ) as impatient,
        pytest.raises(httpx.ReadTimeout),
    ):
        impatient.post("/chat/completions", json={"model": "up-chat", "messages": USER})
    assert upstream.wait_for_disconnect(disconnects + 1)
