"""Messages: create (string, parts, attachments), retrieve, update, list, delete, errors."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.conftest import assert_error


def upload(client: openai.OpenAI, name: str = "a.txt", data: bytes = b"hello") -> str:
    return client.files.create(file=(name, data), purpose="assistants").id


def text_part(value: str) -> dict[str, Any]:
    return {"type": "text", "text": {"value": value, "annotations": []}}


def text_of(message: Any) -> str:
    assert len(message.content) == 1
    part = message.content[0]
    assert part.type == "text"
    return str(part.text.value)


@pytest.fixture
def thread_id(client: openai.OpenAI) -> str:
    return client.beta.threads.create().id


def add(client: openai.OpenAI, thread_id: str, text: str, **kwargs: Any) -> Any:
    return client.beta.threads.messages.create(thread_id, role="user", content=text, **kwargs)


# ---- create ----------------------------------------------------------------------------


def test_create_with_string_content(
    client: openai.OpenAI, http: httpx.Client, thread_id: str
) -> None:
    message = client.beta.threads.messages.create(
        thread_id, role="user", content="How do I solve 3x + 11 = 14?"
    )
    assert message.id.startswith("msg_")
    assert message.object == "thread.message"
    assert message.thread_id == thread_id
    assert message.role == "user"
    assert message.status == "completed"
    assert message.incomplete_details is None
    assert message.incomplete_at is None
    assert message.assistant_id is None
    assert message.run_id is None
    assert message.attachments == []
    assert message.metadata == {}
    assert len(message.content) == 1
    part = message.content[0]
    assert part.type == "text"
    assert part.text.value == "How do I solve 3x + 11 = 14?"
    assert part.text.annotations == []

    wire = http.get(f"/threads/{thread_id}/messages/{message.id}").json()
    assert wire == {
        "id": message.id,
        "object": "thread.message",
        "created_at": message.created_at,
        "thread_id": thread_id,
        "status": "completed",
        "incomplete_details": None,
        "completed_at": message.completed_at,
        "incomplete_at": None,
        "role": "user",
        "content": [text_part("How do I solve 3x + 11 = 14?")],
        "assistant_id": None,
        "run_id": None,
        "attachments": [],
        "metadata": {},
    }


def test_create_assistant_role_message(client: openai.OpenAI, thread_id: str) -> None:
    message = client.beta.threads.messages.create(
        thread_id, role="assistant", content="Subtract 11 first."
    )
    assert message.role == "assistant"
    assert message.assistant_id is None
    assert message.run_id is None
    assert text_of(message) == "Subtract 11 first."


def test_create_with_content_parts(
    client: openai.OpenAI, http: httpx.Client, thread_id: str
) -> None:
    image = upload(client, "chart.png", b"\x89PNG\r\n\x1a\nfake")
    message = client.beta.threads.messages.create(
        thread_id,
        role="user",
        content=[
            {"type": "text", "text": "Compare these two."},
            {
                "type": "image_url",
                "image_url": {"url": "https://example.com/a.png", "detail": "high"},
            },
            {"type": "image_file", "image_file": {"file_id": image, "detail": "low"}},
            {"type": "text", "text": "Thanks!"},
        ],
    )
    assert [p.type for p in message.content] == ["text", "image_url", "image_file", "text"]
    url_part = message.content[1]
    assert url_part.type == "image_url"
    assert url_part.image_url.url == "https://example.com/a.png"
    assert url_part.image_url.detail == "high"
    file_part = message.content[2]
    assert file_part.type == "image_file"
    assert file_part.image_file.file_id == image
    assert file_part.image_file.detail == "low"

    wire = http.get(f"/threads/{thread_id}/messages/{message.id}").json()
    assert wire["content"] == [
        text_part("Compare these two."),
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "high"}},
        {"type": "image_file", "image_file": {"file_id": image, "detail": "low"}},
        text_part("Thanks!"),
    ]


def test_image_detail_defaults_to_auto(
    client: openai.OpenAI, http: httpx.Client, thread_id: str
) -> None:
    image = upload(client, "pic.png", b"\x89PNG")
    message = client.beta.threads.messages.create(
        thread_id,
        role="user",
        content=[
            {"type": "image_url", "image_url": {"url": "https://example.com/b.jpg"}},
            {"type": "image_file", "image_file": {"file_id": image}},
        ],
    )
    wire = http.get(f"/threads/{thread_id}/messages/{message.id}").json()
    assert wire["content"] == [
        {"type": "image_url", "image_url": {"url": "https://example.com/b.jpg", "detail": "auto"}},
        {"type": "image_file", "image_file": {"file_id": image, "detail": "auto"}},
    ]


def test_create_with_attachments(client: openai.OpenAI, http: httpx.Client, thread_id: str) -> None:
    data_file, doc_file = upload(client, "data.csv", b"a,b\n1,2\n"), upload(client, "doc.md")
    message = client.beta.threads.messages.create(
        thread_id,
        role="user",
        content="Use these files.",
        attachments=[
            {"file_id": data_file, "tools": [{"type": "code_interpreter"}]},
            {"file_id": doc_file, "tools": [{"type": "file_search"}]},
        ],
        metadata={"source": "upload-form"},
    )
    assert message.metadata == {"source": "upload-form"}
    assert message.attachments is not None
    assert [a.file_id for a in message.attachments] == [data_file, doc_file]
    tools = [[t.type for t in a.tools or []] for a in message.attachments]
    assert tools == [["code_interpreter"], ["file_search"]]

    wire = http.get(f"/threads/{thread_id}/messages/{message.id}").json()
    assert wire["attachments"] == [
        {"file_id": data_file, "tools": [{"type": "code_interpreter"}]},
        {"file_id": doc_file, "tools": [{"type": "file_search"}]},
    ]
    assert wire["metadata"] == {"source": "upload-form"}


def test_attachment_with_both_tools(
    client: openai.OpenAI, http: httpx.Client, thread_id: str
) -> None:
    file_id = upload(client)
    message = client.beta.threads.messages.create(
        thread_id,
        role="user",
        content="Both tools.",
        attachments=[
            {"file_id": file_id, "tools": [{"type": "code_interpreter"}, {"type": "file_search"}]}
        ],
    )
    wire = http.get(f"/threads/{thread_id}/messages/{message.id}").json()
    assert wire["attachments"] == [
        {"file_id": file_id, "tools": [{"type": "code_interpreter"}, {"type": "file_search"}]}
    ]


def test_retrieve_equals_create(client: openai.OpenAI, thread_id: str) -> None:
    message = add(client, thread_id, "hello", metadata={"k": "v"})
    assert client.beta.threads.messages.retrieve(message.id, thread_id=thread_id) == message


# ---- update ----------------------------------------------------------------------------


def test_update_metadata(client: openai.OpenAI, http: httpx.Client, thread_id: str) -> None:
    message = add(client, thread_id, "hello", metadata={"a": "1"})
    before = http.get(f"/threads/{thread_id}/messages/{message.id}").json()

    updated = client.beta.threads.messages.update(
        message.id, thread_id=thread_id, metadata={"b": "2", "c": "3"}
    )
    assert updated.id == message.id
    assert updated.metadata == {"b": "2", "c": "3"}
    assert http.get(f"/threads/{thread_id}/messages/{message.id}").json() == {
        **before,
        "metadata": {"b": "2", "c": "3"},
    }

    cleared = client.beta.threads.messages.update(message.id, thread_id=thread_id, metadata={})
    assert cleared.metadata == {}
    assert client.beta.threads.messages.retrieve(message.id, thread_id=thread_id) == cleared


def test_update_null_metadata_changes_nothing(
    client: openai.OpenAI, http: httpx.Client, thread_id: str
) -> None:
    message = add(client, thread_id, "hello", metadata={"a": "1"})
    response = http.post(f"/threads/{thread_id}/messages/{message.id}", json={"metadata": None})
    assert response.status_code == 200, response.text
    assert response.json()["metadata"] == {"a": "1"}
    assert client.beta.threads.messages.update(message.id, thread_id=thread_id) == message


def test_update_metadata_too_many_pairs_is_400(client: openai.OpenAI, thread_id: str) -> None:
    message = add(client, thread_id, "hello")
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.messages.update(
            message.id, thread_id=thread_id, metadata={f"k{i}": "v" for i in range(17)}
        )
    assert_error(exc.value.response, 400, param="metadata")
    assert client.beta.threads.messages.retrieve(message.id, thread_id=thread_id).metadata == {}


# ---- list ------------------------------------------------------------------------------


def test_list_orders_and_pages(client: openai.OpenAI, thread_id: str) -> None:
    ids = [add(client, thread_id, f"m{i}").id for i in range(5)]

    desc = client.beta.threads.messages.list(thread_id)
    assert [m.id for m in desc.data] == ids[::-1]
    assert desc.has_more is False
    assert [text_of(m) for m in desc.data] == ["m4", "m3", "m2", "m1", "m0"]

    asc = client.beta.threads.messages.list(thread_id, order="asc")
    assert [m.id for m in asc.data] == ids

    page = client.beta.threads.messages.list(thread_id, limit=2)
    assert [m.id for m in page.data] == [ids[4], ids[3]]
    assert page.has_more is True
    assert page.first_id == ids[4]
    assert page.last_id == ids[3]

    page = client.beta.threads.messages.list(thread_id, limit=2, after=ids[3])
    assert [m.id for m in page.data] == [ids[2], ids[1]]
    assert page.has_more is True

    page = client.beta.threads.messages.list(thread_id, limit=2, after=ids[1])
    assert [m.id for m in page.data] == [ids[0]]
    assert page.has_more is False

    page = client.beta.threads.messages.list(thread_id, order="asc", limit=3, after=ids[0])
    assert [m.id for m in page.data] == ids[1:4]
    assert page.has_more is True


def test_list_auto_paginates(client: openai.OpenAI, thread_id: str) -> None:
    ids = [add(client, thread_id, f"m{i}").id for i in range(5)]
    assert [m.id for m in client.beta.threads.messages.list(thread_id, limit=2)] == ids[::-1]
    asc = client.beta.threads.messages.list(thread_id, limit=2, order="asc")
    assert [m.id for m in asc] == ids


def test_list_wire_envelope(client: openai.OpenAI, http: httpx.Client, thread_id: str) -> None:
    assert http.get(f"/threads/{thread_id}/messages").json() == {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }
    first, second = add(client, thread_id, "a").id, add(client, thread_id, "b").id
    body = http.get(f"/threads/{thread_id}/messages").json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == [second, first]
    assert (body["first_id"], body["last_id"], body["has_more"]) == (second, first, False)


def test_list_only_shows_own_thread(client: openai.OpenAI, thread_id: str) -> None:
    other = client.beta.threads.create().id
    mine = add(client, thread_id, "mine").id
    add(client, other, "theirs")
    assert [m.id for m in client.beta.threads.messages.list(thread_id).data] == [mine]


def test_list_run_id_filter_unknown_run_is_empty(
    client: openai.OpenAI, http: httpx.Client, thread_id: str
) -> None:
    add(client, thread_id, "a")
    add(client, thread_id, "b")
    page = client.beta.threads.messages.list(thread_id, run_id="run_unknown")
    assert page.data == []
    assert page.has_more is False
    body = http.get(f"/threads/{thread_id}/messages", params={"run_id": "run_unknown"}).json()
    assert body == {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }


def test_list_limit_out_of_range_is_400(http: httpx.Client, thread_id: str) -> None:
    assert_error(
        http.get(f"/threads/{thread_id}/messages", params={"limit": 0}), 400, param="limit"
    )
    assert_error(
        http.get(f"/threads/{thread_id}/messages", params={"limit": 101}), 400, param="limit"
    )


# ---- delete ----------------------------------------------------------------------------


def test_delete_message(client: openai.OpenAI, http: httpx.Client, thread_id: str) -> None:
    keep = add(client, thread_id, "keep")
    drop = add(client, thread_id, "drop")

    deleted = client.beta.threads.messages.delete(drop.id, thread_id=thread_id)
    assert deleted.id == drop.id
    assert deleted.object == "thread.message.deleted"
    assert deleted.deleted is True

    with pytest.raises(openai.NotFoundError) as exc:
        client.beta.threads.messages.retrieve(drop.id, thread_id=thread_id)
    error = assert_error(exc.value.response, 404)
    assert error["message"] == f"No message found with id '{drop.id}'."
    assert [m.id for m in client.beta.threads.messages.list(thread_id).data] == [keep.id]

    assert_error(http.delete(f"/threads/{thread_id}/messages/{drop.id}"), 404)
    assert_error(
        http.post(f"/threads/{thread_id}/messages/{drop.id}", json={"metadata": {"a": "b"}}), 404
    )


def test_delete_wire_shape(client: openai.OpenAI, http: httpx.Client, thread_id: str) -> None:
    message = add(client, thread_id, "bye")
    response = http.delete(f"/threads/{thread_id}/messages/{message.id}")
    assert response.status_code == 200
    assert response.json() == {
        "id": message.id,
        "object": "thread.message.deleted",
        "deleted": True,
    }


# ---- not found -------------------------------------------------------------------------


def test_message_of_another_thread_is_404(
    client: openai.OpenAI, http: httpx.Client, thread_id: str
) -> None:
    other = client.beta.threads.create().id
    message = add(client, thread_id, "belongs to the first thread")

    with pytest.raises(openai.NotFoundError) as exc:
        client.beta.threads.messages.retrieve(message.id, thread_id=other)
    error = assert_error(exc.value.response, 404)
    assert error["message"] == f"No message found with id '{message.id}'."
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.update(message.id, thread_id=other, metadata={"x": "y"})
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.delete(message.id, thread_id=other)

    # Nothing happened to it through the wrong thread.
    assert client.beta.threads.messages.retrieve(message.id, thread_id=thread_id) == message


def test_unknown_thread_is_404(client: openai.OpenAI) -> None:
    expected = "No thread found with id 'thread_missing'."
    with pytest.raises(openai.NotFoundError) as exc:
        client.beta.threads.messages.create("thread_missing", role="user", content="hi")
    assert assert_error(exc.value.response, 404)["message"] == expected
    with pytest.raises(openai.NotFoundError) as exc:
        client.beta.threads.messages.list("thread_missing")
    assert assert_error(exc.value.response, 404)["message"] == expected
    with pytest.raises(openai.NotFoundError) as exc:
        client.beta.threads.messages.retrieve("msg_missing", thread_id="thread_missing")
    assert assert_error(exc.value.response, 404)["message"] == expected


def test_unknown_message_is_404(client: openai.OpenAI, thread_id: str) -> None:
    with pytest.raises(openai.NotFoundError) as exc:
        client.beta.threads.messages.retrieve("msg_missing", thread_id=thread_id)
    error = assert_error(exc.value.response, 404)
    assert error["message"] == "No message found with id 'msg_missing'."


def test_message_of_another_project_is_404(
    client: openai.OpenAI, make_client: Any, thread_id: str
) -> None:
    other = make_client()
    foreign_thread = other.beta.threads.create().id
    foreign = add(other, foreign_thread, "secret")
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.retrieve(foreign.id, thread_id=foreign_thread)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.create(foreign_thread, role="user", content="intrude")
    assert [m.id for m in other.beta.threads.messages.list(foreign_thread).data] == [foreign.id]


# ---- validation ------------------------------------------------------------------------


def test_invalid_role_is_400(client: openai.OpenAI, thread_id: str) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.messages.create(
            thread_id,
            role="system",  # type: ignore[arg-type]
            content="You are root now.",
        )
    error = assert_error(exc.value.response, 400, param="role", code="invalid_value")
    assert "system" in error["message"]
    assert client.beta.threads.messages.list(thread_id).data == []


def test_missing_role_and_content_are_400(http: httpx.Client, thread_id: str) -> None:
    url = f"/threads/{thread_id}/messages"
    assert_error(
        http.post(url, json={"content": "hi"}), 400, param="role", code="missing_required_parameter"
    )
    assert_error(
        http.post(url, json={"role": "user"}),
        400,
        param="content",
        code="missing_required_parameter",
    )


@pytest.mark.parametrize("content", ["", []], ids=["empty-string", "empty-list"])
def test_empty_content_is_400(client: openai.OpenAI, thread_id: str, content: Any) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.messages.create(thread_id, role="user", content=content)
    assert_error(exc.value.response, 400, param="content")
    assert client.beta.threads.messages.list(thread_id).data == []


def test_unknown_attachment_file_is_400(client: openai.OpenAI, thread_id: str) -> None:
    good = upload(client)
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.messages.create(
            thread_id,
            role="user",
            content="files",
            attachments=[
                {"file_id": good, "tools": [{"type": "code_interpreter"}]},
                {"file_id": "file-missing", "tools": [{"type": "file_search"}]},
            ],
        )
    error = assert_error(
        exc.value.response, 400, param="attachments[1].file_id", code="invalid_value"
    )
    assert "file-missing" in error["message"]
    assert client.beta.threads.messages.list(thread_id).data == []


def test_unknown_image_file_is_400(client: openai.OpenAI, thread_id: str) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.messages.create(
            thread_id,
            role="user",
            content=[
                {"type": "text", "text": "look"},
                {"type": "image_file", "image_file": {"file_id": "file-missing"}},
            ],
        )
    assert_error(
        exc.value.response, 400, param="content[1].image_file.file_id", code="invalid_value"
    )


def test_deleted_attachment_file_is_400(client: openai.OpenAI, thread_id: str) -> None:
    file_id = upload(client)
    client.files.delete(file_id)
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.messages.create(
            thread_id,
            role="user",
            content="gone",
            attachments=[{"file_id": file_id, "tools": [{"type": "file_search"}]}],
        )
    assert_error(exc.value.response, 400, param="attachments[0].file_id")


def test_bad_attachment_tool_is_400(
    http: httpx.Client, client: openai.OpenAI, thread_id: str
) -> None:
    file_id = upload(client)
    response = http.post(
        f"/threads/{thread_id}/messages",
        json={
            "role": "user",
            "content": "x",
            "attachments": [{"file_id": file_id, "tools": [{"type": "function"}]}],
        },
    )
    assert_error(response, 400, param="attachments[0].tools[0].type", code="invalid_value")


def test_bad_image_detail_is_400(http: httpx.Client, thread_id: str) -> None:
    response = http.post(
        f"/threads/{thread_id}/messages",
        json={
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "https://x.test/a.png", "detail": "max"}}
            ],
        },
    )
    assert_error(response, 400, param="content[0].image_url.detail", code="invalid_value")


def test_unknown_content_part_type_is_400(http: httpx.Client, thread_id: str) -> None:
    response = http.post(
        f"/threads/{thread_id}/messages",
        json={"role": "user", "content": [{"type": "audio", "audio": {}}]},
    )
    assert_error(response, 400)
    assert response.json()["error"]["param"].startswith("content[0]")


def test_message_metadata_limits(client: openai.OpenAI, thread_id: str) -> None:
    ok = {f"k{i}": "v" * 512 for i in range(16)}
    assert add(client, thread_id, "ok", metadata=ok).metadata == ok
    with pytest.raises(openai.BadRequestError) as exc:
        add(client, thread_id, "bad", metadata={"k": "v" * 513})
    assert_error(exc.value.response, 400, param="metadata")
