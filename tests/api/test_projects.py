"""Projects: what one API key's project makes is invisible (404, not 403) to another's."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import openai
import pytest

from tests.conftest import STATIC_KEY, ClientFactory, LiveServer, assert_error, raw_client


@dataclass
class Owned:
    """Objects of every kind made in project A."""

    assistant: str
    thread: str
    message: str
    file: str


@pytest.fixture
def other(make_client: ClientFactory) -> openai.OpenAI:
    """Project B."""
    return make_client()


@pytest.fixture
def owned(client: openai.OpenAI) -> Owned:
    assistant = client.beta.assistants.create(model="gpt-4o", name="A's", metadata={"p": "a"})
    thread = client.beta.threads.create(metadata={"p": "a"})
    message = client.beta.threads.messages.create(thread.id, role="user", content="secret")
    uploaded = client.files.create(file=("a.txt", b"A's bytes"), purpose="assistants")
    return Owned(assistant.id, thread.id, message.id, uploaded.id)


@pytest.fixture
def other_http(server: LiveServer, other: openai.OpenAI) -> Iterator[httpx.Client]:
    with raw_client(server, other.api_key) as raw:
        yield raw


def _requests(owned: Owned) -> list[tuple[str, str, dict[str, object] | None, str, str]]:
    """(method, path, body, kind named in the 404, id named in the 404)."""
    a, t, m, f = owned.assistant, owned.thread, owned.message, owned.file
    return [
        ("GET", f"/assistants/{a}", None, "assistant", a),
        ("POST", f"/assistants/{a}", {"name": "stolen"}, "assistant", a),
        ("DELETE", f"/assistants/{a}", None, "assistant", a),
        ("GET", f"/threads/{t}", None, "thread", t),
        ("POST", f"/threads/{t}", {"metadata": {"p": "b"}}, "thread", t),
        ("DELETE", f"/threads/{t}", None, "thread", t),
        ("GET", f"/threads/{t}/messages", None, "thread", t),
        ("POST", f"/threads/{t}/messages", {"role": "user", "content": "x"}, "thread", t),
        ("GET", f"/threads/{t}/messages/{m}", None, "thread", t),
        ("POST", f"/threads/{t}/messages/{m}", {"metadata": {"p": "b"}}, "thread", t),
        ("DELETE", f"/threads/{t}/messages/{m}", None, "thread", t),
        ("GET", f"/files/{f}", None, "file", f),
        ("GET", f"/files/{f}/content", None, "file", f),
        ("DELETE", f"/files/{f}", None, "file", f),
    ]


def assert_intact(client: openai.OpenAI, owned: Owned) -> None:
    assistant = client.beta.assistants.retrieve(owned.assistant)
    assert assistant.name == "A's"
    assert assistant.metadata == {"p": "a"}
    thread = client.beta.threads.retrieve(owned.thread)
    assert thread.metadata == {"p": "a"}
    message = client.beta.threads.messages.retrieve(owned.message, thread_id=owned.thread)
    assert message.metadata == {}
    assert [m.id for m in client.beta.threads.messages.list(owned.thread).data] == [owned.message]
    assert client.files.retrieve(owned.file).bytes == len(b"A's bytes")
    assert client.files.content(owned.file).content == b"A's bytes"
    assert [a.id for a in client.beta.assistants.list().data] == [owned.assistant]
    assert [f.id for f in client.files.list().data] == [owned.file]


def test_other_project_gets_404_everywhere(
    client: openai.OpenAI, other_http: httpx.Client, owned: Owned
) -> None:
    for method, path, body, kind, object_id in _requests(owned):
        response = other_http.request(method, path, json=body)
        error = assert_error(response, 404)
        assert error["message"] == f"No {kind} found with id '{object_id}'.", (method, path)
        assert "secret" not in response.text
    # Every attempt, deletes included, left A's objects as they were.
    assert_intact(client, owned)


def test_other_project_sdk_errors(
    client: openai.OpenAI, other: openai.OpenAI, owned: Owned
) -> None:
    calls = [
        lambda: other.beta.assistants.retrieve(owned.assistant),
        lambda: other.beta.assistants.update(owned.assistant, name="stolen"),
        lambda: other.beta.assistants.delete(owned.assistant),
        lambda: other.beta.threads.retrieve(owned.thread),
        lambda: other.beta.threads.update(owned.thread, metadata={"p": "b"}),
        lambda: other.beta.threads.delete(owned.thread),
        lambda: other.beta.threads.messages.list(owned.thread),
        lambda: other.beta.threads.messages.create(owned.thread, role="user", content="x"),
        lambda: other.beta.threads.messages.retrieve(owned.message, thread_id=owned.thread),
        lambda: other.beta.threads.messages.update(
            owned.message, thread_id=owned.thread, metadata={"p": "b"}
        ),
        lambda: other.beta.threads.messages.delete(owned.message, thread_id=owned.thread),
        lambda: other.files.retrieve(owned.file),
        lambda: other.files.content(owned.file),
        lambda: other.files.delete(owned.file),
    ]
    for call in calls:
        with pytest.raises(openai.NotFoundError):
            call()
    assert_intact(client, owned)


def test_other_project_lists_are_empty(
    client: openai.OpenAI, other: openai.OpenAI, other_http: httpx.Client, owned: Owned
) -> None:
    assert other.beta.assistants.list().data == []
    assert list(other.beta.assistants.list(order="asc")) == []
    assert other.files.list().data == []
    assert other.files.list(purpose="assistants").data == []
    # A's ids as cursors reveal nothing either.
    for params in ({"after": owned.assistant}, {"before": owned.assistant}):
        body = other_http.get("/assistants", params=params).json()
        assert body == {
            "object": "list",
            "data": [],
            "first_id": None,
            "last_id": None,
            "has_more": False,
        }
    # B's own objects never show up in A's lists, and A's never in B's.
    mine = other.beta.assistants.create(model="gpt-4o", name="B's")
    other_file = other.files.create(file=("b.txt", b"B"), purpose="assistants")
    assert [a.id for a in other.beta.assistants.list().data] == [mine.id]
    assert [f.id for f in other.files.list().data] == [other_file.id]
    assert [a.id for a in client.beta.assistants.list().data] == [owned.assistant]
    assert [f.id for f in client.files.list().data] == [owned.file]


def test_other_projects_files_cannot_be_referenced(other: openai.OpenAI, owned: Owned) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        other.beta.assistants.create(
            model="gpt-4o",
            tools=[{"type": "code_interpreter"}],
            tool_resources={"code_interpreter": {"file_ids": [owned.file]}},
        )
    assert caught.value.param == "tool_resources.code_interpreter.file_ids[0]"
    thread = other.beta.threads.create()
    with pytest.raises(openai.BadRequestError) as caught:
        other.beta.threads.messages.create(
            thread.id,
            role="user",
            content="x",
            attachments=[{"file_id": owned.file, "tools": [{"type": "code_interpreter"}]}],
        )
    assert caught.value.param == "attachments[0].file_id"
    assert other.beta.threads.messages.list(thread.id).data == []


def test_other_project_cannot_use_a_thread_as_its_own(
    client: openai.OpenAI, other: openai.OpenAI, owned: Owned
) -> None:
    # B makes a thread of its own; A's message id under B's thread is still not found.
    mine = other.beta.threads.create()
    with pytest.raises(openai.NotFoundError) as caught:
        other.beta.threads.messages.retrieve(owned.message, thread_id=mine.id)
    assert caught.value.body == {
        "message": f"No message found with id '{owned.message}'.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    assert_intact(client, owned)


def test_two_keys_of_one_project_share_objects(
    server: LiveServer, make_client: ClientFactory
) -> None:
    project = "proj_" + secrets.token_hex(6)
    first = make_client(api_key=server.new_key(project))
    second = make_client(api_key=server.new_key(project))
    assert first.api_key != second.api_key
    assistant = first.beta.assistants.create(model="gpt-4o", name="shared")
    thread = second.beta.threads.create()
    message = first.beta.threads.messages.create(thread.id, role="user", content="hi")
    uploaded = second.files.create(file=("s.txt", b"shared"), purpose="assistants")

    assert second.beta.assistants.retrieve(assistant.id) == assistant
    assert first.beta.threads.retrieve(thread.id) == thread
    assert second.beta.threads.messages.retrieve(message.id, thread_id=thread.id) == message
    assert first.files.retrieve(uploaded.id) == uploaded
    assert [a.id for a in second.beta.assistants.list().data] == [assistant.id]
    assert [f.id for f in first.files.list().data] == [uploaded.id]

    updated = second.beta.assistants.update(assistant.id, name="renamed")
    assert first.beta.assistants.retrieve(assistant.id).name == updated.name == "renamed"
    assert second.beta.assistants.delete(assistant.id).deleted is True
    with pytest.raises(openai.NotFoundError):
        first.beta.assistants.retrieve(assistant.id)


def test_static_key_from_settings(server: LiveServer, make_client: ClientFactory) -> None:
    static = make_client(api_key=STATIC_KEY)
    assistant = static.beta.assistants.create(model="gpt-4o", name="static")
    try:
        assert static.beta.assistants.retrieve(assistant.id).name == "static"
        assert assistant.id in [a.id for a in static.beta.assistants.list(limit=100)]
        # A database key made for project "static" is in the same project.
        same = make_client(api_key=server.new_key("static"))
        assert same.beta.assistants.retrieve(assistant.id) == assistant
        # Any other project cannot see it.
        stranger = make_client()
        with pytest.raises(openai.NotFoundError):
            stranger.beta.assistants.retrieve(assistant.id)
        assert stranger.beta.assistants.list().data == []
    finally:
        static.beta.assistants.delete(assistant.id)


def test_unknown_key_is_401(server: LiveServer, make_client: ClientFactory) -> None:
    stranger = make_client(api_key="sk-assistd-" + secrets.token_urlsafe(32))
    with pytest.raises(openai.AuthenticationError) as caught:
        stranger.beta.assistants.list()
    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"
    with httpx.Client(base_url=server.base_url, timeout=30) as raw:
        # Near misses of a real key are unknown keys too.
        for key in (STATIC_KEY + "x", STATIC_KEY[:-1], STATIC_KEY.upper()):
            response = raw.get("/assistants", headers={"Authorization": f"Bearer {key}"})
            assert_error(response, 401, code="invalid_api_key")
            assert key not in response.text
