"""The playground in a real browser against the live server and its scripted model: streamed
Markdown answers, function calls answered by hand, citations, code interpreter output,
cancelling, errors, reopening a thread, a phone's width and the keyboard alone.

Each test's assistant uses a model name of its own, so the scripted replies it queues are
answered to that test only.
"""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path
from typing import Any

import openai
import pytest
from playwright.sync_api import Locator, Page, expect

from assistd.backends.scripted import Reply, text_reply, tool_reply
from assistd.sandbox.bubblewrap import unavailable_reason
from tests.api.vs_support import stores, wait_until
from tests.ui.conftest import PHONE, Console

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
HANDBOOK = (
    "Employee handbook. Paid leave: every employee gets 25 days of paid vacation per year. "
    "Unused vacation days carry over to the next year, up to five days."
)


def sdk(console: Console) -> openai.OpenAI:
    return openai.OpenAI(base_url=console.server.base_url, api_key=console.key)


def assistant(console: Console, **kwargs: Any) -> tuple[str, str]:
    """A new assistant with a model name of its own: (assistant id, model)."""
    model = "pg-" + secrets.token_hex(4)
    created = sdk(console).beta.assistants.create(model=model, name="Helper " + model, **kwargs)
    return created.id, model


def go(console: Console, route: str) -> None:
    # Signing in lands on the playground; let that first render finish before going to
    # another route, or the two renders race for the view.
    expect(console.page.get_by_role("heading", name="Playground")).to_be_visible()
    console.go(route)


def open_playground(console: Console, assistant_id: str) -> Page:
    go(console, f"/playground?assistant={assistant_id}")
    expect(console.page.get_by_label("Assistant")).to_have_value(assistant_id)
    return console.page


def send(page: Page, text: str) -> None:
    page.get_by_label("Message").fill(text)
    page.get_by_role("button", name="Send").click()


def run_status(page: Page) -> Locator:
    return page.locator(".run-panel .run-status .status")


def no_horizontal_overflow(page: Page) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow} px wider than the screen"


def test_the_answer_streams_as_markdown_with_highlighted_code(console: Console) -> None:
    assistant_id, model = assistant(console)
    console.server.scripted.queue(
        text_reply("Hello **there**, here is code:\n```python\nprint(1)\n```", delay=0.05),
        model=model,
    )
    page = open_playground(console, assistant_id)
    # Record what the answer showed at each change, to see it grow (no timing involved).
    page.evaluate(
        """() => {
        window.seen = [];
        new MutationObserver(() => {
            const answer = document.querySelector(".message.assistant .body");
            if (answer) window.seen.push(answer.textContent);
        }).observe(document.querySelector(".messages"),
                   {subtree: true, childList: true, characterData: true});
        }"""
    )
    send(page, "Say hello")
    expect(page.locator(".message.user .body")).to_have_text("Say hello")
    answer = page.locator(".message.assistant")
    expect(run_status(page)).to_have_text("completed")
    expect(answer.locator("strong")).to_have_text("there")
    code = answer.locator("pre code")
    expect(code).to_have_text("print(1)")
    expect(code.locator(".tok-kw, .tok-num").first).to_be_visible()
    assert answer.locator(".tok-num").inner_text() == "1"
    seen: list[str] = page.evaluate("window.seen")
    partial = [s for s in seen if s.startswith("Hello") and "print(1)" not in s]
    assert partial, f"the answer never showed a partial state: {seen}"
    # The run panel: the message step and the run's usage.
    panel = page.locator(".run-panel")
    expect(panel.locator(".step")).to_have_count(1)
    expect(panel.locator(".step .status.completed")).to_be_visible()
    expect(panel.locator(".run-usage")).to_contain_text("Total tokens")
    run = sdk(console).beta.threads.runs.list(_thread_id(page)).data[0]
    assert run.usage is not None
    expect(panel.locator(".run-usage dd").nth(2)).to_have_text(str(run.usage.total_tokens))
    assert _thread_id(page).startswith("thread_")


def _thread_id(page: Page) -> str:
    return str(page.evaluate("new URLSearchParams(location.hash.split('?')[1]).get('thread')"))


def test_a_function_call_answered_by_hand(console: Console) -> None:
    assistant_id, model = assistant(console, tools=[WEATHER])
    console.server.scripted.queue(
        tool_reply(("get_weather", {"city": "Paris"})),
        text_reply("It is sunny."),
        model=model,
    )
    page = open_playground(console, assistant_id)
    send(page, "Weather in Paris?")
    expect(run_status(page)).to_have_text("requires action")
    form = page.get_by_role("form", name="Answer the function calls")
    expect(form.get_by_label("Arguments of get_weather")).to_have_text(
        json.dumps({"city": "Paris"}, indent=2)
    )
    expect(page.get_by_role("button", name="Send")).to_be_disabled()
    form.get_by_label("Output for get_weather").fill('{"sky": "sunny", "celsius": 21}')
    form.get_by_role("button", name="Submit outputs").click()
    expect(page.locator(".message.assistant")).to_contain_text("It is sunny.")
    expect(run_status(page)).to_have_text("completed")
    expect(form).to_have_count(0)
    # The panel shows the call with its output; the server stored it.
    panel = page.locator(".run-panel")
    expect(panel.get_by_label("Output of get_weather")).to_have_text(
        '{"sky": "sunny", "celsius": 21}'
    )
    client = sdk(console)
    thread_id = _thread_id(page)
    run = client.beta.threads.runs.list(thread_id).data[0]
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id, order="asc").data
    details = steps[0].step_details
    assert details.type == "tool_calls"
    call = details.tool_calls[0]
    assert call.type == "function"
    assert call.function.output == '{"sky": "sunny", "celsius": 21}'


def test_upload_a_file_and_follow_its_citation(console: Console, tmp_path: Any) -> None:
    client = sdk(console)
    handbook = client.files.create(file=("handbook.txt", HANDBOOK.encode()), purpose="assistants")
    store = stores(client).create(name="docs", file_ids=[handbook.id])
    wait_until(lambda: stores(client).retrieve(store.id).file_counts.completed == 1, timeout=60)
    assistant_id, model = assistant(
        console,
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}},
    )
    console.server.scripted.queue(
        tool_reply(("file_search", {"queries": ["vacation days"]})),
        text_reply("You get 25 days【0:0†source】 of leave."),
        model=model,
    )
    page = open_playground(console, assistant_id)
    # An attachment uploaded from the page goes with the message (for code interpreter too).
    notes = tmp_path / "notes.txt"
    notes.write_text("Questions about leave.")
    page.get_by_label("Attach files").set_input_files(str(notes))
    page.get_by_label("Code interpreter").check()
    expect(page.get_by_role("list", name="Attached files")).to_contain_text("notes.txt")
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    send(page, "How much vacation do I get?")
    expect(page.locator(".message.user .attached")).to_contain_text("notes.txt")
    expect(page.get_by_role("list", name="Attached files")).to_be_empty()
    answer = page.locator(".message.assistant")
    expect(answer).to_contain_text("You get 25 days")
    expect(answer).not_to_contain_text("source】")
    expect(run_status(page)).to_have_text("completed")
    # The search shows in the steps panel with the file's name and score.
    expect(page.locator(".run-panel .results")).to_contain_text("handbook.txt — score")
    citation = answer.get_by_role("button", name="Citation 1")
    citation.focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="handbook.txt")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("File text")).to_have_text(HANDBOOK)
    expect(dialog.get_by_role("button", name="Close")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    expect(citation).to_be_focused()
    # The message went out with the uploaded file and the tools chosen.
    messages = client.beta.threads.messages.list(_thread_id(page), order="asc").data
    [attachment] = messages[0].attachments or []
    uploaded = client.files.retrieve(attachment.file_id or "")
    assert uploaded.filename == "notes.txt"
    assert sorted(t.type for t in attachment.tools or []) == ["code_interpreter", "file_search"]


@pytest.mark.skipif(
    unavailable_reason() is not None, reason=f"no sandbox here: {unavailable_reason()}"
)
def test_run_code_and_see_the_plot(console: Console) -> None:
    assistant_id, model = assistant(console, tools=[{"type": "code_interpreter"}])
    code = (
        "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
        "plt.plot([1,2,3])\nplt.show()\nprint('plotted')\n"
        "open('/mnt/data/data.csv', 'w').write('a,b\\n1,2\\n')"
    )
    reply = "Here is the plot. Download the data: sandbox:/mnt/data/data.csv"
    console.server.scripted.queue(
        tool_reply(("python", {"code": code})), text_reply(reply), model=model
    )
    page = open_playground(console, assistant_id)
    send(page, "Plot something")
    expect(run_status(page)).to_have_text("completed", timeout=60_000)
    tool = page.locator(".message.tool")
    expect(tool.get_by_label("Code")).to_have_text(code)
    expect(tool.locator(".tok-kw").first).to_have_text("import")
    expect(tool.get_by_label("Logs")).to_contain_text("plotted")
    answer = page.locator(".message.assistant")
    expect(answer).to_contain_text("Here is the plot.")
    image = answer.get_by_role("img")
    expect(image).to_have_attribute("src", re.compile(r"^blob:"))
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=image.element_handle()
    )
    assert "Image from the assistant" in (image.get_attribute("alt") or "")
    # The code's image shows with its call too.
    expect(tool.get_by_role("img")).to_have_count(1)
    # The file the code wrote: a download link in place of its sandbox path.
    expect(answer).not_to_contain_text("sandbox:")
    with page.expect_download() as download:
        answer.get_by_role("link", name="Download data.csv").click()
    assert download.value.suggested_filename == "data.csv"
    assert Path(download.value.path()).read_text() == "a,b\n1,2\n"
    expect(page.locator(".run-panel .step")).to_have_count(2)
    expect(page.locator(".run-panel").get_by_label("Logs")).to_contain_text("plotted")


def test_cancel_a_run(console: Console) -> None:
    assistant_id, model = assistant(console)
    console.server.scripted.queue(text_reply("word " * 200, delay=0.05), model=model)
    page = open_playground(console, assistant_id)
    send(page, "Talk for a while")
    expect(page.locator(".message.assistant")).to_contain_text("word")
    page.get_by_role("button", name="Cancel run").click()
    expect(run_status(page)).to_have_text("cancelled")
    expect(page.get_by_role("button", name="Cancel run")).to_be_hidden()
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    run = sdk(console).beta.threads.runs.list(_thread_id(page)).data[0]
    assert run.status == "cancelled"


def test_a_failed_run_is_shown_plainly(console: Console) -> None:
    assistant_id, model = assistant(console)
    console.server.scripted.queue(
        Reply(error="Upstream is down", error_code="server_error"), model=model
    )
    page = open_playground(console, assistant_id)
    send(page, "Hello?")
    expect(run_status(page)).to_have_text("failed")
    expect(page.get_by_role("alert")).to_contain_text("server_error: Upstream is down")
    expect(page.locator(".run-panel")).to_contain_text("Upstream is down")


def test_an_http_error_is_shown_plainly(console: Console) -> None:
    assistant_id, _ = assistant(console)
    sdk(console).beta.assistants.delete(assistant_id)
    page = open_playground(console, assistant_id)
    send(page, "Anyone there?")
    expect(page.get_by_role("alert")).to_contain_text("HTTP 404")
    expect(page.get_by_role("alert")).to_contain_text(assistant_id)
    expect(page.get_by_role("button", name="Send")).to_be_enabled()


def test_an_existing_thread_opens_with_its_messages(console: Console) -> None:
    assistant_id, model = assistant(console)
    client = sdk(console)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "First question"}])
    console.server.scripted.queue(text_reply("First *answer*"), model=model)
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant_id, poll_interval_ms=20
    )
    assert run.status == "completed"
    client.beta.threads.messages.create(thread.id, role="user", content="Second question")
    go(console, f"/playground?thread={thread.id}&assistant={assistant_id}")
    page = console.page
    messages = page.locator(".messages .message")
    expect(messages).to_have_count(3)
    expect(messages.nth(0)).to_contain_text("First question")
    expect(messages.nth(1).locator("em")).to_have_text("answer")
    expect(messages.nth(2)).to_contain_text("Second question")
    # The last run, with its steps and usage.
    expect(run_status(page)).to_have_text("completed")
    expect(page.locator(".run-panel")).to_contain_text(run.id)
    expect(page.locator(".run-panel .run-usage")).to_contain_text("Total tokens")
    # Continue the thread, then start a new one.
    console.server.scripted.queue(text_reply("Second answer"), model=model)
    send(page, "Third question")
    expect(messages).to_have_count(5)
    expect(messages.nth(4)).to_contain_text("Second answer")
    assert _thread_id(page) == thread.id
    page.get_by_role("button", name="New thread").click()
    expect(messages).to_have_count(0)
    assert _thread_id(page) == "None"
    expect(page.get_by_label("Message")).to_be_focused()


@pytest.mark.parametrize("console", [PHONE], indirect=True)
def test_a_phone_with_the_keyboard_alone(console: Console) -> None:
    assistant_id, model = assistant(console)
    long_line = "x" * 300
    console.server.scripted.queue(
        text_reply(f"A long answer:\n```python\nvalue = '{long_line}'\n```\n{long_line}"),
        model=model,
    )
    page = open_playground(console, assistant_id)
    textarea = page.get_by_label("Message")
    for _ in range(20):
        if textarea.evaluate("node => node === document.activeElement"):
            break
        page.keyboard.press("Tab")
    expect(textarea).to_be_focused()
    page.keyboard.type("First line")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("second line")
    expect(textarea).to_have_value("First line\nsecond line")
    page.keyboard.press("Enter")
    expect(page.locator(".message.user")).to_contain_text("First line\nsecond line")
    expect(page.locator(".message.assistant")).to_contain_text("A long answer:")
    expect(run_status(page)).to_have_text("completed")
    expect(page.locator(".message.assistant pre")).to_be_visible()
    no_horizontal_overflow(page)
    page.locator(".run-panel").scroll_into_view_if_needed()
    no_horizontal_overflow(page)
