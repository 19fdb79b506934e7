"""Files in the console: several uploads at once with a progress bar each, drag and drop,
an error shown on the file it belongs to, the list with paging and a purpose filter,
download and delete; at phone width."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
from playwright.sync_api import Page, expect

from tests.ui.conftest import PHONE, Console
from tests.ui.manage_support import assert_fits, assert_reachable, sdk


def names(page: Page) -> list[str]:
    return page.get_by_role("table", name="Files").locator("tbody td:first-child").all_inner_texts()


def finished(page: Page, filename: str) -> None:
    bar = page.get_by_label(f"Upload of {filename}")
    expect(bar).to_have_js_property("value", 1)
    expect(page.locator(".upload").filter(has=bar)).to_contain_text("Done")


def test_upload_two_files_at_once(console: Console) -> None:
    page = console.page
    console.go("/files")
    expect(page.get_by_text("No files.")).to_be_visible()
    page.get_by_label("Choose files").set_input_files(
        [
            {"name": "alpha.txt", "mimeType": "text/plain", "buffer": b"alpha " * 1000},
            {"name": "beta.md", "mimeType": "text/markdown", "buffer": b"# beta\n"},
        ]
    )
    finished(page, "alpha.txt")
    finished(page, "beta.md")
    table = page.get_by_role("table", name="Files")
    expect(table.locator("tbody tr")).to_have_count(2)
    assert sorted(names(page)) == ["alpha.txt", "beta.md"]
    expect(table.get_by_role("row").filter(has_text="alpha.txt")).to_contain_text("5.9 KB")
    stored = {f.filename: f for f in sdk(console).files.list()}
    assert set(stored) == {"alpha.txt", "beta.md"}
    assert stored["alpha.txt"].bytes == 6000
    assert {f.purpose for f in stored.values()} == {"assistants"}


def test_drop_files_on_the_dropzone(console: Console) -> None:
    page = console.page
    console.go("/files")
    page.get_by_label("Upload purpose").select_option("user_data")
    transfer = page.evaluate_handle(
        """() => {
            const data = new DataTransfer();
            data.items.add(new File(["dropped one"], "one.txt", {type: "text/plain"}));
            data.items.add(new File(["dropped two"], "two.txt", {type: "text/plain"}));
            return data;
        }"""
    )
    page.locator(".dropzone").dispatch_event("dragover", {"dataTransfer": transfer})
    expect(page.locator(".dropzone")).to_have_class("dropzone over")
    page.locator(".dropzone").dispatch_event("drop", {"dataTransfer": transfer})
    finished(page, "one.txt")
    finished(page, "two.txt")
    expect(page.get_by_role("table", name="Files").locator("tbody tr")).to_have_count(2)
    stored = {f.filename: f.purpose for f in sdk(console).files.list()}
    assert stored == {"one.txt": "user_data", "two.txt": "user_data"}


def test_an_error_belongs_to_its_file(console: Console) -> None:
    page = console.page
    console.go("/files")
    too_big = console.server.settings.max_upload_bytes + 1
    page.get_by_label("Choose files").set_input_files(
        [
            {"name": "huge.bin", "mimeType": "application/octet-stream", "buffer": b"x" * too_big},
            {"name": "small.txt", "mimeType": "text/plain", "buffer": b"small"},
        ]
    )
    finished(page, "small.txt")
    huge = page.locator(".upload").filter(has_text="huge.bin")
    expect(huge.locator(".invalid")).to_contain_text("too large")
    expect(page.get_by_role("table", name="Files").locator("tbody tr")).to_have_count(1)
    assert [f.filename for f in sdk(console).files.list()] == ["small.txt"]


def test_download_and_delete(console: Console, tmp_path: Path) -> None:
    client = sdk(console)
    data = bytes(range(256)) * 10
    kept = client.files.create(file=("blob.bin", data), purpose="assistants")
    gone = client.files.create(file=("gone.txt", b"bye"), purpose="assistants")
    page = console.page
    console.go("/files")
    with page.expect_download() as info:
        page.get_by_role("button", name="Download blob.bin").click()
    download = info.value
    assert download.suggested_filename == "blob.bin"
    target = tmp_path / "blob.bin"
    download.save_as(target)
    assert target.read_bytes() == data

    page.get_by_role("button", name="Delete gone.txt").click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("row").filter(has_text="gone.txt")).to_have_count(1)
    page.get_by_role("button", name="Delete gone.txt").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(page.get_by_role("row").filter(has_text="gone.txt")).to_have_count(0)
    expect(page.locator("#notice")).to_have_text("Deleted gone.txt.")
    assert [f.id for f in client.files.list()] == [kept.id]
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(gone.id)


def test_paging_and_the_purpose_filter(console: Console) -> None:
    client = sdk(console)
    for name, purpose in (("a.txt", "assistants"), ("b.txt", "user_data"), ("c.txt", "assistants")):
        client.files.create(file=(name, name.encode()), purpose=purpose)  # type: ignore[arg-type]
    page = console.page
    console.go("/files?limit=2")
    rows = page.get_by_role("table", name="Files").locator("tbody tr")
    expect(rows).to_have_count(2)
    assert names(page) == ["c.txt", "b.txt"]
    page.get_by_role("button", name="Next").click()
    expect(rows).to_have_count(1)
    assert names(page) == ["a.txt"]
    page.get_by_role("button", name="Previous").click()
    expect(rows).to_have_count(2)
    assert names(page) == ["c.txt", "b.txt"]
    page.get_by_label("Filter by purpose").select_option("user_data")
    expect(rows).to_have_count(1)
    assert names(page) == ["b.txt"]
    expect(page.get_by_role("button", name="Next")).to_be_hidden()


@pytest.mark.parametrize("console", [PHONE], indirect=True)
def test_the_files_page_fits_a_phone(console: Console) -> None:
    sdk(console).files.create(
        file=("a-file-with-a-rather-long-name-that-could-overflow.txt", b"x"), purpose="assistants"
    )
    page = console.page
    console.go("/files")
    page.get_by_label("Choose files").set_input_files(
        [{"name": "phone-upload-with-a-long-name.txt", "mimeType": "text/plain", "buffer": b"x"}]
    )
    finished(page, "phone-upload-with-a-long-name.txt")
    expect(page.get_by_role("table", name="Files").locator("tbody tr")).to_have_count(2)
    assert_fits(page)
    for control in (
        page.get_by_label("Upload purpose"),
        page.get_by_label("Choose files"),
        page.get_by_label("Filter by purpose"),
        page.get_by_role("button", name="Download").first,
        page.get_by_role("button", name="Delete").last,
    ):
        assert_reachable(page, control)
