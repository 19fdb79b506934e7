"""Real objects for the fuzz cases to hit: without them nearly every generated id is
unknown and the cases stop at 404 before reaching the handlers' interesting parts."""

from __future__ import annotations

import json
from typing import Any

import openai
import schemathesis

from tests.api.run_support import wait_run, waiting_run
from tests.conftest import LiveServer

# Body fields that name an object; a case aimed at real objects names the seeded ones.
BODY_IDS = {"assistant_id": "assistant_id", "file_id": "file_id", "thread_id": "thread_id"}
BODY_ID_LISTS = {"file_ids": "file_id"}
# What assistd refuses in chat completions by design (400 unsupported_value: n > 1, logprobs,
# the deprecated functions API): an aimed case leaves it out so that it reaches the model.
CHAT_REFUSED = ("n", "logprobs", "top_logprobs", "functions", "function_call", "stream_options")
EMBEDDING_MODEL = "text-embedding-3-small"
# Operations on a run that only an active run gets past: they aim at the waiting run.
ON_ACTIVE_RUN = ("/cancel", "/submit_tool_outputs")


def seed(client: openai.OpenAI, server: LiveServer) -> dict[str, str]:
    """One of each object, keyed by the spec's path parameter names (``waiting_*``: a run
    parked in requires_action and its thread, ``tool_call_id``: the call it waits on)."""
    assistant, waiting = waiting_run(client, server)
    file = client.files.create(file=("notes.txt", b"The fuzz seed file.\n"), purpose="assistants")
    store = client.vector_stores.create(name="fuzz", file_ids=[file.id])
    batch = client.vector_stores.file_batches.create(store.id, file_ids=[file.id])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hello"}])
    run = client.beta.threads.runs.create(thread.id, assistant_id=assistant.id)
    run = wait_run(client, run, {"completed"})
    step = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data[0]
    message = client.beta.threads.messages.list(thread.id).data[0]
    return {
        "assistant_id": assistant.id,
        "file_id": file.id,
        "vector_store_id": store.id,
        "batch_id": batch.id,
        "thread_id": thread.id,
        "run_id": run.id,
        "step_id": step.id,
        "message_id": message.id,
        "model": "gpt-4o",
        "waiting_thread_id": waiting.thread_id,
        "waiting_run_id": waiting.id,
        "tool_call_id": waiting.required_action.submit_tool_outputs.tool_calls[0].id,
    }


def path_parameters(path: str, ids: dict[str, str]) -> dict[str, str]:
    """The seeded objects for the path's parameters."""
    if path.endswith(ON_ACTIVE_RUN):
        ids = {**ids, "thread_id": ids["waiting_thread_id"], "run_id": ids["waiting_run_id"]}
    return {name: value for name, value in ids.items() if "{" + name + "}" in path}


def aim(case: schemathesis.Case, ids: dict[str, str]) -> schemathesis.Case:
    """The case with its body's object ids replaced by the seeded objects' (and, for the
    model endpoints, a model that serves it and only what assistd supports)."""
    body = case.body
    if not isinstance(body, dict):
        return case
    path = case.operation.path
    for field, name in BODY_IDS.items():
        if field in body:
            body[field] = ids[name]
    for field, name in BODY_ID_LISTS.items():
        if isinstance(body.get(field), list):
            body[field] = [ids[name]]
    if path.endswith("/submit_tool_outputs") and isinstance(body.get("tool_outputs"), list):
        outputs = [o for o in body["tool_outputs"] if isinstance(o, dict)] or [{}]
        body["tool_outputs"] = [{**outputs[0], "tool_call_id": ids["tool_call_id"]}]
    if path == "/embeddings":
        body["model"] = EMBEDDING_MODEL
    if path == "/chat/completions":
        for field in CHAT_REFUSED:
            body.pop(field, None)
        if isinstance(body.get("messages"), list):
            kept = [
                m
                for m in body["messages"]
                if not (isinstance(m, dict) and m.get("role") == "function")
            ]
            body["messages"] = kept or [{"role": "user", "content": "Hello"}]
    return case


def streamed(case: schemathesis.Case) -> schemathesis.Case:
    if isinstance(case.body, dict):
        case.body["stream"] = True
    return case


def sse_events(text: str) -> list[dict[str, Any]]:
    """``{"event", "data"}`` of each frame of a server-sent event stream (comments skipped)."""
    events = []
    for frame in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, list[str]] = {}
        for line in frame.split("\n"):
            if line and not line.startswith(":"):
                name, _, value = line.partition(":")
                fields.setdefault(name, []).append(value.removeprefix(" "))
        if "data" in fields:
            data = "\n".join(fields["data"])
            event = fields.get("event", ["message"])[0]
            events.append({"event": event, "data": data if data == "[DONE]" else json.loads(data)})
    return events
