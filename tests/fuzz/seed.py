"""Real objects for the fuzz cases to hit: without them nearly every generated id is
unknown and the cases stop at 404 before reaching the handlers' interesting parts."""

from __future__ import annotations

import json
from typing import Any

import openai
import schemathesis

from tests.api.run_support import wait_run

# Body fields that name an object; a case aimed at real objects names the seeded ones.
BODY_IDS = {"assistant_id": "assistant_id", "file_id": "file_id", "thread_id": "thread_id"}
BODY_ID_LISTS = {"file_ids": "file_id"}


def seed(client: openai.OpenAI) -> dict[str, str]:
    """One of each object, keyed by the spec's path parameter names."""
    assistant = client.beta.assistants.create(model="gpt-4o", name="fuzz")
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
    }


def aim(case: schemathesis.Case, ids: dict[str, str]) -> schemathesis.Case:
    """The case with its body's object ids replaced by the seeded objects'."""
    if isinstance(case.body, dict):
        for field, name in BODY_IDS.items():
            if field in case.body:
                case.body[field] = ids[name]
        for field, name in BODY_ID_LISTS.items():
            if isinstance(case.body.get(field), list):
                case.body[field] = [ids[name]]
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
