"""Cursor pagination on assistants and messages, and the metadata limits."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.conftest import assert_error


def make_assistants(http: httpx.Client, count: int) -> list[str]:
    """``count`` assistants made back to back; their ids in creation order."""
    made = []
    for i in range(count):
        response = http.post("/assistants", json={"model": "gpt-4o", "name": f"a{i}"})
        assert response.status_code == 200, response.text
        made.append(response.json()["id"])
    return made


def list_page(http: httpx.Client, path: str, **params: Any) -> dict[str, Any]:
    response = http.get(path, params={k: v for k, v in params.items() if v is not None})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"object", "data", "first_id", "last_id", "has_more"}, body
    assert body["object"] == "list"
    ids = [item["id"] for item in body["data"]]
    assert body["first_id"] == (ids[0] if ids else None)
    assert body["last_id"] == (ids[-1] if ids else None)
    return body


def ids_of(body: dict[str, Any]) -> list[str]:
    return [item["id"] for item in body["data"]]


@pytest.fixture
def made(http: httpx.Client) -> list[str]:
    """25 assistants in creation order."""
    return make_assistants(http, 25)


# ---- limit and order --------------------------------------------------------------------


def test_defaults_are_limit_20_desc(http: httpx.Client, made: list[str]) -> None:
    body = list_page(http, "/assistants")
    newest_first = made[::-1]
    assert ids_of(body) == newest_first[:20]
    assert body["has_more"] is True
    assert body["first_id"] == made[-1]
    assert body["last_id"] == made[5]


def test_order_asc(http: httpx.Client, made: list[str]) -> None:
    body = list_page(http, "/assistants", order="asc")
    assert ids_of(body) == made[:20]
    assert body["has_more"] is True
    body = list_page(http, "/assistants", order="asc", limit=100)
    assert ids_of(body) == made
    assert body["has_more"] is False


def test_order_desc_explicit(http: httpx.Client, made: list[str]) -> None:
    assert ids_of(list_page(http, "/assistants", order="desc", limit=25)) == made[::-1]


@pytest.mark.parametrize(("limit", "count"), [(1, 1), (7, 7), (24, 24), (25, 25), (100, 25)])
def test_limit_bounds(http: httpx.Client, made: list[str], limit: int, count: int) -> None:
    body = list_page(http, "/assistants", limit=limit)
    assert ids_of(body) == made[::-1][:count]
    assert body["has_more"] is (limit < len(made))


@pytest.mark.parametrize("limit", ["0", "101", "-1", "1000", "abc", "1.5", ""])
def test_limit_out_of_range(http: httpx.Client, limit: str) -> None:
    response = http.get("/assistants", params={"limit": limit})
    assert_error(response, 400, param="limit")


def test_invalid_order(http: httpx.Client) -> None:
    error = assert_error(
        http.get("/assistants", params={"order": "random"}),
        400,
        param="order",
        code="invalid_value",
    )
    assert "'asc'" in error["message"]
    assert "'desc'" in error["message"]


def test_sdk_limit_errors(client: openai.OpenAI) -> None:
    for limit in (0, 101):
        with pytest.raises(openai.BadRequestError) as caught:
            client.beta.assistants.list(limit=limit)
        assert caught.value.param == "limit"
        assert caught.value.code in ("integer_below_min_value", "integer_above_max_value")


def test_empty_list(http: httpx.Client, client: openai.OpenAI) -> None:
    body = list_page(http, "/assistants")
    assert body == {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }
    page = client.beta.assistants.list()
    assert page.data == []
    assert page.has_more is False
    assert list(client.beta.assistants.list()) == []


# ---- cursors ----------------------------------------------------------------------------


def test_after(http: httpx.Client, made: list[str]) -> None:
    desc = made[::-1]
    body = list_page(http, "/assistants", after=desc[4], limit=5)
    assert ids_of(body) == desc[5:10]
    assert body["has_more"] is True
    body = list_page(http, "/assistants", after=desc[19], limit=5)
    assert ids_of(body) == desc[20:25]
    assert body["has_more"] is False
    body = list_page(http, "/assistants", after=desc[24])
    assert ids_of(body) == []
    assert body["first_id"] is None
    assert body["last_id"] is None
    assert body["has_more"] is False


def test_after_asc(http: httpx.Client, made: list[str]) -> None:
    body = list_page(http, "/assistants", order="asc", after=made[2], limit=3)
    assert ids_of(body) == made[3:6]
    assert body["has_more"] is True
    body = list_page(http, "/assistants", order="asc", after=made[-1])
    assert ids_of(body) == []
    assert body["has_more"] is False


def test_before(http: httpx.Client, made: list[str]) -> None:
    desc = made[::-1]
    # The page just before the cursor, still in the requested order.
    body = list_page(http, "/assistants", before=desc[10], limit=3)
    assert ids_of(body) == desc[7:10]
    assert body["has_more"] is True
    body = list_page(http, "/assistants", before=desc[3], limit=5)
    assert ids_of(body) == desc[0:3]
    assert body["has_more"] is False
    body = list_page(http, "/assistants", before=desc[0])
    assert ids_of(body) == []
    assert body["has_more"] is False


def test_before_asc(http: httpx.Client, made: list[str]) -> None:
    body = list_page(http, "/assistants", order="asc", before=made[10], limit=4)
    assert ids_of(body) == made[6:10]
    assert body["has_more"] is True
    body = list_page(http, "/assistants", order="asc", before=made[2], limit=4)
    assert ids_of(body) == made[0:2]
    assert body["has_more"] is False


def test_after_and_before_give_the_window_between(http: httpx.Client, made: list[str]) -> None:
    desc = made[::-1]
    body = list_page(http, "/assistants", after=desc[2], before=desc[8])
    assert ids_of(body) == desc[3:8]
    assert body["has_more"] is False
    body = list_page(http, "/assistants", after=desc[2], before=desc[8], limit=2)
    assert ids_of(body) == desc[3:5]
    assert body["has_more"] is True
    body = list_page(http, "/assistants", order="asc", after=made[2], before=made[8])
    assert ids_of(body) == made[3:8]
    body = list_page(http, "/assistants", order="asc", after=made[2], before=made[3])
    assert ids_of(body) == []
    assert body["first_id"] is None
    # A window given the wrong way round is empty, not an error.
    body = list_page(http, "/assistants", after=desc[8], before=desc[2])
    assert ids_of(body) == []


def test_walking_pages_by_hand(http: httpx.Client, made: list[str]) -> None:
    for order, expected in (("desc", made[::-1]), ("asc", made)):
        seen: list[str] = []
        after = None
        while True:
            body = list_page(http, "/assistants", order=order, limit=4, after=after)
            seen += ids_of(body)
            if not body["has_more"]:
                break
            after = body["last_id"]
        assert seen == expected


def test_walking_backwards_with_before(http: httpx.Client, made: list[str]) -> None:
    desc = made[::-1]
    seen: list[str] = []
    before = desc[-1]
    while True:
        body = list_page(http, "/assistants", limit=6, before=before)
        seen = ids_of(body) + seen
        if not body["has_more"]:
            break
        before = body["first_id"]
    assert seen == desc[:-1]


def test_cursor_of_a_deleted_object_still_works(http: httpx.Client, made: list[str]) -> None:
    desc = made[::-1]
    gone = desc[4]
    assert http.delete(f"/assistants/{gone}").json()["deleted"] is True
    body = list_page(http, "/assistants", after=gone, limit=3)
    assert ids_of(body) == desc[5:8]
    body = list_page(http, "/assistants", before=gone, limit=3)
    assert ids_of(body) == desc[1:4]
    body = list_page(http, "/assistants", order="asc", after=gone, limit=2)
    assert ids_of(body) == [desc[3], desc[2]]
    assert gone not in ids_of(list_page(http, "/assistants", limit=100))


def test_cursor_of_an_id_never_stored(http: httpx.Client) -> None:
    made = make_assistants(http, 3)
    # A well-formed assistant id minted after all three (never stored) positions the page
    # by its own sort key like any other cursor.
    later = http.post("/threads").json()["id"]
    cursor = "asst_" + later[len("thread_") :]
    assert ids_of(list_page(http, "/assistants", after=cursor)) == made[::-1]
    assert ids_of(list_page(http, "/assistants", before=cursor)) == []
    assert ids_of(list_page(http, "/assistants", order="asc", before=cursor)) == made


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "asst_",
        "asst_short",
        "asst_" + "!" * 24,
        "thread_0000000001abcdefghijklmn",  # an id of another kind
        "msg_0000000001abcdefghijklmn",
        "asst_0000000001abcdefghijklmnop",  # too long
    ],
)
@pytest.mark.parametrize("param", ["after", "before"])
def test_invalid_cursor(http: httpx.Client, cursor: str, param: str) -> None:
    response = http.get("/assistants", params={param: cursor})
    error = assert_error(response, 400, param=param, code="invalid_value")
    assert error["message"] == f"Invalid '{param}': '{cursor}' is not a valid assistant id."


def test_sdk_invalid_cursor(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.beta.assistants.list(after="nope")
    assert caught.value.param == "after"
    assert caught.value.code == "invalid_value"


# ---- creation order within one second ---------------------------------------------------


def test_same_second_objects_keep_creation_order(client: openai.OpenAI) -> None:
    made = [client.beta.assistants.create(model="gpt-4o", name=f"n{i}") for i in range(30)]
    ids = [a.id for a in made]
    # Many share a created_at second, so only the ids' sort keys can order them.
    seconds = [a.created_at for a in made]
    assert len(set(seconds)) < len(seconds)
    asc = client.beta.assistants.list(order="asc", limit=100)
    assert [a.id for a in asc.data] == ids
    assert [a.name for a in asc.data] == [f"n{i}" for i in range(30)]
    desc = client.beta.assistants.list(order="desc", limit=100)
    assert [a.id for a in desc.data] == ids[::-1]


# ---- the SDK auto-paginator -------------------------------------------------------------


def test_sdk_auto_paginator_collects_all_once(client: openai.OpenAI) -> None:
    ids = [client.beta.assistants.create(model="gpt-4o").id for _ in range(17)]
    collected = [a.id for a in client.beta.assistants.list(limit=7)]
    assert collected == ids[::-1]
    collected = [a.id for a in client.beta.assistants.list(limit=7, order="asc")]
    assert collected == ids
    # Page by page: 7 + 7 + 3.
    page = client.beta.assistants.list(limit=7)
    sizes = [len(page.data)]
    while page.has_next_page():
        page = page.get_next_page()
        sizes.append(len(page.data))
    # Newer SDKs stop on has_more=false; older ones (1.59) ask once more and stop on the
    # empty page the server must then return.
    assert sizes in ([7, 7, 3], [7, 7, 3, 0])
    assert page.has_more is False


def test_sdk_auto_paginator_with_exact_multiple(client: openai.OpenAI) -> None:
    ids = [client.beta.assistants.create(model="gpt-4o").id for _ in range(6)]
    assert [a.id for a in client.beta.assistants.list(limit=3)] == ids[::-1]
    assert [a.id for a in client.beta.assistants.list(limit=6)] == ids[::-1]


def test_sdk_auto_paginator_keeps_before(client: openai.OpenAI) -> None:
    # The paginator sends after=<last id> while keeping `before`: the window between them.
    ids = [client.beta.assistants.create(model="gpt-4o").id for _ in range(10)]
    collected = [
        a.id for a in client.beta.assistants.list(order="asc", after=ids[1], before=ids[8], limit=2)
    ]
    assert collected == ids[2:8]


# ---- messages in a thread ---------------------------------------------------------------


@pytest.fixture
def thread_messages(http: httpx.Client) -> tuple[str, list[str]]:
    thread_id = http.post("/threads").json()["id"]
    ids = []
    for i in range(12):
        response = http.post(
            f"/threads/{thread_id}/messages", json={"role": "user", "content": f"m{i}"}
        )
        assert response.status_code == 200, response.text
        ids.append(response.json()["id"])
    return thread_id, ids


def test_messages_default_desc(http: httpx.Client, thread_messages: tuple[str, list[str]]) -> None:
    thread_id, ids = thread_messages
    body = list_page(http, f"/threads/{thread_id}/messages")
    assert ids_of(body) == ids[::-1]
    assert body["has_more"] is False
    assert [m["content"][0]["text"]["value"] for m in body["data"]] == [
        f"m{i}" for i in reversed(range(12))
    ]


def test_messages_cursors(http: httpx.Client, thread_messages: tuple[str, list[str]]) -> None:
    thread_id, ids = thread_messages
    path = f"/threads/{thread_id}/messages"
    body = list_page(http, path, order="asc", limit=5)
    assert ids_of(body) == ids[:5]
    assert body["has_more"] is True
    body = list_page(http, path, order="asc", limit=5, after=ids[4])
    assert ids_of(body) == ids[5:10]
    body = list_page(http, path, limit=3, before=ids[5])
    assert ids_of(body) == [ids[8], ids[7], ids[6]]
    body = list_page(http, path, after=ids[9], before=ids[2])
    assert ids_of(body) == ids[3:9][::-1]


@pytest.mark.parametrize("limit", ["0", "101"])
def test_messages_limit_bounds(
    http: httpx.Client, thread_messages: tuple[str, list[str]], limit: str
) -> None:
    thread_id, _ = thread_messages
    assert_error(
        http.get(f"/threads/{thread_id}/messages", params={"limit": limit}), 400, param="limit"
    )


def test_messages_invalid_cursor(
    http: httpx.Client, thread_messages: tuple[str, list[str]]
) -> None:
    thread_id, _ = thread_messages
    response = http.get(f"/threads/{thread_id}/messages", params={"after": thread_id})
    error = assert_error(response, 400, param="after", code="invalid_value")
    assert error["message"] == f"Invalid 'after': '{thread_id}' is not a valid message id."


def test_messages_only_from_their_thread(
    http: httpx.Client, thread_messages: tuple[str, list[str]]
) -> None:
    thread_id, ids = thread_messages
    other = http.post("/threads", json={"messages": [{"role": "user", "content": "x"}]}).json()
    other_ids = ids_of(list_page(http, f"/threads/{other['id']}/messages"))
    assert len(other_ids) == 1
    assert ids_of(list_page(http, f"/threads/{thread_id}/messages", limit=100)) == ids[::-1]
    # A cursor from another thread still positions the page by creation time.
    body = list_page(http, f"/threads/{thread_id}/messages", before=other_ids[0], order="asc")
    assert ids_of(body) == ids


def test_messages_created_with_the_thread_keep_their_order(
    client: openai.OpenAI,
) -> None:
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": f"c{i}"} for i in range(8)]
    )
    listed = client.beta.threads.messages.list(thread.id, order="asc")
    texts = [m.content[0].text.value for m in listed.data if m.content[0].type == "text"]
    assert texts == [f"c{i}" for i in range(8)]


def test_sdk_messages_auto_paginator(
    client: openai.OpenAI,
) -> None:
    thread = client.beta.threads.create()
    ids = [
        client.beta.threads.messages.create(thread.id, role="user", content=f"p{i}").id
        for i in range(11)
    ]
    collected = [m.id for m in client.beta.threads.messages.list(thread.id, limit=4)]
    assert collected == ids[::-1]
    collected = [m.id for m in client.beta.threads.messages.list(thread.id, limit=4, order="asc")]
    assert collected == ids


# ---- metadata limits --------------------------------------------------------------------


def _create(http: httpx.Client, kind: str, metadata: Any) -> httpx.Response:
    if kind == "assistant":
        return http.post("/assistants", json={"model": "gpt-4o", "metadata": metadata})
    if kind == "thread":
        return http.post("/threads", json={"metadata": metadata})
    thread_id = http.post("/threads").json()["id"]
    return http.post(
        f"/threads/{thread_id}/messages",
        json={"role": "user", "content": "x", "metadata": metadata},
    )


def _update(http: httpx.Client, kind: str, metadata: Any) -> httpx.Response:
    created = _create(http, kind, None).json()
    if kind == "assistant":
        return http.post(f"/assistants/{created['id']}", json={"metadata": metadata})
    if kind == "thread":
        return http.post(f"/threads/{created['id']}", json={"metadata": metadata})
    return http.post(
        f"/threads/{created['thread_id']}/messages/{created['id']}", json={"metadata": metadata}
    )


KINDS = ["assistant", "thread", "message"]
OK_METADATA = [
    {f"k{i}": f"v{i}" for i in range(16)},
    {"k" * 64: "v"},
    {"k": "v" * 512},
    {"unicode ✓": "é" * 512},
]
BAD_METADATA = [
    ({f"k{i}": "v" for i in range(17)}, "object_above_max_properties"),
    ({"k" * 65: "v"}, "string_above_max_length"),
    ({"k": "v" * 513}, "string_above_max_length"),
    ({"k": 1}, "invalid_type"),
    ({"k": None}, "invalid_type"),
    ({"k": {"nested": "x"}}, "invalid_type"),
    (["k", "v"], "invalid_type"),
    ("k=v", "invalid_type"),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("metadata", OK_METADATA)
@pytest.mark.parametrize("action", [_create, _update])
def test_metadata_within_limits(
    http: httpx.Client, kind: str, metadata: dict[str, str], action: Any
) -> None:
    response = action(http, kind, metadata)
    assert response.status_code == 200, response.text
    assert response.json()["metadata"] == metadata


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("metadata", "code"), BAD_METADATA)
@pytest.mark.parametrize("action", [_create, _update])
def test_metadata_over_limits(
    http: httpx.Client, kind: str, metadata: Any, code: str, action: Any
) -> None:
    response = action(http, kind, metadata)
    error = assert_error(response, 400, code=code)
    assert error["param"] == "metadata" or error["param"].startswith("metadata.")


def test_metadata_limit_messages(http: httpx.Client) -> None:
    too_many = {f"k{i}": "v" for i in range(17)}
    error = assert_error(
        _create(http, "assistant", too_many),
        400,
        param="metadata",
        code="object_above_max_properties",
    )
    assert error["message"] == (
        "Invalid 'metadata': too many properties. Expected an object with at most 16 "
        "properties, but got an object with 17 properties instead."
    )
    error = assert_error(
        _create(http, "assistant", {"k" * 65: "v"}),
        400,
        param="metadata",
        code="string_above_max_length",
    )
    assert error["message"] == (
        "Invalid 'metadata': key 'kkkkkkkkkkkkkkkk...' is too long. Expected a key with "
        "maximum length 64, but got a key with length 65 instead."
    )
    error = assert_error(
        _create(http, "assistant", {"k": "v" * 513}),
        400,
        param="metadata",
        code="string_above_max_length",
    )
    assert error["message"] == (
        "Invalid 'metadata.k': string too long. Expected a string with maximum length 512, "
        "but got a string with length 513 instead."
    )
    error = assert_error(
        _create(http, "assistant", {"k": 1}), 400, param="metadata.k", code="invalid_type"
    )


def test_failed_metadata_update_changes_nothing(http: httpx.Client) -> None:
    created = http.post("/assistants", json={"model": "gpt-4o", "metadata": {"a": "1"}}).json()
    response = http.post(
        f"/assistants/{created['id']}",
        json={"name": "renamed", "metadata": {f"k{i}": "v" for i in range(17)}},
    )
    assert_error(response, 400, param="metadata")
    assert http.get(f"/assistants/{created['id']}").json() == created


@pytest.mark.parametrize("kind", KINDS)
def test_metadata_defaults_to_empty_object(http: httpx.Client, kind: str) -> None:
    created = _create(http, kind, None)
    assert created.status_code == 200, created.text
    body = created.json()
    assert body["metadata"] == {}
    # null on update means "not given": it stays an object.
    updated = _update(http, kind, None)
    assert updated.status_code == 200, updated.text
    assert updated.json()["metadata"] == {}


def test_metadata_never_null_anywhere(client: openai.OpenAI, http: httpx.Client) -> None:
    assistant = client.beta.assistants.create(model="gpt-4o")
    thread = client.beta.threads.create()
    message = client.beta.threads.messages.create(thread.id, role="user", content="x")
    assert assistant.metadata == {}
    assert thread.metadata == {}
    assert message.metadata == {}
    for path in (
        f"/assistants/{assistant.id}",
        f"/threads/{thread.id}",
        f"/threads/{thread.id}/messages/{message.id}",
    ):
        assert http.get(path).json()["metadata"] == {}
    assert list_page(http, "/assistants")["data"][0]["metadata"] == {}
    assert list_page(http, f"/threads/{thread.id}/messages")["data"][0]["metadata"] == {}


def test_metadata_update_replaces_and_empty_clears(client: openai.OpenAI) -> None:
    assistant = client.beta.assistants.create(model="gpt-4o", metadata={"a": "1", "b": "2"})
    updated = client.beta.assistants.update(assistant.id, metadata={"c": "3"})
    assert updated.metadata == {"c": "3"}
    assert client.beta.assistants.retrieve(assistant.id).metadata == {"c": "3"}
    cleared = client.beta.assistants.update(assistant.id, metadata={})
    assert cleared.metadata == {}
    assert client.beta.assistants.retrieve(assistant.id).metadata == {}


def test_sdk_metadata_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.beta.threads.create(metadata={f"k{i}": "v" for i in range(17)})
    assert caught.value.param == "metadata"
    assert caught.value.code == "object_above_max_properties"
