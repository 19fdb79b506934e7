"""Projects: keys and the project they name (static keys, shared projects, unknown keys).

That one project's objects are invisible (404, not 403) to another, on every route, is
``test_isolation.py``: a test generated from the route table."""

from __future__ import annotations

import secrets

import httpx
import openai
import pytest

from tests.conftest import STATIC_KEY, ClientFactory, LiveServer, assert_error


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
