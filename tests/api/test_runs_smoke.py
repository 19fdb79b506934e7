from __future__ import annotations

import openai

from assistd.backends.scripted import text_reply, tool_reply
from tests.conftest import LiveServer


def test_run_poll(client: openai.OpenAI, server: LiveServer) -> None:
    server.scripted.queue(text_reply("Hello there, how are you?"), model="m1")
    a = client.beta.assistants.create(model="m1", instructions="Be nice")
    t = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id)
    assert run.status == "completed", run
    msgs = client.beta.threads.messages.list(t.id)
    assert msgs.data[0].content[0].text.value == "Hello there, how are you?"
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=t.id)
    assert steps.data[0].type == "message_creation"


def test_stream_tools(client: openai.OpenAI, server: LiveServer) -> None:
    server.scripted.queue(
        tool_reply(("get_weather", {"city": "Paris"})), text_reply("It is sunny."), model="m2"
    )
    a = client.beta.assistants.create(
        model="m2",
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            }
        ],
    )
    t = client.beta.threads.create(messages=[{"role": "user", "content": "weather?"}])
    with client.beta.threads.runs.stream(thread_id=t.id, assistant_id=a.id) as stream:
        for ev in stream:
            pass
        run = stream.get_final_run()
    assert run.status == "requires_action"
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    with client.beta.threads.runs.submit_tool_outputs_stream(
        thread_id=t.id, run_id=run.id, tool_outputs=[{"tool_call_id": call.id, "output": "sunny"}]
    ) as stream:
        text = "".join(stream.text_deltas)
    assert text == "It is sunny."
    final = client.beta.threads.runs.retrieve(run.id, thread_id=t.id)
    assert final.status == "completed"
    assert final.usage is not None
