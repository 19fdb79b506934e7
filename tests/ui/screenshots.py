"""The README's console screenshots, taken from a live server with the scripted model.

    .venv/bin/python -m tests.ui.screenshots [out-dir]      # default: docs/

Not a test: it stages a small project (a handbook in a vector store, an assistant that
searches it), answers one question in the playground and photographs the playground and a
vector store's search at 1280 px.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import openai
from playwright.sync_api import expect, sync_playwright

from assistd.backends.scripted import text_reply, tool_reply
from tests.api.vs_support import stores, wait_until
from tests.conftest import LiveServer, make_settings
from tests.ui.conftest import DESKTOP, chromium, sign_in

HANDBOOK = (
    "Employee handbook.\n\nPaid leave: every employee gets 25 days of paid vacation per "
    "year. Unused vacation days carry over to the next year, up to five days.\n\nRemote work: "
    "up to three days a week, agreed with your team."
)
ANSWER = (
    "You get **25 days** of paid vacation a year【0:0†source】. Unused days carry over, "
    "up to five:\n\n```python\ncarried = min(unused_days, 5)\n```"
)


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    path = chromium()
    if path is None:
        raise SystemExit("no Chromium: run scripts/ensure-chromium")
    with tempfile.TemporaryDirectory() as data:
        server = LiveServer(make_settings(Path(data))).start()
        try:
            shoot(server, path, out)
        finally:
            server.stop()


def shoot(server: LiveServer, browser_path: str, out: Path) -> None:
    key = server.new_key("proj_handbook")
    sdk = openai.OpenAI(base_url=server.base_url, api_key=key)
    handbook = sdk.files.create(file=("handbook.md", HANDBOOK.encode()), purpose="assistants")
    store = stores(sdk).create(name="Handbook", file_ids=[handbook.id])
    wait_until(lambda: stores(sdk).retrieve(store.id).file_counts.completed == 1, timeout=60)
    assistant = sdk.beta.assistants.create(
        model="gpt-4o",
        name="HR helper",
        instructions="Answer questions about the employee handbook, citing it.",
        tools=[{"type": "file_search"}, {"type": "code_interpreter"}],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}},
    )
    server.scripted.queue(
        tool_reply(("file_search", {"queries": ["paid vacation days"]})),
        text_reply(ANSWER, delay=0.01),
        model="gpt-4o",
    )
    origin = server.base_url.removesuffix("/v1")
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        page = browser.new_context(viewport=DESKTOP).new_page()  # type: ignore[arg-type]
        sign_in(page, origin, key)
        page.goto(f"{origin}/ui/#/playground?assistant={assistant.id}")
        expect(page.get_by_label("Assistant")).to_have_value(assistant.id)
        page.get_by_label("Message").fill("How many vacation days do I get?")
        page.get_by_role("button", name="Send").click()
        expect(page.locator(".run-panel .run-status .status")).to_have_text("completed")
        page.screenshot(path=str(out / "console-playground.png"))

        page.goto(f"{origin}/ui/#/vector-stores/{store.id}")
        search = page.get_by_role("form", name="Search")
        search.get_by_label("Query").fill("remote work")
        search.get_by_role("button", name="Search").click()
        expect(
            page.get_by_role("list", name="Search results").locator("> li").first
        ).to_be_visible()
        page.screenshot(path=str(out / "console-vector-store.png"), full_page=True)
        browser.close()
    print(f"screenshots in {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs"))
