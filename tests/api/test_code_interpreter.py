"""The code_interpreter tool in runs: a real sandbox, a scripted model.

The model is scripted to call ``python`` and then to answer; what is under test is what
happens around it: the code running in the thread's kernel (state, files, isolation,
time limits), the step's ``input``/``outputs`` (streamed too), the images and files the
code produced becoming File objects, ``image_file`` parts and ``file_path`` annotations.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.beta.threads import Run

from assistd.backends.base import Usage
from assistd.backends.scripted import Reply, text_reply, tool_reply
from assistd.sandbox.bubblewrap import unavailable_reason
from assistd.tools.code_interpreter import CodeInterpreterTool
from tests.api.stream_support import (
    INSTRUCTIONS,
    assert_matches_golden,
    check_order,
    load_golden,
    stream_post,
)
from tests.conftest import LiveServer

_REASON = unavailable_reason()
pytestmark = pytest.mark.skipif(_REASON is not None, reason=f"no sandbox here: {_REASON}")

PNG = b"\x89PNG\r\n\x1a\n"


def _model() -> str:
    return "ci-" + secrets.token_hex(5)


def _assistant(client: openai.OpenAI, model: str, **kwargs: Any) -> str:
    return client.beta.assistants.create(
        model=model, tools=[{"type": "code_interpreter"}], **kwargs
    ).id


def _run(
    client: openai.OpenAI,
    server: LiveServer,
    model: str,
    assistant_id: str,
    thread_id: str,
    *replies: Reply,
) -> Run:
    server.scripted.queue(*replies, model=model)
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant_id, poll_interval_ms=20
    )
    assert run.status == "completed", run.last_error
    return run


def _call(client: openai.OpenAI, run: Run) -> Any:
    """The run's one code_interpreter call."""
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=run.thread_id, order="asc")
    details = steps.data[0].step_details
    assert details.type == "tool_calls"
    [call] = details.tool_calls
    assert call.type == "code_interpreter"
    return call.code_interpreter


def _logs(call: Any) -> str:
    return "".join(o.logs for o in call.outputs if o.type == "logs")


def _reply(client: openai.OpenAI, run: Run) -> Any:
    return client.beta.threads.messages.list(run.thread_id, run_id=run.id).data[0]


@pytest.fixture
def tool(server: LiveServer) -> CodeInterpreterTool:
    assert server.services.code_interpreter is not None
    return server.services.code_interpreter


def test_state_persists_across_runs_and_the_model_reads_the_output(
    client: openai.OpenAI, server: LiveServer
) -> None:
    model = _model()
    assistant_id = _assistant(client, model)
    thread_id = client.beta.threads.create(messages=[{"role": "user", "content": "x?"}]).id
    first = _run(
        client,
        server,
        model,
        assistant_id,
        thread_id,
        tool_reply(("python", {"code": "x = 41"})),
        text_reply("Set."),
    )
    assert _call(client, first).input == "x = 41"
    client.beta.threads.messages.create(thread_id, role="user", content="And now?")
    second = _run(
        client,
        server,
        model,
        assistant_id,
        thread_id,
        tool_reply(("python", {"code": "print(x + 1)"})),
        text_reply("It is 42."),
    )
    call = _call(client, second)
    assert call.input == "print(x + 1)"
    assert [o.type for o in call.outputs] == ["logs"]
    assert _logs(call) == "42\n"
    # The next completion saw the call and its output.
    request = server.scripted.requests_for(model)[-1]
    assert [t["function"]["name"] for t in request.tools] == ["python"]
    assert request.messages[-1]["role"] == "tool"
    assert request.messages[-1]["content"].startswith("42")
    assert request.messages[-2]["tool_calls"][0]["function"]["name"] == "python"


def test_attached_csv_is_analysed_with_pandas(client: openai.OpenAI, server: LiveServer) -> None:
    model = _model()
    notes = client.files.create(file=("notes.txt", b"from the assistant"), purpose="assistants")
    assistant_id = _assistant(
        client, model, tool_resources={"code_interpreter": {"file_ids": [notes.id]}}
    )
    data = client.files.create(file=("data.csv", b"a,b\n1,2\n3,4\n8,6\n"), purpose="assistants")
    thread_id = client.beta.threads.create(
        messages=[
            {
                "role": "user",
                "content": "Mean of a?",
                "attachments": [{"file_id": data.id, "tools": [{"type": "code_interpreter"}]}],
            }
        ]
    ).id
    code = (
        "import pandas as pd\n"
        "df = pd.read_csv('/mnt/data/data.csv')\n"
        "print(df['a'].mean())\n"
        "print(open('/mnt/data/notes.txt').read())"
    )
    run = _run(
        client,
        server,
        model,
        assistant_id,
        thread_id,
        tool_reply(("python", {"code": code})),
        text_reply("The mean is 4."),
    )
    call = _call(client, run)
    assert _logs(call) == "4.0\nfrom the assistant\n"
    # Input files are not handed back as outputs.
    assert [o.type for o in call.outputs] == ["logs"]
    shown = server.scripted.requests_for(model)[-1].messages[-1]["content"]
    assert "/mnt/data/data.csv" in shown


def test_plot_becomes_an_image_output_and_an_image_file_part(
    client: openai.OpenAI, server: LiveServer
) -> None:
    model = _model()
    assistant_id = _assistant(client, model)
    thread_id = client.beta.threads.create(messages=[{"role": "user", "content": "Plot"}]).id
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()"
    run = _run(
        client,
        server,
        model,
        assistant_id,
        thread_id,
        tool_reply(("python", {"code": code})),
        text_reply("Here is the plot."),
    )
    [image] = [o for o in _call(client, run).outputs if o.type == "image"]
    file_id = image.image.file_id
    assert client.files.content(file_id).read().startswith(PNG)
    assert client.files.retrieve(file_id).purpose == "assistants_output"
    message = _reply(client, run)
    assert [p.type for p in message.content] == ["image_file", "text"]
    assert message.content[0].type == "image_file"
    assert message.content[0].image_file.file_id == file_id
    assert message.content[1].type == "text"
    assert message.content[1].text.value == "Here is the plot."


def test_written_file_is_downloadable_and_linked(client: openai.OpenAI, server: LiveServer) -> None:
    model = _model()
    assistant_id = _assistant(client, model)
    thread_id = client.beta.threads.create(messages=[{"role": "user", "content": "CSV"}]).id
    code = "with open('/mnt/data/out.csv', 'w') as f:\n    f.write('x,y\\n1,2\\n')"
    answer = "Download it: sandbox:/mnt/data/out.csv. Or [here](sandbox:/mnt/data/none.csv)."
    run = _run(
        client,
        server,
        model,
        assistant_id,
        thread_id,
        tool_reply(("python", {"code": code})),
        text_reply(answer),
    )
    message = _reply(client, run)
    [part] = message.content
    assert part.type == "text"
    assert part.text.value == answer
    [note] = part.text.annotations
    assert note.type == "file_path"
    assert note.text == "sandbox:/mnt/data/out.csv"
    assert answer[note.start_index : note.end_index] == note.text
    assert client.files.content(note.file_path.file_id).read() == b"x,y\n1,2\n"
    produced = client.files.retrieve(note.file_path.file_id)
    assert produced.purpose == "assistants_output"
    assert produced.filename == "/mnt/data/out.csv"
    shown = server.scripted.requests_for(model)[-1].messages[-1]["content"]
    assert "sandbox:/mnt/data/out.csv" in shown


def test_stream_shows_code_outputs_image_and_annotation(
    client: openai.OpenAI, server: LiveServer
) -> None:
    model = _model()
    assistant_id = _assistant(client, model)
    thread_id = client.beta.threads.create(messages=[{"role": "user", "content": "All"}]).id
    code = (
        "import matplotlib.pyplot as plt\n"
        "plt.plot([3, 1, 2])\n"
        "plt.show()\n"
        "open('/mnt/data/data.csv', 'w').write('a\\n1\\n')\n"
        'print("2+2 =", 2 + 2)'
    )
    answer = "Here is the plot. Download the data: sandbox:/mnt/data/data.csv"
    server.scripted.queue(tool_reply(("python", {"code": code})), text_reply(answer), model=model)
    inputs: list[str] = []
    outputs: list[Any] = []
    parts: list[Any] = []
    with client.beta.threads.runs.stream(thread_id=thread_id, assistant_id=assistant_id) as stream:
        for event in stream:
            if event.event == "thread.run.step.delta":
                details = event.data.delta.step_details
                assert details is not None
                assert details.type == "tool_calls"
                for call in details.tool_calls or []:
                    assert call.type == "code_interpreter"
                    assert call.code_interpreter is not None
                    inputs.append(call.code_interpreter.input or "")
                    outputs.extend(call.code_interpreter.outputs or [])
            elif event.event == "thread.message.delta":
                parts.extend(event.data.delta.content or [])
        final = stream.get_final_messages()[0]
        run = stream.get_final_run()
    assert run.status == "completed"
    assert inputs[0] == ""  # the call's introduction
    assert len([i for i in inputs if i]) > 1  # the code came in pieces
    assert "".join(inputs) == code
    assert [(o.index, o.type) for o in outputs] == [(0, "logs"), (1, "image")]
    assert outputs[0].logs == "2+2 = 4\n"
    image_id = outputs[1].image.file_id
    # The message: the image first (index 0), then the text with its annotation.
    assert parts[0].type == "image_file"
    assert parts[0].index == 0
    assert parts[0].image_file.file_id == image_id
    texts = [p for p in parts if p.type == "text"]
    assert {p.index for p in texts} == {1}
    assert "".join(p.text.value or "" for p in texts) == answer
    carrying = [p for p in texts if p.text.annotations]
    assert len(carrying) == 1
    [note] = carrying[0].text.annotations or []
    assert note.type == "file_path"
    assert note.index == 0
    assert "sandbox:/mnt/data/data.csv" in (carrying[0].text.value or "")
    assert answer[note.start_index or 0 : note.end_index] == "sandbox:/mnt/data/data.csv"
    assert [p.type for p in final.content] == ["image_file", "text"]
    text = final.content[1]
    assert text.type == "text"
    assert [a.type for a in text.text.annotations] == ["file_path"]


@pytest.fixture
def short_limit(tool: CodeInterpreterTool) -> Iterator[None]:
    saved = tool.time_limit
    tool.time_limit = 1.0
    try:
        yield
    finally:
        tool.time_limit = saved


@pytest.mark.usefixtures("short_limit")
def test_timeout_is_reported_and_the_run_completes(
    client: openai.OpenAI, server: LiveServer
) -> None:
    model = _model()
    assistant_id = _assistant(client, model)
    thread_id = client.beta.threads.create(messages=[{"role": "user", "content": "Loop"}]).id
    run = _run(
        client,
        server,
        model,
        assistant_id,
        thread_id,
        tool_reply(("python", {"code": "y = 7\nwhile True:\n    pass"})),
        text_reply("That took too long."),
    )
    logs = _logs(_call(client, run))
    assert "ExecutionTimeout" in logs or "time limit" in logs
    assert "time limit" in server.scripted.requests_for(model)[-1].messages[-1]["content"]


def test_threads_do_not_see_each_others_files(client: openai.OpenAI, server: LiveServer) -> None:
    model = _model()
    assistant_id = _assistant(client, model)
    one = client.beta.threads.create(messages=[{"role": "user", "content": "a"}]).id
    two = client.beta.threads.create(messages=[{"role": "user", "content": "b"}]).id
    _run(
        client,
        server,
        model,
        assistant_id,
        one,
        tool_reply(("python", {"code": "open('/mnt/data/secret.txt', 'w').write('s')"})),
        text_reply("Written."),
    )
    run = _run(
        client,
        server,
        model,
        assistant_id,
        two,
        tool_reply(("python", {"code": "import os\nprint(os.listdir('/mnt/data'))"})),
        text_reply("Empty."),
    )
    assert _logs(_call(client, run)) == "[]\n"
    # Deleting a thread removes its sandbox directory.
    root = server.settings.resolved_sandbox_dir
    assert (root / one).is_dir()
    client.beta.threads.delete(one)
    assert not (root / one).exists()


def test_golden_code_interpreter(
    client: openai.OpenAI, server: LiveServer, http: httpx.Client
) -> None:
    model = _model()
    # The fixture's code with the data.csv its answer links actually written.
    code = (
        "import matplotlib.pyplot as plt\n"
        "plt.plot([1,2,3])\n"
        "open('data.csv', 'w').write('a\\n1\\n')\n"
        "print(2+2)"
    )
    answer = "Here is the plot. 2+2 = 4. Download the data: sandbox:/mnt/data/data.csv"
    server.scripted.queue(
        tool_reply(("python", {"code": code}), usage=Usage(300, 60)),
        text_reply(answer, usage=Usage(21, 9)),
        model=model,
    )
    assistant_id = client.beta.assistants.create(
        model=model, instructions=INSTRUCTIONS, tools=[{"type": "code_interpreter"}]
    ).id
    thread_id = client.beta.threads.create(messages=[{"role": "user", "content": "Plot"}]).id
    frames = stream_post(http, f"/threads/{thread_id}/runs", {"assistant_id": assistant_id})
    check_order(frames)
    run_id = frames[0].data["id"]
    call = _call(client, client.beta.threads.runs.retrieve(run_id, thread_id=thread_id))
    [image] = [o.image.file_id for o in call.outputs if o.type == "image"]
    message = client.beta.threads.messages.list(thread_id, run_id=run_id).data[0]
    assert message.content[1].type == "text"
    [csv] = [
        a.file_path.file_id for a in message.content[1].text.annotations if a.type == "file_path"
    ]
    ids = {"file-img1": image, "file-csv1": csv}

    def ours(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: ours(v) for k, v in value.items()}
        if isinstance(value, list):
            return [ours(v) for v in value]
        return ids.get(value, value) if isinstance(value, str) else value

    def patch(index: int, expected: dict[str, Any]) -> None:
        expected.update(ours(expected))
        details = expected.get("step_details") or expected.get("delta", {}).get("step_details")
        for entry in (details or {}).get("tool_calls", []):
            if entry.get("code_interpreter", {}).get("input"):
                entry["code_interpreter"]["input"] = code
        if expected.get("object") == "thread.run" and expected.get("usage"):
            # The fixture's run total is not the sum of its steps; ours is.
            expected["usage"] = {"prompt_tokens": 321, "completion_tokens": 69, "total_tokens": 390}

    assert_matches_golden(frames, load_golden("code_interpreter"), model=model, patch=patch)
