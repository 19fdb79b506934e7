"""Assistants in the console: create with every kind of field (and the form refusing what
is wrong), edit, page through, delete with confirmation; at phone width and by keyboard.
What the form stored is read back with the official SDK."""

from __future__ import annotations

import re

import openai
import pytest
from playwright.sync_api import Page, expect

from tests.ui.conftest import PHONE, Console
from tests.ui.manage_support import assert_fits, assert_reachable, sdk, tab_to

SCHEMA = '{"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}'


def saved(console: Console, name: str) -> None:
    """Saving goes back to the list, which says what was saved."""
    expect(console.page).to_have_url(re.compile(r"#/assistants\?saved="))
    expect(console.page.locator("#notice")).to_have_text(f"Saved {name}.")


def test_create_an_assistant_with_every_kind_of_field(console: Console) -> None:
    page = console.page
    console.go("/assistants")
    page.get_by_role("link", name="New assistant").click()
    expect(page.get_by_role("heading", name="New assistant")).to_be_visible()
    page.get_by_label("Name", exact=True).fill("Weather helper")
    page.get_by_label("Description").first.fill("Answers about the weather")
    page.get_by_label("Model").select_option("gpt-4o-mini")
    page.get_by_label("Instructions").fill("Use get_weather for any city.")
    page.get_by_label("Temperature").fill("0.4")
    page.get_by_label("Top P").fill("0.9")

    page.get_by_role("button", name="Add function").click()
    tool = page.get_by_role("group", name="Function 1")
    name = tool.get_by_label("Function name")
    expect(name).to_be_focused()
    name.fill("get weather")
    parameters = tool.get_by_label("Parameters (JSON schema)")
    parameters.fill('{"type": "object", "properties": ')
    page.get_by_role("button", name="Save").click()
    # Refused in the form, each reason next to its field; nothing was sent.
    expect(name).to_have_attribute("aria-invalid", "true")
    expect(tool).to_contain_text("no spaces")
    expect(parameters).to_have_attribute("aria-invalid", "true")
    expect(tool).to_contain_text("Not valid JSON")
    expect(page).to_have_url(f"{console.origin}/ui/#/assistants/new")
    parameters.fill('{"type": "array"}')
    page.get_by_role("button", name="Save").click()
    expect(tool).to_contain_text('"type" must be "object"')
    expect(name).to_be_focused()  # the first wrong field
    name.fill("get_weather")
    tool.get_by_label("Function description").fill("The weather in a city")
    parameters.fill(SCHEMA)
    tool.get_by_label("Strict").check()

    page.get_by_role("button", name="Add metadata").click()
    page.get_by_label("Metadata key 1").fill("team")
    page.get_by_label("Metadata value 1").fill("support")
    page.get_by_role("button", name="Add metadata").click()
    page.get_by_label("Metadata key 2").fill("k" * 65)
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_label("Metadata key 2")).to_have_attribute("aria-invalid", "true")
    expect(parameters).not_to_have_attribute("aria-invalid", "true")
    page.get_by_role("button", name="Remove metadata 2").click()
    page.get_by_role("button", name="Save").click()
    saved(console, "Weather helper")

    row = page.get_by_role("row").filter(has_text="Weather helper")
    expect(row).to_contain_text("gpt-4o-mini")
    expect(row).to_contain_text("get_weather")
    (stored,) = sdk(console).beta.assistants.list().data
    assert stored.name == "Weather helper"
    assert stored.description == "Answers about the weather"
    assert stored.model == "gpt-4o-mini"
    assert stored.instructions == "Use get_weather for any city."
    assert stored.temperature == pytest.approx(0.4)
    assert stored.top_p == pytest.approx(0.9)
    assert stored.metadata == {"team": "support"}
    (function,) = stored.tools
    assert function.type == "function"
    assert function.function.name == "get_weather"
    assert function.function.description == "The weather in a city"
    assert function.function.strict is True
    assert function.function.parameters == {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    }


def test_edit_an_assistant(console: Console) -> None:
    client = sdk(console)
    uploaded = client.files.create(file=("data.csv", b"a,b\n1,2\n"), purpose="assistants")
    store = client.vector_stores.create(name="Handbook")
    made = client.beta.assistants.create(
        model="gpt-4o",
        name="Editor",
        instructions="Old instructions",
        metadata={"keep": "yes"},
        tools=[{"type": "file_search", "file_search": {"max_num_results": 5}}],
    )
    page = console.page
    console.go(f"/assistants/{made.id}")
    expect(page.get_by_role("heading", name="Edit Editor")).to_be_visible()
    expect(page.get_by_label("Model")).to_have_value("gpt-4o")
    expect(page.get_by_label("File search", exact=True)).to_be_checked()
    expect(page.get_by_label("File search: max results")).to_have_value("5")
    expect(page.get_by_label("Metadata key 1")).to_have_value("keep")
    page.get_by_label("Instructions").fill("New instructions")
    page.get_by_label("Code interpreter", exact=True).check()
    page.get_by_label("data.csv").check()
    page.get_by_label("File search vector store").select_option(label="Handbook")
    page.get_by_label("Response format").select_option("json_object")
    page.get_by_role("button", name="Save").click()
    saved(console, "Editor")

    stored = client.beta.assistants.retrieve(made.id)
    assert stored.instructions == "New instructions"
    assert [tool.type for tool in stored.tools] == ["code_interpreter", "file_search"]
    assert stored.tools[1].file_search.max_num_results == 5
    assert stored.response_format.type == "json_object"
    assert stored.tool_resources.code_interpreter.file_ids == [uploaded.id]
    assert stored.tool_resources.file_search.vector_store_ids == [store.id]
    assert stored.metadata == {"keep": "yes"}
    assert stored.model == "gpt-4o"


def test_a_json_schema_response_format_and_a_model_not_listed(console: Console) -> None:
    client = sdk(console)
    made = client.beta.assistants.create(model="my-local-model", name="Schema")
    page = console.page
    console.go(f"/assistants/{made.id}")
    # The current model stays chosen although /v1/models does not list it.
    expect(page.get_by_label("Model")).to_have_value("my-local-model")
    page.get_by_label("Response format").select_option("json_schema")
    page.get_by_label("Schema name").fill("answer")
    page.get_by_label("Schema (JSON)").fill("{not json")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_label("Schema (JSON)")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Schema (JSON)").fill('{"type": "object"}')
    page.get_by_role("button", name="Save").click()
    saved(console, "Schema")
    stored = client.beta.assistants.retrieve(made.id)
    assert stored.model == "my-local-model"
    assert stored.response_format.type == "json_schema"
    assert stored.response_format.json_schema.name == "answer"
    assert stored.response_format.json_schema.schema_ == {"type": "object"}


def test_a_server_error_names_the_parameter(console: Console) -> None:
    page = console.page
    console.go("/assistants/new")
    page.get_by_label("Name", exact=True).fill("n" * 257)  # past maxlength: typed by script
    page.get_by_label("Name", exact=True).evaluate("node => { node.value = 'n'.repeat(257); }")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#notice")).to_contain_text("(name)")
    expect(page.get_by_label("Name", exact=True)).to_have_attribute("aria-invalid", "true")
    assert sdk(console).beta.assistants.list().data == []


def rows(page: Page) -> list[str]:
    return page.locator("table[aria-label=Assistants] tbody tr td:first-child").all_inner_texts()


def test_paging_over_three_assistants_two_at_a_time(console: Console) -> None:
    client = sdk(console)
    for name in ("first", "second", "third"):
        client.beta.assistants.create(model="gpt-4o", name=name)
    page = console.page
    console.go("/assistants?limit=2")
    table = page.get_by_role("table", name="Assistants")
    expect(table.locator("tbody tr")).to_have_count(2)
    assert rows(page) == ["third", "second"]
    previous = page.get_by_role("button", name="Previous")
    expect(previous).to_be_disabled()
    page.get_by_role("button", name="Next").click()
    expect(table.locator("tbody tr")).to_have_count(1)
    assert rows(page) == ["first"]
    expect(page.get_by_role("button", name="Next")).to_be_disabled()
    previous.click()
    expect(table.locator("tbody tr")).to_have_count(2)
    assert rows(page) == ["third", "second"]
    expect(previous).to_be_disabled()
    expect(page.get_by_role("button", name="Next")).to_be_enabled()


def test_delete_asks_first(console: Console) -> None:
    client = sdk(console)
    made = client.beta.assistants.create(model="gpt-4o", name="Doomed")
    page = console.page
    console.go("/assistants")
    page.get_by_role("button", name="Delete Doomed").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Delete the assistant “Doomed”?")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)
    expect(page.get_by_role("row").filter(has_text="Doomed")).to_have_count(1)
    assert client.beta.assistants.retrieve(made.id).name == "Doomed"
    page.get_by_role("button", name="Delete Doomed").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(page.get_by_text("No assistants yet.")).to_be_visible()
    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.retrieve(made.id)


def test_delete_from_the_form(console: Console) -> None:
    client = sdk(console)
    made = client.beta.assistants.create(model="gpt-4o", name="Formed")
    page = console.page
    console.go(f"/assistants/{made.id}")
    page.get_by_role("button", name="Delete assistant").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(page).to_have_url(f"{console.origin}/ui/#/assistants")
    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.retrieve(made.id)


def test_create_an_assistant_by_keyboard_alone(console: Console) -> None:
    page = console.page
    console.go("/assistants")
    tab_to(page, page.get_by_role("link", name="New assistant"))
    page.keyboard.press("Enter")
    name = page.get_by_label("Name", exact=True)
    expect(name).to_be_focused()
    page.keyboard.type("Typed")
    page.keyboard.press("Tab")
    page.keyboard.type("Made with the keyboard")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Model")).to_be_focused()
    page.keyboard.press("ArrowDown")  # the second model listed
    page.keyboard.press("Tab")
    page.keyboard.type("Be brief.")
    tab_to(page, page.get_by_label("Code interpreter", exact=True))
    page.keyboard.press("Space")
    tab_to(page, page.get_by_role("button", name="Add function"))
    page.keyboard.press("Enter")
    page.keyboard.type("lookup")
    tab_to(page, page.get_by_role("button", name="Save"))
    page.keyboard.press("Enter")
    saved(console, "Typed")
    (stored,) = sdk(console).beta.assistants.list().data
    assert (stored.name, stored.description, stored.instructions) == (
        "Typed",
        "Made with the keyboard",
        "Be brief.",
    )
    assert stored.model == "gpt-4o-mini"
    assert [tool.type for tool in stored.tools] == ["code_interpreter", "function"]
    assert stored.tools[1].function.name == "lookup"


@pytest.mark.parametrize("console", [PHONE], indirect=True)
def test_the_assistant_form_fits_a_phone(console: Console) -> None:
    client = sdk(console)
    client.beta.assistants.create(model="gpt-4o", name="A rather long assistant name " * 3)
    page = console.page
    console.go("/assistants")
    assert_fits(page)
    assert_reachable(page, page.get_by_role("button", name="Delete").first)
    console.go("/assistants/new")
    page.get_by_role("button", name="Add function").click()
    page.get_by_role("button", name="Add metadata").click()
    page.get_by_label("Response format").select_option("json_schema")
    assert_fits(page)
    for control in (
        page.get_by_label("Model"),
        page.get_by_label("Parameters (JSON schema)"),
        page.get_by_label("Metadata value 1"),
        page.get_by_label("Schema (JSON)"),
        page.get_by_role("button", name="Save"),
    ):
        assert_reachable(page, control)
