from __future__ import annotations

import openai


def test_assistant_roundtrip(client: openai.OpenAI) -> None:
    created = client.beta.assistants.create(model="gpt-4o", name="Math Tutor")
    assert created.id.startswith("asst_")
    fetched = client.beta.assistants.retrieve(created.id)
    assert fetched == created
    page = client.beta.assistants.list()
    assert [a.id for a in page.data] == [created.id]
