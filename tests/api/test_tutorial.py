"""The seed tutorial (OpenAI's Assistants overview) runs unchanged against assistd.

Its Python cells are taken from ``../shared/seeds`` as they are (or from the copy in
``tests/data`` when the checkout has no ``shared/`` beside it); the only change is the one
users make: ``OPENAI_BASE_URL`` points the SDK at the server.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LiveServer

NAME = "assistants-api-overview.md"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "seeds" / NAME
SEED = SHARED if SHARED.exists() else Path(__file__).resolve().parents[1] / "data" / NAME


def tutorial_code() -> str:
    cells = re.findall(r"```python\n(.*?)(?:```|\Z)", SEED.read_text(), flags=re.S)
    # Notebook shell magics ("!pip install ...") are not Python.
    lines = [line for cell in cells for line in cell.splitlines() if not line.startswith("!")]
    return "\n".join(lines)


def test_seed_tutorial_runs_unchanged(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    key = server.new_key("tutorial")
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", key)
    shown: list[Any] = []
    namespace: dict[str, Any] = {"display": shown.append, "__name__": "tutorial"}
    exec(compile(tutorial_code(), str(SEED), "exec"), namespace)

    # First part: one thread, two runs, each answered by the assistant.
    client = namespace["client"]
    thread = namespace["thread"]
    assert namespace["run"].status in ("queued", "in_progress", "completed")
    messages = client.beta.threads.messages.list(thread_id=thread.id, order="asc").data
    assert [m.role for m in messages] == ["user", "assistant", "user", "assistant"]
    assert all(m.content[0].text.value for m in messages)
    assert {m.run_id for m in messages if m.role == "assistant"} <= {
        r.id for r in client.beta.threads.runs.list(thread_id=thread.id).data
    }
    # Second part: three threads made by the create_thread_and_run helper.
    for name in ("thread1", "thread2", "thread3"):
        run = namespace[name.replace("thread", "run")]
        final = client.beta.threads.runs.poll(run.id, thread_id=namespace[name].id)
        assert final.status == "completed"
        replies = namespace["get_response"](namespace[name]).data
        assert [m.role for m in replies] == ["user", "assistant"]
    assert shown  # show_json displayed the objects it was given
