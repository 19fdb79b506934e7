"""Function calling in runs: ``requires_action``, submitting outputs (parallel calls
too), text and calls in one reply, tool overrides and ``tool_choice`` reaching the model.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from assistd.backends.scripted import Reply, ScriptedCall, text_reply, tool_reply
from tests.api.run_support import (
    error_body,
    fn_tool,
    model_contents,
    new_model,
    run_messages,
    text_of,
    thread_with,
    weather_assistant,
)
from tests.conftest import LiveServer, assert_error


def test_function_call_requires_action_then_completes(
    client: openai.OpenAI, server: LiveServer
) -> None:
    model = new_model()
    server.scripted.queue(
        tool_reply(("get_weather", {"city": "Paris"})),
        text_reply("It is sunny in Paris."),
        model=model,
    )
    assistant = weather_assistant(client, model)
    thread_id = thread_with(client, "Weather in Paris?")
    run = client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant.id)
    assert run.status == "requires_action", run
    assert run.usage is None
    assert run.expires_at is not None
    assert run.completed_at is None
    action = run.required_action
    assert action is not None
    assert action.type == "submit_tool_outputs"
    (call,) = action.submit_tool_outputs.tool_calls
    assert call.id.startswith("call_")
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    # No message was written, and the tool step waits with no output.
    assert run_messages(client, thread_id, run.id) == []
    (step,) = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id).data
    assert step.type == "tool_calls"
    assert step.status == "in_progress"
    assert step.completed_at is None
    details = step.step_details
    assert details.type == "tool_calls"
    (step_call,) = details.tool_calls
    assert step_call.id == call.id
    assert step_call.type == "function"
    assert step_call.function.name == "get_weather"
    assert json.loads(step_call.function.arguments) == {"city": "Paris"}
    assert step_call.function.output is None

    submitted = client.beta.threads.runs.submit_tool_outputs(
        run.id, thread_id=thread_id, tool_outputs=[{"tool_call_id": call.id, "output": "22C"}]
    )
    assert submitted.status == "queued"
    assert submitted.required_action is None
    final = client.beta.threads.runs.poll(run.id, thread_id=thread_id)
    assert final.status == "completed", final
    assert final.required_action is None
    assert final.expires_at is None
    assert final.usage is not None
    assert final.usage.total_tokens > 0

    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id, order="asc").data
    assert [(s.type, s.status) for s in steps] == [
        ("tool_calls", "completed"),
        ("message_creation", "completed"),
    ]
    done_call = steps[0].step_details.tool_calls[0]
    assert done_call.id == call.id
    assert done_call.function.output == "22C"
    assert steps[0].completed_at is not None
    (message,) = run_messages(client, thread_id, run.id)
    assert text_of(message) == "It is sunny in Paris."
    assert steps[1].step_details.message_creation.message_id == message.id

    first, second = server.scripted.requests_for(model)
    assert model_contents(first) == [("user", "Weather in Paris?")]
    assert second.messages == [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": call.function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": "22C"},
    ]


def test_parallel_calls_need_all_outputs_in_one_request(
    client: openai.OpenAI, server: LiveServer, http: httpx.Client
) -> None:
    model = new_model()
    server.scripted.queue(
        tool_reply(("get_weather", {"city": "Oslo"}), ("get_time", {"zone": "CET"})),
        text_reply("Cold, and it is noon."),
        model=model,
    )
    assistant = weather_assistant(client, model)
    thread_id = thread_with(client, "Weather and time in Oslo?")
    run = client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant.id)
    assert run.status == "requires_action"
    assert run.required_action is not None
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert [json.loads(c.function.arguments) for c in calls] == [{"city": "Oslo"}, {"zone": "CET"}]
    assert len({c.id for c in calls}) == 2
    (step,) = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id).data
    assert [c.id for c in step.step_details.tool_calls] == [c.id for c in calls]
    before = http.get(f"/threads/{thread_id}/runs/{run.id}").json()
    url = f"/threads/{thread_id}/runs/{run.id}/submit_tool_outputs"
    weather, clock_call = calls

    partial = assert_error(
        http.post(url, json={"tool_outputs": [{"tool_call_id": weather.id, "output": "-3C"}]}),
        400,
        param="tool_outputs",
    )
    assert clock_call.id in partial["message"]
    assert "single request" in partial["message"]

    unknown = assert_error(
        http.post(
            url,
            json={
                "tool_outputs": [
                    {"tool_call_id": weather.id, "output": "-3C"},
                    {"tool_call_id": "call_unknown", "output": "?"},
                ]
            },
        ),
        400,
        param="tool_outputs[1].tool_call_id",
        code="invalid_value",
    )
    assert "call_unknown" in unknown["message"]

    duplicate = assert_error(
        http.post(
            url,
            json={
                "tool_outputs": [
                    {"tool_call_id": weather.id, "output": "-3C"},
                    {"tool_call_id": weather.id, "output": "-4C"},
                    {"tool_call_id": clock_call.id, "output": "12:00"},
                ]
            },
        ),
        400,
        param="tool_outputs[1].tool_call_id",
    )
    assert "duplicate" in duplicate["message"]

    # None of the refused submissions changed the run or its step.
    assert http.get(f"/threads/{thread_id}/runs/{run.id}").json() == before
    (unchanged,) = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id).data
    assert unchanged.status == "in_progress"
    assert all(c.function.output is None for c in unchanged.step_details.tool_calls)
    assert len(server.scripted.requests_for(model)) == 1

    final = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread_id,
        tool_outputs=[
            {"tool_call_id": clock_call.id, "output": "12:00"},
            {"tool_call_id": weather.id, "output": "-3C"},
        ],
    )
    assert final.status == "completed", final
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id, order="asc").data
    outputs = {c.id: c.function.output for c in steps[0].step_details.tool_calls}
    assert outputs == {weather.id: "-3C", clock_call.id: "12:00"}
    second = server.scripted.requests_for(model)[1]
    assert [m["role"] for m in second.messages] == ["user", "assistant", "tool", "tool"]
    assert [c["id"] for c in second.messages[1]["tool_calls"]] == [weather.id, clock_call.id]
    assert second.messages[2:] == [
        {"role": "tool", "tool_call_id": weather.id, "content": "-3C"},
        {"role": "tool", "tool_call_id": clock_call.id, "content": "12:00"},
    ]


def test_text_then_tool_call_in_one_reply(client: openai.OpenAI, server: LiveServer) -> None:
    model = new_model()
    server.scripted.queue(
        Reply(text="Let me check.", tool_calls=[ScriptedCall("get_weather", {"city": "Turin"})]),
        text_reply("Foggy."),
        model=model,
    )
    assistant = weather_assistant(client, model)
    thread_id = thread_with(client, "Turin?")
    run = client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant.id)
    assert run.status == "requires_action"
    assert run.required_action is not None
    (call,) = run.required_action.submit_tool_outputs.tool_calls
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id, order="asc").data
    assert [(s.type, s.status) for s in steps] == [
        ("message_creation", "completed"),
        ("tool_calls", "in_progress"),
    ]
    (message,) = run_messages(client, thread_id, run.id)
    assert (message.status, text_of(message)) == ("completed", "Let me check.")
    final = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread_id,
        tool_outputs=[{"tool_call_id": call.id, "output": "fog"}],
    )
    assert final.status == "completed"
    assert [text_of(m) for m in run_messages(client, thread_id, run.id)] == [
        "Let me check.",
        "Foggy.",
    ]
    second = server.scripted.requests_for(model)[1]
    # The text and the call the model produced together go back as one assistant turn.
    assert [(m["role"], m.get("content")) for m in second.messages] == [
        ("user", "Turin?"),
        ("assistant", "Let me check."),
        ("tool", "fog"),
    ]
    assert [c["id"] for c in second.messages[1]["tool_calls"]] == [call.id]


def test_empty_tools_override_removes_the_assistants_tools(
    client: openai.OpenAI, server: LiveServer
) -> None:
    model = new_model()
    assistant = weather_assistant(client, model)
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_with(client, "?"), assistant_id=assistant.id, tools=[]
    )
    assert run.status == "completed"
    assert run.tools == []
    (request,) = server.scripted.requests_for(model)
    assert request.tools == []
    assert request.tool_choice is None


def test_submit_when_not_requires_action(client: openai.OpenAI, server: LiveServer) -> None:
    model = new_model()
    assistant = client.beta.assistants.create(model=model)
    thread_id = thread_with(client, "hi")
    run = client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant.id)
    assert run.status == "completed"
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.runs.submit_tool_outputs(
            run.id, thread_id=thread_id, tool_outputs=[{"tool_call_id": "call_x", "output": "1"}]
        )
    assert error_body(exc)["message"] == 'Runs in status "completed" do not accept tool outputs.'
    after = client.beta.threads.runs.retrieve(run.id, thread_id=thread_id)
    assert after.status == "completed"
    assert after.completed_at == run.completed_at


def test_parallel_tool_calls_false_keeps_one_call(
    client: openai.OpenAI, server: LiveServer
) -> None:
    model = new_model()
    server.scripted.queue(
        tool_reply(("get_weather", {"city": "Rome"}), ("get_time", {"zone": "CET"})),
        text_reply("Warm."),
        model=model,
    )
    assistant = weather_assistant(client, model)
    thread_id = thread_with(client, "Rome?")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant.id, parallel_tool_calls=False
    )
    assert run.status == "requires_action"
    assert run.parallel_tool_calls is False
    assert run.required_action is not None
    (call,) = run.required_action.submit_tool_outputs.tool_calls
    assert call.function.name == "get_weather"
    (step,) = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id).data
    assert [c.id for c in step.step_details.tool_calls] == [call.id]
    (request,) = server.scripted.requests_for(model)
    assert request.parallel_tool_calls is False
    final = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread_id,
        tool_outputs=[{"tool_call_id": call.id, "output": "25C"}],
    )
    assert final.status == "completed"
    second = server.scripted.requests_for(model)[1]
    assert [c["id"] for c in second.messages[1]["tool_calls"]] == [call.id]
    assert second.messages[2] == {"role": "tool", "tool_call_id": call.id, "content": "25C"}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("none", "none"),
        ("required", "required"),
        ("auto", "auto"),
        (
            {"type": "function", "function": {"name": "get_time"}},
            {"type": "function", "function": {"name": "get_time"}},
        ),
    ],
)
def test_tool_choice_is_passed_to_the_model(
    client: openai.OpenAI, server: LiveServer, choice: Any, expected: Any
) -> None:
    model = new_model()
    server.scripted.queue(text_reply("Fine."), model=model)
    assistant = weather_assistant(client, model)
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_with(client, "?"), assistant_id=assistant.id, tool_choice=choice
    )
    assert run.status == "completed"
    echoed = run.tool_choice if isinstance(run.tool_choice, str) else run.tool_choice.to_dict()
    assert echoed == expected
    (request,) = server.scripted.requests_for(model)
    assert request.tool_choice == expected
    assert [t["function"]["name"] for t in request.tools] == ["get_weather", "get_time"]


def test_named_builtin_tool_choice_forces_its_function(
    client: openai.OpenAI, server: LiveServer
) -> None:
    model = new_model()
    server.scripted.queue(text_reply("Fine."), model=model)
    assistant = client.beta.assistants.create(
        model=model, tools=[{"type": "code_interpreter"}, fn_tool("get_weather", city="string")]
    )
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_with(client, "?"),
        assistant_id=assistant.id,
        tool_choice={"type": "code_interpreter"},
    )
    assert run.status == "completed"
    assert run.tool_choice is not None
    assert not isinstance(run.tool_choice, str)
    assert run.tool_choice.type == "code_interpreter"
    (request,) = server.scripted.requests_for(model)
    # The built-in tool is offered as the function "python", and that one is forced.
    assert request.tool_choice == {"type": "function", "function": {"name": "python"}}
    assert [t["function"]["name"] for t in request.tools] == ["get_weather", "python"]


def test_named_tool_choice_must_be_in_tools(client: openai.OpenAI, server: LiveServer) -> None:
    model = new_model()
    assistant = weather_assistant(client, model)
    thread_id = thread_with(client, "?")
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.runs.create(
            thread_id,
            assistant_id=assistant.id,
            tool_choice={"type": "function", "function": {"name": "launch_rocket"}},
        )
    assert error_body(exc)["param"] == "tool_choice"
    assert "launch_rocket" in error_body(exc)["message"]
    # Checked against the run's tools when they are overridden.
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.runs.create(
            thread_id,
            assistant_id=assistant.id,
            tools=[fn_tool("other")],
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
        )
    assert error_body(exc)["param"] == "tool_choice"
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.runs.create(
            thread_id, assistant_id=assistant.id, tool_choice={"type": "file_search"}
        )
    assert error_body(exc)["param"] == "tool_choice"
    assert client.beta.threads.runs.list(thread_id).data == []
    assert server.scripted.requests_for(model) == []


def test_no_function_tools_sends_no_tool_choice(client: openai.OpenAI, server: LiveServer) -> None:
    model = new_model()
    assistant = client.beta.assistants.create(model=model)
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_with(client, "?"), assistant_id=assistant.id
    )
    assert run.status == "completed"
    assert run.tools == []
    (request,) = server.scripted.requests_for(model)
    assert request.tools == []
    assert request.tool_choice is None
    assert request.parallel_tool_calls is None
