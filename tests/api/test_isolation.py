"""Isolation by construction: every /v1 route, called from another project with this
project's ids, answers exactly as for ids that never existed, and changes nothing.

Project A (the owner) makes one of everything; project B (the intruder, a fresh key) makes
the same, then calls every route with A's ids in the path, the body or the query. Each case:

* answers what the table says: 404 for an object the path names, 400 (``invalid_value``,
  naming the parameter) for a file or vector store a body refers to, as assistd answers a
  missing one (OpenAI documents neither; the ``assistant_id`` of a run is a 404 and the
  ``assistant`` of a chat completion a 400 as OpenAI answers them), and for a list only
  B's own objects, also with A's ids as ``after``/``before`` cursors or filters;
* is the very answer a made-up id gets (same status and body, ids swapped): nothing tells
  B whether A's object exists;
* shows none of A's content, and leaves A's objects as they were (A re-reads them all).

The table is checked against the app's routes: a /v1 route with no case (and not in
``NO_OBJECT_ID``) fails ``test_every_route_has_a_case``, and so does a case for a route
the app no longer serves. Ids in the table are ``{a.thread}`` (A's), ``{b.thread}`` (B's
own); the route a case exercises is its path with those turned back into parameters.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Any

import httpx
import pytest

from assistd import ids
from assistd.http.app import create_app
from tests.api.isolation_support import (
    Ids,
    Json,
    World,
    documents,
    ghost_of,
    ids_in,
    make_project,
    secret,
    served_routes,
    snapshot,
    swap_ids,
)
from tests.conftest import LiveServer, assert_error, make_settings, raw_client

# ---- the two projects ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(server: LiveServer) -> Iterator[World]:
    a, a_project, a_key = make_project(server, "A")
    b, b_project, b_key = make_project(server, "B")
    ghost = Ids(*(ghost_of(i) for i in astuple(a)))
    with raw_client(server, a_key) as owner, raw_client(server, b_key) as intruder:
        before = snapshot(owner, a)
        b_snapshot = snapshot(intruder, b)
        yield World(
            a=a,
            b=b,
            projects=(a_project, b_project),
            ghost=ghost,
            owner=owner,
            intruder=intruder,
            before=before,
            a_ids=set(astuple(a)) | ids_in(documents(before)),
            b_ids=set(astuple(b)) | ids_in(documents(b_snapshot)),
        )


# ---- the table -------------------------------------------------------------------------------


# A case's path names ids as ``{a.<field>}``/``{b.<field>}``; the route has these instead.
ROUTE_PARAMS = {
    "assistant": "assistant_id",
    "thread": "thread_id",
    "message": "message_id",
    "run": "run_id",
    "step": "step_id",
    "file": "file_id",
    "vector_store": "vector_store_id",
    "batch": "batch_id",
}


@dataclass(frozen=True)
class Case:
    """One call of the intruder. ``status`` 200: a list, which must hold only B's objects."""

    method: str
    path: str
    status: int
    message: str | None = None  # None: message and param not checked (see the case)
    param: str | None = None
    code: str | None = None
    body: Json = None
    query: dict[str, str] | None = None
    note: str = ""  # tells cases of one path apart in the test id

    @property
    def route(self) -> tuple[str, str]:
        template = re.sub(r"\{[ab]\.(\w+)\}", lambda m: "{" + ROUTE_PARAMS[m[1]] + "}", self.path)
        return self.method, "/v1" + template

    def __str__(self) -> str:
        query = "&".join(f"{k}={v}" for k, v in (self.query or {}).items())
        shown = f"{self.method} {self.path}" + (f"?{query}" if query else "")
        return f"{shown} {self.note}" if self.note else shown


# What a 404 calls each kind of object, where it is not the field's name.
KINDS = {"vector_store": "vector store", "batch": "vector store file batch", "step": "run step"}


def gone(method: str, path: str, named: str, body: Json = None, **kw: Any) -> Case:
    """404: the path (or ``assistant_id``) names A's object ``named`` (e.g. ``a.thread``)."""
    field = named.removeprefix("a.")
    message = f"No {KINDS.get(field, field)} found with id '{{{named}}}'."
    return Case(method, path, 404, message, body=body, **kw)


def refused(method: str, path: str, param: str, body: Json) -> Case:
    """400 naming ``param``: the body refers to A's file (or vector store)."""
    named = "a.vector_store" if "vector_store_ids" in param else "a.file"
    kind = "vector store" if named == "a.vector_store" else "file"
    message = f"Invalid '{param}': no {kind} found with id '{{{named}}}'."
    return Case(method, path, 400, message, param, "invalid_value", body, note=param)


def listed(path: str, **query: str) -> Case:
    return Case("GET", path, 200, query=query or None)


def with_cursors(path: str, cursor: str) -> list[Case]:
    """The list plain, and with A's id (``cursor``, e.g. ``{a.run}``) as either cursor."""
    return [listed(path), listed(path, after=cursor), listed(path, before=cursor)]


def read_modify_delete(path: str, named: str, modify: Json = None) -> list[Case]:
    modify = modify or {"metadata": {"p": "stolen"}}
    return [
        gone("GET", path, named),
        gone("POST", path, named, modify),
        gone("DELETE", path, named),
    ]


CI = {"code_interpreter": {"file_ids": ["{a.file}"]}}
VSI = {"file_search": {"vector_store_ids": ["{a.vector_store}"]}}
HELPER = {"file_search": {"vector_stores": [{"file_ids": ["{a.file}"]}]}}
ATTACHED = [{"file_id": "{a.file}", "tools": [{"type": "code_interpreter"}]}]
IMAGE = [{"type": "image_file", "image_file": {"file_id": "{a.file}"}}]
CI_P = "tool_resources.code_interpreter.file_ids[0]"
VSI_P = "tool_resources.file_search.vector_store_ids[0]"
HELPER_P = "tool_resources.file_search.vector_stores[0].file_ids[0]"
TOOLS = {"model": "gpt-4o", "tools": [{"type": "code_interpreter"}, {"type": "file_search"}]}
HI = {"role": "user", "content": "hi"}
B_ASST = {"assistant_id": "{b.assistant}"}
A_ASST = {"assistant_id": "{a.assistant}"}
OUTPUTS = {"tool_outputs": [{"tool_call_id": "call_x", "output": "x"}]}
STOLEN = {"metadata": {"p": "stolen"}}
A_MSGS, B_MSGS = "/threads/{a.thread}/messages", "/threads/{b.thread}/messages"
A_RUN, B_A_RUN = "/threads/{a.thread}/runs/{a.run}", "/threads/{b.thread}/runs/{a.run}"
A_VS, B_VS = "/vector_stores/{a.vector_store}", "/vector_stores/{b.vector_store}"
A_BATCH, B_A_BATCH = A_VS + "/file_batches/{a.batch}", B_VS + "/file_batches/{a.batch}"
IN_B_VS = "No file found with id '{a.file}' in vector store '{b.vector_store}'."


CASES: list[Case] = [
    # assistants
    refused("POST", "/assistants", CI_P, {**TOOLS, "tool_resources": CI}),
    refused("POST", "/assistants", VSI_P, {**TOOLS, "tool_resources": VSI}),
    refused("POST", "/assistants", HELPER_P, {**TOOLS, "tool_resources": HELPER}),
    *with_cursors("/assistants", "{a.assistant}"),
    *read_modify_delete("/assistants/{a.assistant}", "a.assistant"),
    refused("POST", "/assistants/{b.assistant}", CI_P, {"tool_resources": CI}),
    refused("POST", "/assistants/{b.assistant}", VSI_P, {"tool_resources": VSI}),
    # threads
    refused("POST", "/threads", CI_P, {"tool_resources": CI}),
    refused("POST", "/threads", VSI_P, {"tool_resources": VSI}),
    refused("POST", "/threads", HELPER_P, {"tool_resources": HELPER}),
    refused(
        "POST",
        "/threads",
        "messages[0].attachments[0].file_id",
        {"messages": [{**HI, "attachments": ATTACHED}]},
    ),
    refused(
        "POST",
        "/threads",
        "messages[0].content[0].image_file.file_id",
        {"messages": [{**HI, "content": IMAGE}]},
    ),
    *with_cursors("/threads", "{a.thread}"),  # assistd's extension: the console browses it
    *read_modify_delete("/threads/{a.thread}", "a.thread"),
    refused("POST", "/threads/{b.thread}", CI_P, {"tool_resources": CI}),
    refused("POST", "/threads/{b.thread}", VSI_P, {"tool_resources": VSI}),
    # create thread and run: its thread is made in the same transaction, so nothing stays
    gone("POST", "/threads/runs", "a.assistant", A_ASST, param="assistant_id", note="assistant_id"),
    refused("POST", "/threads/runs", CI_P, {**B_ASST, "tool_resources": CI}),
    # The thread's own tool_resources are reported without the "thread." prefix its
    # messages get: only what any missing store gets is checked (the ghost comparison).
    Case(
        "POST",
        "/threads/runs",
        400,
        code="invalid_value",
        body={**B_ASST, "thread": {"tool_resources": VSI}},
        note="thread.tool_resources",
    ),
    refused(
        "POST",
        "/threads/runs",
        "thread.messages[0].attachments[0].file_id",
        {**B_ASST, "thread": {"messages": [{**HI, "attachments": ATTACHED}]}},
    ),
    # messages
    gone("POST", A_MSGS, "a.thread", HI),
    refused("POST", B_MSGS, "attachments[0].file_id", {**HI, "attachments": ATTACHED}),
    refused("POST", B_MSGS, "content[0].image_file.file_id", {**HI, "content": IMAGE}),
    gone("GET", A_MSGS, "a.thread"),
    *with_cursors(B_MSGS, "{a.message}"),
    listed(B_MSGS, run_id="{a.run}"),
    *read_modify_delete(A_MSGS + "/{a.message}", "a.thread"),
    *read_modify_delete(B_MSGS + "/{a.message}", "a.message"),
    # runs
    gone("POST", "/threads/{a.thread}/runs", "a.thread", B_ASST),
    gone(
        "POST",
        "/threads/{b.thread}/runs",
        "a.assistant",
        A_ASST,
        param="assistant_id",
        note="assistant_id",
    ),
    refused(
        "POST",
        "/threads/{b.thread}/runs",
        "additional_messages[0].attachments[0].file_id",
        {**B_ASST, "additional_messages": [{**HI, "attachments": ATTACHED}]},
    ),
    gone("GET", "/threads/{a.thread}/runs", "a.thread"),
    *with_cursors("/threads/{b.thread}/runs", "{a.run}"),
    gone("GET", A_RUN, "a.thread"),
    gone("GET", B_A_RUN, "a.run"),
    gone("GET", B_A_RUN, "a.run", query={"stream": "true"}),  # assistd's attach to a run
    gone("POST", A_RUN, "a.thread", STOLEN),
    gone("POST", B_A_RUN, "a.run", STOLEN),
    gone("POST", A_RUN + "/cancel", "a.thread"),
    gone("POST", B_A_RUN + "/cancel", "a.run"),
    gone("POST", A_RUN + "/submit_tool_outputs", "a.thread", OUTPUTS),
    gone("POST", B_A_RUN + "/submit_tool_outputs", "a.run", OUTPUTS),
    # run steps
    gone("GET", A_RUN + "/steps", "a.thread"),
    gone("GET", B_A_RUN + "/steps", "a.run"),
    *with_cursors("/threads/{b.thread}/runs/{b.run}/steps", "{a.step}"),
    gone("GET", A_RUN + "/steps/{a.step}", "a.thread"),
    gone("GET", B_A_RUN + "/steps/{a.step}", "a.run"),
    gone("GET", "/threads/{b.thread}/runs/{b.run}/steps/{a.step}", "a.step"),
    # files (POST /files refers to nothing: see NO_OBJECT_ID)
    listed("/files"),
    listed("/files", after="{a.file}"),  # /files has no `before`
    gone("GET", "/files/{a.file}", "a.file"),
    gone("DELETE", "/files/{a.file}", "a.file"),
    gone("GET", "/files/{a.file}/content", "a.file"),
    # chat completions: assistd's `assistant` extension (an unknown one is OpenAI's 400 for
    # a bad parameter). A `file` content part's file_id is not looked up by assistd at all:
    # it is forwarded to the model verbatim, so nothing of any project is read for it.
    Case(
        "POST",
        "/chat/completions",
        400,
        "No assistant found with id '{a.assistant}'.",
        param="assistant",
        body={"assistant": "{a.assistant}", "messages": [HI]},
        note="assistant",
    ),
    # vector stores
    refused("POST", "/vector_stores", "file_ids[0]", {"file_ids": ["{a.file}"]}),
    *with_cursors("/vector_stores", "{a.vector_store}"),
    *read_modify_delete(A_VS, "a.vector_store"),
    gone("POST", A_VS + "/search", "a.vector_store", {"query": "policy"}),
    # vector store files
    gone("POST", A_VS + "/files", "a.vector_store", {"file_id": "{b.file}"}),
    refused("POST", B_VS + "/files", "file_id", {"file_id": "{a.file}"}),
    gone("GET", A_VS + "/files", "a.vector_store"),
    *with_cursors(B_VS + "/files", "{a.file}"),
    *read_modify_delete(A_VS + "/files/{a.file}", "a.vector_store", {"attributes": {}}),
    Case("GET", B_VS + "/files/{a.file}", 404, IN_B_VS),
    Case("POST", B_VS + "/files/{a.file}", 404, IN_B_VS, body={"attributes": {}}),
    Case("DELETE", B_VS + "/files/{a.file}", 404, IN_B_VS),
    gone("GET", A_VS + "/files/{a.file}/content", "a.vector_store"),
    Case("GET", B_VS + "/files/{a.file}/content", 404, IN_B_VS),
    # file batches
    gone("POST", A_VS + "/file_batches", "a.vector_store", {"file_ids": ["{b.file}"]}),
    refused("POST", B_VS + "/file_batches", "file_ids[0]", {"file_ids": ["{a.file}"]}),
    refused(
        "POST", B_VS + "/file_batches", "files[0].file_id", {"files": [{"file_id": "{a.file}"}]}
    ),
    gone("GET", A_BATCH, "a.vector_store"),
    gone("GET", B_A_BATCH, "a.batch"),
    gone("POST", A_BATCH + "/cancel", "a.vector_store"),
    gone("POST", B_A_BATCH + "/cancel", "a.batch"),
    gone("GET", A_BATCH + "/files", "a.vector_store"),
    gone("GET", B_A_BATCH + "/files", "a.batch"),
    *with_cursors(B_VS + "/file_batches/{b.batch}/files", "{a.batch_file}"),
]

# Routes that take no object id at all, so another project's ids cannot reach anything.
NO_OBJECT_ID = {
    ("GET", "/v1/models"),  # models are the server's, shared by every project
    ("GET", "/v1/models/{model}"),
    ("POST", "/v1/embeddings"),  # input text only; no stored object
    ("POST", "/v1/files"),  # an upload: a new object, referring to none
    # The caller's own project's usage, filtered by date and model only; that another
    # project's never shows is tested in test_usage.py.
    ("GET", "/v1/usage"),
}


# ---- the tests -------------------------------------------------------------------------------


def fill(value: Json, a: Ids, b: Ids) -> Json:
    """``value`` with ``{a.x}``/``{b.x}`` replaced by the ids."""
    if isinstance(value, str):
        return value.format(a=a, b=b)
    if isinstance(value, dict):
        return {k: fill(v, a, b) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, a, b) for v in value]
    return value


def send(http: httpx.Client, case: Case, a: Ids, b: Ids) -> httpx.Response:
    return http.request(
        case.method,
        fill(case.path, a, b),
        json=fill(case.body, a, b),
        params=fill(case.query, a, b),
    )


def test_every_route_has_a_case(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    served = {route for route in served_routes(app) if route[1].startswith("/v1/")}
    # The walk must see at least what the OpenAPI schema lists, or it would miss routes.
    in_schema = {
        (method.upper(), re.sub(r":\w+\}", "}", path))
        for path, operations in app.openapi()["paths"].items()
        for method in operations
        if path.startswith("/v1/")
    }
    assert in_schema <= served, f"routes the walk missed: {sorted(in_schema - served)}"
    covered = {case.route for case in CASES}
    missing = served - covered - NO_OBJECT_ID
    assert not missing, (
        f"routes with no isolation case: {sorted(missing)}; add cases to CASES in "
        "tests/api/test_isolation.py (or the route to NO_OBJECT_ID, saying why)"
    )
    stale = (covered | NO_OBJECT_ID) - served
    assert not stale, f"cases for routes the app no longer serves: {sorted(stale)}"


def call(world: World, case: Case) -> tuple[httpx.Response, httpx.Response]:
    """The intruder's call with A's ids, and the same with ids that never existed."""
    if world.damaged_by is not None:
        pytest.fail(f"A's objects were changed earlier, by {world.damaged_by}")
    return send(world.intruder, case, world.a, world.b), send(
        world.intruder, case, world.ghost, world.b
    )


@pytest.mark.parametrize("case", CASES, ids=str)
def test_another_projects_ids(world: World, case: Case) -> None:
    a, b = world.a, world.b
    response, control = call(world, case)
    if case.method != "GET":
        world.assert_a_intact(after=str(case))
    # Exactly what ids that never existed get: B learns nothing about A's objects.
    assert response.status_code == control.status_code, (response.text, control.text)
    assert swap_ids(response.text, a, world.ghost) == control.text
    assert secret("A") not in response.text
    if case.status == 200:
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["object"] == "list", body
        listed_ids = {item["id"] for item in body["data"]} | {body["first_id"], body["last_id"]}
        listed_ids.discard(None)
        assert not listed_ids & world.a_ids, body
        assert listed_ids <= world.b_ids, body
    else:
        error = assert_error(response, case.status)
        assert error["code"] == case.code, error
        if case.message is not None:
            assert error["message"] == fill(case.message, a, b), error
            assert error["param"] == case.param, error


def test_reads_change_nothing(world: World) -> None:
    """The GET cases, checked together (re-reading A after each would double the time)."""
    for case in CASES:
        if case.method == "GET":
            call(world, case)
    world.assert_a_intact(after="the intruder's GET requests")


def test_lists_show_each_project_its_own(world: World) -> None:
    """The plain lists of each project hold exactly its own objects."""
    lists = {
        "/assistants": "assistant",
        "/threads": "thread",
        "/files": None,
        "/vector_stores": "vector_store",
    }
    for made, http in ((world.a, world.owner), (world.b, world.intruder)):
        for path, field in lists.items():
            got = [item["id"] for item in http.get(path).json()["data"]]
            expected = [made.batch_file, made.file] if field is None else [getattr(made, field)]
            assert got == expected, (path, got)


def test_ghosts_name_nothing(world: World) -> None:
    """The control ids keep kind and sort key and differ from every real id."""
    for field in fields(Ids):
        real, ghost = getattr(world.a, field.name), getattr(world.ghost, field.name)
        assert ghost != real
        assert ghost[: -ids.RANDOM_CHARS] == real[: -ids.RANDOM_CHARS]
    assert not set(astuple(world.ghost)) & (world.a_ids | world.b_ids)
    # A's key reads them as missing too.
    assert_error(world.owner.get(f"/assistants/{world.ghost.assistant}"), 404)


def test_naming_another_project_in_headers_changes_nothing(world: World) -> None:
    """The key alone decides the project: OpenAI's project and organization headers naming
    A's project are not a way in."""
    a_project, b_project = world.projects
    headers = {"OpenAI-Project": a_project, "OpenAI-Organization": a_project}
    response = world.intruder.get(f"/assistants/{world.a.assistant}", headers=headers)
    assert_error(response, 404)
    listed = world.intruder.get("/assistants", headers=headers)
    assert [item["id"] for item in listed.json()["data"]] == [world.b.assistant]
    assert listed.headers["openai-project"] == b_project
