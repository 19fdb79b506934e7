"""The Threads page: the project's threads newest first (``GET /v1/threads``), a page at a
time, each with its first message, a link into the playground, and deletion with
confirmation; on a phone and with the keyboard alone."""

from __future__ import annotations

import openai
import pytest
from playwright.sync_api import Locator, expect

from tests.ui.conftest import PHONE, Console


def sdk(console: Console) -> openai.OpenAI:
    return openai.OpenAI(base_url=console.server.base_url, api_key=console.key, max_retries=0)


def make_threads(console: Console, *first_messages: str) -> list[str]:
    """One thread per message, made in this order (so the last is the newest); each also
    gets a later reply, which the page must not show in place of the first message."""
    client = sdk(console)
    made = []
    for i, text in enumerate(first_messages):
        thread = client.beta.threads.create(
            messages=[{"role": "user", "content": text}], metadata={"n": str(i)}
        )
        client.beta.threads.messages.create(thread.id, role="assistant", content="a later reply")
        made.append(thread.id)
    return made


def rows(console: Console) -> Locator:
    return console.page.get_by_role("table", name="Threads of this project").locator("tbody tr")


def row(console: Console, thread_id: str) -> Locator:
    return rows(console).filter(has_text=thread_id)


def expect_ids(console: Console, ids: list[str]) -> None:
    expect(rows(console).locator("td[data-label=ID]")).to_have_text(ids)


def test_threads_newest_first_with_their_first_message(console: Console) -> None:
    made = make_threads(console, "first of A", "first of B", "first of C")
    console.go("/threads")
    expect_ids(console, made[::-1])
    expect(rows(console).locator("td[data-label='First message']")).to_have_text(
        ["first of C", "first of B", "first of A"]
    )
    expect(rows(console).locator("td[data-label=Metadata]")).to_have_text(["n=2", "n=1", "n=0"])
    created = rows(console).first.locator("td[data-label=Created]")
    expect(created).not_to_be_empty()
    pager = console.page.get_by_role("navigation", name="Pages of threads")
    expect(pager.get_by_role("button", name="Previous")).to_be_disabled()
    expect(pager.get_by_role("button", name="Next")).to_be_disabled()


def test_an_empty_project_points_to_the_playground(console: Console) -> None:
    console.go("/threads")
    expect(console.page.get_by_text("No threads yet.")).to_be_visible()
    expect(console.page.get_by_role("link", name="Start one in the playground")).to_be_visible()


def test_paging_next_and_previous(console: Console) -> None:
    made = make_threads(console, "A", "B", "C")
    console.go("/threads?limit=2")
    page = console.page
    previous = page.get_by_role("button", name="Previous")
    following = page.get_by_role("button", name="Next")
    expect_ids(console, [made[2], made[1]])
    expect(previous).to_be_disabled()
    following.click()
    expect_ids(console, [made[0]])
    expect(rows(console).locator("td[data-label='First message']")).to_have_text(["A"])
    expect(following).to_be_disabled()
    # The cursor is in the address: a reload shows the same page.
    expect(page).to_have_url(f"{console.origin}/ui/#/threads?limit=2&after={made[1]}")
    page.reload()
    expect_ids(console, [made[0]])
    previous.click()
    expect_ids(console, [made[2], made[1]])
    expect(page).to_have_url(f"{console.origin}/ui/#/threads?limit=2")
    expect(previous).to_be_disabled()
    expect(following).to_be_enabled()


def test_open_in_the_playground(console: Console) -> None:
    made = make_threads(console, "continue me")
    console.go("/threads")
    link = row(console, made[0]).get_by_role("link", name="Open in playground")
    expect(link).to_have_attribute("href", f"#/playground?thread={made[0]}")
    link.click()
    expect(console.page).to_have_url(f"{console.origin}/ui/#/playground?thread={made[0]}")


def test_delete_asks_first(console: Console) -> None:
    made = make_threads(console, "keep", "doomed")
    client = sdk(console)
    console.go("/threads")
    page = console.page
    delete = row(console, made[1]).get_by_role("button", name="Delete")
    delete.click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"Delete thread {made[1]}?")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)
    expect_ids(console, made[::-1])
    assert client.beta.threads.retrieve(made[1]).id == made[1]

    delete.click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect_ids(console, [made[0]])
    expect(page.locator("#notice")).to_contain_text(f"Deleted thread {made[1]}.")
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.retrieve(made[1])
    assert client.beta.threads.retrieve(made[0]).id == made[0]


@pytest.mark.parametrize("console", [PHONE], indirect=True)
def test_fits_a_phone(console: Console) -> None:
    long_text = "a long first message that goes on and on " * 8
    client = sdk(console)
    made = make_threads(console, "short", long_text)
    client.beta.threads.update(made[0], metadata={"customer": "x" * 60, "ticket": "T-" + "9" * 40})
    console.go("/threads")
    expect_ids(console, made[::-1])
    expect(row(console, made[1]).locator("td.preview")).to_contain_text("a long first message")
    expect(row(console, made[0]).get_by_role("link", name="Open in playground")).to_be_visible()
    overflow = console.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow} px wider than the screen"


def test_by_keyboard_alone(console: Console) -> None:
    made = make_threads(console, "A", "B", "C")
    console.go("/threads?limit=2")
    page = console.page
    following = page.get_by_role("button", name="Next")
    previous = page.get_by_role("button", name="Previous")
    expect_ids(console, [made[2], made[1]])
    for _ in range(40):  # Tab through the header and the rows to the pager
        if following.evaluate("node => node === document.activeElement"):
            break
        page.keyboard.press("Tab")
    expect(following).to_be_focused()
    page.keyboard.press("Enter")
    expect_ids(console, [made[0]])
    # Next is disabled on the last page: focus moves to Previous, not to nowhere.
    expect(previous).to_be_focused()
    page.keyboard.press("Enter")
    expect_ids(console, [made[2], made[1]])
    expect(following).to_be_focused()

    # Delete by keyboard: the dialog opens on Cancel; Tab to Delete and confirm.
    row(console, made[1]).get_by_role("button", name="Delete").focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    page.keyboard.press("Tab")
    expect(dialog.get_by_role("button", name="Delete")).to_be_focused()
    page.keyboard.press("Enter")
    expect_ids(console, [made[2], made[0]])
