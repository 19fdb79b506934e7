"""The two projects of the isolation test (``test_isolation.py``): what each makes, what
the owner re-reads to see that nothing of its changed, ids that name nothing, and the
routes an app serves."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterable
from dataclasses import astuple, dataclass
from typing import Any

import httpx
import openai
from fastapi import FastAPI

from assistd import ids
from assistd.backends.scripted import text_reply
from tests.api.run_support import new_model
from tests.api.vs_support import stores, wait_until
from tests.conftest import LiveServer

Json = Any


@dataclass(frozen=True)
class Ids:
    """One of everything, made by one project."""

    assistant: str
    thread: str
    message: str
    run: str
    step: str
    file: str
    batch_file: str
    vector_store: str
    batch: str


def secret(tag: str) -> str:
    """Text only project ``tag``'s objects hold: no answer to another project may show it."""
    return f"{tag}-secret-7c1e"


def make_project(server: LiveServer, tag: str) -> tuple[Ids, str, str]:
    """A project with an assistant (with tool_resources), a thread with a message with an
    attachment, a completed run with its step, a file, a vector store with the file
    ingested and a completed file batch. Returns its ids, its name and its key."""
    project = f"proj_{tag}_{secrets.token_hex(4)}"
    key = server.new_key(project)
    words = secret(tag)
    with openai.OpenAI(
        base_url=server.base_url, api_key=key, max_retries=0, _strict_response_validation=True
    ) as client:
        file = client.files.create(
            file=(f"{tag}.txt", f"{words} policy".encode()), purpose="assistants"
        )
        batch_file = client.files.create(
            file=(f"{tag}-2.txt", words.encode()), purpose="assistants"
        )
        store = stores(client).create(name=words, file_ids=[file.id], metadata={"p": tag})
        wait_until(lambda: stores(client).retrieve(store.id).status == "completed")
        batch = stores(client).file_batches.create_and_poll(
            vector_store_id=store.id, file_ids=[batch_file.id]
        )
        assert batch.status == "completed", batch
        model = new_model()
        assistant = client.beta.assistants.create(
            model=model,
            name=words,
            instructions=words,
            tools=[{"type": "code_interpreter"}, {"type": "file_search"}],
            tool_resources={
                "code_interpreter": {"file_ids": [file.id]},
                "file_search": {"vector_store_ids": [store.id]},
            },
            metadata={"p": tag},
        )
        thread = client.beta.threads.create(
            messages=[
                {
                    "role": "user",
                    "content": words,
                    "attachments": [{"file_id": file.id, "tools": [{"type": "code_interpreter"}]}],
                }
            ],
            tool_resources={"code_interpreter": {"file_ids": [file.id]}},
            metadata={"p": tag},
        )
        (message,) = client.beta.threads.messages.list(thread.id).data
        server.scripted.queue(text_reply(f"{words} reply"), model=model)
        run = client.beta.threads.runs.create_and_poll(
            thread_id=thread.id, assistant_id=assistant.id
        )
        assert run.status == "completed", run
        (step,) = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data
    made = Ids(
        assistant=assistant.id,
        thread=thread.id,
        message=message.id,
        run=run.id,
        step=step.id,
        file=file.id,
        batch_file=batch_file.id,
        vector_store=store.id,
        batch=batch.id,
    )
    return made, project, key


def ghost_of(object_id: str) -> str:
    """An id of the same kind and the same sort key (so it pages at the same place as a
    cursor) that names nothing."""
    prefix = max((p for p in ids.PREFIXES.values() if object_id.startswith(p)), key=len)
    head = object_id[: len(prefix) + ids.KEY_CHARS]
    while (made := head + ids.new_id("file")[-ids.RANDOM_CHARS :]) == object_id:
        pass
    return made


def snapshot_paths(a: Ids) -> list[str]:
    """What A re-reads to see that nothing of its changed (the lists hold every object)."""
    vs = f"/vector_stores/{a.vector_store}"
    return [
        "/assistants",
        "/threads",
        f"/threads/{a.thread}/messages",
        f"/threads/{a.thread}/runs",
        f"/threads/{a.thread}/runs/{a.run}/steps",
        "/files",
        f"/files/{a.file}/content",
        "/vector_stores",
        f"{vs}/files",
        f"{vs}/files/{a.file}/content",
        f"{vs}/file_batches/{a.batch}",
        f"{vs}/file_batches/{a.batch}/files",
    ]


def snapshot(http: httpx.Client, made: Ids) -> dict[str, str]:
    taken = {}
    for path in snapshot_paths(made):
        response = http.get(path)
        assert response.status_code == 200, (path, response.text)
        taken[path] = response.text
    return taken


def ids_in(value: Json) -> set[str]:
    """Every object id a JSON document holds (values of ``id`` and ``*_id`` keys)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str) and (key == "id" or key.endswith("_id")):
                found.add(item)
            else:
                found |= ids_in(item)
    elif isinstance(value, list):
        for item in value:
            found |= ids_in(item)
    return found


@dataclass
class World:
    """Both projects, an HTTP client for each, and A as it was before the intruder came."""

    a: Ids
    b: Ids
    projects: tuple[str, str]  # A's and B's names
    ghost: Ids  # A's ids, each swapped for one that names nothing
    owner: httpx.Client
    intruder: httpx.Client
    before: dict[str, str]  # A's snapshot
    a_ids: set[str]  # every id A's objects hold or name
    b_ids: set[str]

    damaged_by: str | None = None  # the first call seen to change A's objects

    def assert_a_intact(self, after: str) -> None:
        now = snapshot(self.owner, self.a)
        for path, text in self.before.items():
            if now[path] != text:
                self.damaged_by = after
            assert now[path] == text, f"{after} changed A's {path}"


def documents(taken: dict[str, str]) -> list[Json]:
    """The JSON answers of a snapshot (a file's content is not one)."""
    parsed = []
    for text in taken.values():
        try:
            parsed.append(json.loads(text))
        except ValueError:
            continue
    return parsed


def served_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path template) of every route the app serves, HEAD aside.

    Newer FastAPI keeps included routers as branches (``effective_candidates``) rather
    than copying their routes into ``app.routes``: both shapes are walked."""
    found: set[tuple[str, str]] = set()

    def walk(routes: Iterable[Any]) -> None:
        for route in routes:
            path = getattr(route, "path_format", None) or getattr(route, "path", None)
            methods = getattr(route, "methods", None)
            if path and methods:
                found.update((m, re.sub(r":\w+\}", "}", path)) for m in methods if m != "HEAD")
            candidates = getattr(route, "effective_candidates", None)
            if callable(candidates):
                walk(candidates())

    walk(app.routes)
    return found


def swap_ids(text: str, source: Ids, target: Ids) -> str:
    for old, new in zip(astuple(source), astuple(target), strict=True):
        text = text.replace(old, new)
    return text
