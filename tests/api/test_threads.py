"""Threads: create (empty, with messages, with tool_resources), retrieve, update, delete."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.conftest import assert_error


def upload(client: openai.OpenAI, name: str = "a.txt", data: bytes = b"hello") -> str:
    return client.files.create(file=(name, data), purpose="assistants").id


def text_of(message: Any) -> str:
    assert len(message.content) == 1
    part = message.content[0]
    assert part.type == "text"
    return str(part.text.value)


# ---- create / retrieve -----------------------------------------------------------------


def test_create_empty_thread(client: openai.OpenAI, http: httpx.Client) -> None:
    thread = client.beta.threads.create()
    assert thread.id.startswith("thread_")
    assert thread.object == "thread"
    assert thread.created_at > 0
    assert thread.metadata == {}
    assert client.beta.threads.messages.list(thread.id).data == []

    assert http.get(f"/threads/{thread.id}").json() == {
        "id": thread.id,
        "object": "thread",
        "created_at": thread.created_at,
        "tool_resources": {},
        "metadata": {},
    }


def test_create_with_empty_body(http: httpx.Client) -> None:
    # The SDK sends "{}" for a bare create; an empty body must work as well.
    response = http.post("/threads", content=b"")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "thread"
    assert body["metadata"] == {}
    assert body["tool_resources"] == {}


def test_create_with_metadata(client: openai.OpenAI) -> None:
    thread = client.beta.threads.create(metadata={"user": "u-1", "topic": "billing"})
    assert thread.metadata == {"user": "u-1", "topic": "billing"}
    assert client.beta.threads.retrieve(thread.id).metadata == {"user": "u-1", "topic": "billing"}


def test_retrieve_equals_create(client: openai.OpenAI) -> None:
    thread = client.beta.threads.create(metadata={"k": "v"})
    assert client.beta.threads.retrieve(thread.id) == thread


def test_create_with_string_message(client: openai.OpenAI) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hello there"}])
    messages = client.beta.threads.messages.list(thread.id).data
    assert len(messages) == 1
    message = messages[0]
    assert message.id.startswith("msg_")
    assert message.thread_id == thread.id
    assert message.role == "user"
    assert message.status == "completed"
    assert message.assistant_id is None
    assert message.run_id is None
    assert message.metadata == {}
    assert message.attachments == []
    assert text_of(message) == "Hello there"


def test_create_with_content_part_messages(client: openai.OpenAI, http: httpx.Client) -> None:
    file_id = upload(client, "pic.png", b"\x89PNG\r\n\x1a\n")
    thread = client.beta.threads.create(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in these images?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://example.com/cat.png", "detail": "low"},
                    },
                    {"type": "image_file", "image_file": {"file_id": file_id, "detail": "high"}},
                ],
                "metadata": {"source": "web"},
            },
            {"role": "assistant", "content": "A cat."},
        ]
    )
    listed = http.get(f"/threads/{thread.id}/messages", params={"order": "asc"}).json()["data"]
    assert [m["role"] for m in listed] == ["user", "assistant"]
    assert listed[0]["content"] == [
        {"type": "text", "text": {"value": "What is in these images?", "annotations": []}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
        {"type": "image_file", "image_file": {"file_id": file_id, "detail": "high"}},
    ]
    assert listed[0]["metadata"] == {"source": "web"}
    assert listed[1]["content"] == [
        {"type": "text", "text": {"value": "A cat.", "annotations": []}}
    ]
    assert listed[1]["assistant_id"] is None
    assert listed[1]["run_id"] is None


def test_create_with_attachment_message(client: openai.OpenAI) -> None:
    file_id = upload(client)
    thread = client.beta.threads.create(
        messages=[
            {
                "role": "user",
                "content": "Summarise the file",
                "attachments": [{"file_id": file_id, "tools": [{"type": "code_interpreter"}]}],
            }
        ]
    )
    [message] = client.beta.threads.messages.list(thread.id).data
    assert message.attachments is not None
    assert len(message.attachments) == 1
    assert message.attachments[0].file_id == file_id
    assert message.attachments[0].tools is not None
    assert [t.type for t in message.attachments[0].tools] == ["code_interpreter"]


def test_initial_messages_keep_their_order(client: openai.OpenAI) -> None:
    texts = [f"message {i}" for i in range(8)]
    thread = client.beta.threads.create(
        messages=[
            {"role": "user" if i % 2 == 0 else "assistant", "content": t}
            for i, t in enumerate(texts)
        ]
    )
    asc = client.beta.threads.messages.list(thread.id, order="asc").data
    assert [text_of(m) for m in asc] == texts
    assert [m.role for m in asc] == ["user", "assistant"] * 4
    desc = client.beta.threads.messages.list(thread.id).data
    assert [m.id for m in desc] == [m.id for m in reversed(asc)]
    # Messages made in one request share (at most) the thread's second.
    assert all(m.created_at >= thread.created_at for m in asc)


def test_create_with_code_interpreter_resources(client: openai.OpenAI, http: httpx.Client) -> None:
    first, second = upload(client, "1.csv"), upload(client, "2.csv")
    thread = client.beta.threads.create(
        tool_resources={"code_interpreter": {"file_ids": [first, second]}}
    )
    assert thread.tool_resources is not None
    assert thread.tool_resources.code_interpreter is not None
    assert thread.tool_resources.code_interpreter.file_ids == [first, second]
    assert http.get(f"/threads/{thread.id}").json()["tool_resources"] == {
        "code_interpreter": {"file_ids": [first, second]}
    }


def test_retrieve_unknown_thread_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as exc:
        client.beta.threads.retrieve("thread_missing")
    error = assert_error(exc.value.response, 404)
    assert error["message"] == "No thread found with id 'thread_missing'."


# ---- create: validation ----------------------------------------------------------------


def test_create_with_unknown_file_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.create(
            tool_resources={"code_interpreter": {"file_ids": ["file-missing"]}}
        )
    error = assert_error(
        exc.value.response,
        400,
        param="tool_resources.code_interpreter.file_ids[0]",
        code="invalid_value",
    )
    assert "file-missing" in error["message"]


def test_create_with_vector_store_ids_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.create(tool_resources={"file_search": {"vector_store_ids": ["vs_x"]}})
    assert_error(exc.value.response, 400, param="tool_resources.file_search.vector_store_ids[0]")


def test_bad_initial_message_is_400_with_indexed_param(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.create(
            messages=[
                {"role": "user", "content": "fine"},
                {"role": "system", "content": "not allowed"},  # type: ignore[typeddict-item]
            ]
        )
    assert_error(exc.value.response, 400, param="messages[1].role", code="invalid_value")


def test_initial_message_with_unknown_attachment_is_400(client: openai.OpenAI) -> None:
    good = upload(client)
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.create(
            messages=[
                {"role": "user", "content": "ok"},
                {
                    "role": "user",
                    "content": "files",
                    "attachments": [
                        {"file_id": good, "tools": [{"type": "file_search"}]},
                        {"file_id": "file-missing", "tools": [{"type": "code_interpreter"}]},
                    ],
                },
            ]
        )
    assert_error(
        exc.value.response, 400, param="messages[1].attachments[1].file_id", code="invalid_value"
    )


def test_initial_message_with_empty_content_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.create(messages=[{"role": "user", "content": ""}])
    assert_error(exc.value.response, 400, param="messages[0].content")


def test_thread_metadata_limits(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.create(metadata={f"k{i}": "v" for i in range(17)})
    assert_error(exc.value.response, 400, param="metadata")


# ---- update ----------------------------------------------------------------------------


def test_update_metadata(client: openai.OpenAI) -> None:
    thread = client.beta.threads.create(metadata={"a": "1", "b": "2"})
    updated = client.beta.threads.update(thread.id, metadata={"c": "3"})
    assert updated.id == thread.id
    assert updated.created_at == thread.created_at
    assert updated.metadata == {"c": "3"}
    assert client.beta.threads.retrieve(thread.id).metadata == {"c": "3"}

    cleared = client.beta.threads.update(thread.id, metadata={})
    assert cleared.metadata == {}


def test_update_tool_resources_replaces_the_list(client: openai.OpenAI, http: httpx.Client) -> None:
    first, second = upload(client, "1.txt"), upload(client, "2.txt")
    thread = client.beta.threads.create(
        metadata={"keep": "me"}, tool_resources={"code_interpreter": {"file_ids": [first]}}
    )
    updated = client.beta.threads.update(
        thread.id, tool_resources={"code_interpreter": {"file_ids": [second]}}
    )
    assert updated.tool_resources is not None
    assert updated.tool_resources.code_interpreter is not None
    assert updated.tool_resources.code_interpreter.file_ids == [second]
    assert updated.metadata == {"keep": "me"}
    assert http.get(f"/threads/{thread.id}").json() == {
        "id": thread.id,
        "object": "thread",
        "created_at": thread.created_at,
        "tool_resources": {"code_interpreter": {"file_ids": [second]}},
        "metadata": {"keep": "me"},
    }

    # Metadata alone leaves tool_resources untouched.
    client.beta.threads.update(thread.id, metadata={"x": "y"})
    assert http.get(f"/threads/{thread.id}").json()["tool_resources"] == {
        "code_interpreter": {"file_ids": [second]}
    }

    emptied = client.beta.threads.update(
        thread.id, tool_resources={"code_interpreter": {"file_ids": []}}
    )
    assert emptied.tool_resources is not None
    assert emptied.tool_resources.code_interpreter is not None
    assert emptied.tool_resources.code_interpreter.file_ids == []


def test_update_null_means_not_given(client: openai.OpenAI, http: httpx.Client) -> None:
    file_id = upload(client)
    thread = client.beta.threads.create(
        metadata={"a": "1"}, tool_resources={"code_interpreter": {"file_ids": [file_id]}}
    )
    before = http.get(f"/threads/{thread.id}").json()
    response = http.post(f"/threads/{thread.id}", json={"metadata": None, "tool_resources": None})
    assert response.status_code == 200, response.text
    assert response.json() == before
    assert client.beta.threads.update(thread.id) == thread


def test_update_with_unknown_file_is_400_and_changes_nothing(
    client: openai.OpenAI, http: httpx.Client
) -> None:
    thread = client.beta.threads.create(metadata={"a": "1"})
    before = http.get(f"/threads/{thread.id}").json()
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.update(
            thread.id,
            metadata={"b": "2"},
            tool_resources={"code_interpreter": {"file_ids": ["file-missing"]}},
        )
    assert_error(exc.value.response, 400, param="tool_resources.code_interpreter.file_ids[0]")
    assert http.get(f"/threads/{thread.id}").json() == before


def test_update_unknown_thread_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as exc:
        client.beta.threads.update("thread_missing", metadata={"a": "b"})
    error = assert_error(exc.value.response, 404)
    assert error["message"] == "No thread found with id 'thread_missing'."


# ---- delete ----------------------------------------------------------------------------


def test_delete_thread(client: openai.OpenAI, http: httpx.Client) -> None:
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "one"}, {"role": "user", "content": "two"}]
    )
    message_ids = [m.id for m in client.beta.threads.messages.list(thread.id).data]
    assert len(message_ids) == 2

    deleted = client.beta.threads.delete(thread.id)
    assert deleted.id == thread.id
    assert deleted.object == "thread.deleted"
    assert deleted.deleted is True

    with pytest.raises(openai.NotFoundError) as exc:
        client.beta.threads.retrieve(thread.id)
    error = assert_error(exc.value.response, 404)
    assert error["message"] == f"No thread found with id '{thread.id}'."

    # Its messages are gone with it.
    with pytest.raises(openai.NotFoundError) as exc:
        client.beta.threads.messages.list(thread.id)
    assert_error(exc.value.response, 404)
    for message_id in message_ids:
        assert_error(http.get(f"/threads/{thread.id}/messages/{message_id}"), 404)
    assert_error(
        http.post(f"/threads/{thread.id}/messages", json={"role": "user", "content": "x"}), 404
    )
    assert_error(http.post(f"/threads/{thread.id}", json={"metadata": {}}), 404)
    assert_error(http.delete(f"/threads/{thread.id}"), 404)


def test_delete_wire_shape(client: openai.OpenAI, http: httpx.Client) -> None:
    thread = client.beta.threads.create()
    response = http.delete(f"/threads/{thread.id}")
    assert response.status_code == 200
    assert response.json() == {"id": thread.id, "object": "thread.deleted", "deleted": True}


def test_delete_leaves_other_threads(client: openai.OpenAI) -> None:
    keep = client.beta.threads.create(messages=[{"role": "user", "content": "keep"}])
    drop = client.beta.threads.create(messages=[{"role": "user", "content": "drop"}])
    client.beta.threads.delete(drop.id)
    assert client.beta.threads.retrieve(keep.id) == keep
    [message] = client.beta.threads.messages.list(keep.id).data
    assert text_of(message) == "keep"


def test_delete_unknown_thread_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as exc:
        client.beta.threads.delete("thread_missing")
    error = assert_error(exc.value.response, 404)
    assert error["message"] == "No thread found with id 'thread_missing'."


def test_thread_of_another_project_is_404(client: openai.OpenAI, make_client: Any) -> None:
    other = make_client()
    thread = other.beta.threads.create(messages=[{"role": "user", "content": "secret"}])
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.retrieve(thread.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.delete(thread.id)
    assert other.beta.threads.retrieve(thread.id) == thread
    [message] = other.beta.threads.messages.list(thread.id).data
    assert text_of(message) == "secret"
