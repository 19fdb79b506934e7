"""Vector stores in the console: create one with a file and watch its page follow the
ingestion by itself, add files (from the project and uploaded there), search and see the
ranked chunks with scores and attributes, remove a file, delete a store; at phone width."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator

import openai
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.api.vs_support import GatedEmbedder, RecordingChunkIndex, registry_of, stores
from tests.conftest import LiveServer, make_settings
from tests.ui.conftest import DESKTOP, PHONE, Console, open_page, screenshot_on_failure, sign_in
from tests.ui.manage_support import assert_fits, assert_reachable, sdk

SOURDOUGH = (
    "Sourdough starter is a culture of wild yeast and lactobacilli kept in flour and water. "
    "Feed the starter daily, then mix it into a dough at about seventy percent hydration."
)
KUBERNETES = (
    "A Kubernetes deployment manages a set of identical pods and rolls out new versions "
    "gradually. Annotate the namespace with QV-2291 to opt it out of the nightly image "
    "garbage collection."
)


def count(page: Page, name: str) -> object:
    return page.locator(f".counts dd[data-count={name}]")


def test_create_add_files_and_search(console: Console) -> None:
    client = sdk(console)
    bread = client.files.create(file=("sourdough.txt", SOURDOUGH.encode()), purpose="assistants")
    kube = client.files.create(file=("kubernetes.txt", KUBERNETES.encode()), purpose="assistants")
    page = console.page
    console.go("/vector-stores")
    expect(page.get_by_text("No vector stores yet.")).to_be_visible()
    form = page.get_by_role("form", name="New vector store")
    form.get_by_label("Name").fill("Handbook")
    form.get_by_label("sourdough.txt").check()
    form.get_by_label("Expires after (days)").fill("7")
    form.get_by_role("button", name="Create vector store").click()

    # The store's page follows ingestion by itself: no reload here.
    expect(page).to_have_url(re.compile(r"#/vector-stores/vs_"))
    expect(page.get_by_role("heading", name="Handbook")).to_be_visible()
    expect(count(page, "completed")).to_have_text("1")
    expect(count(page, "in_progress")).to_have_text("0")
    expect(count(page, "total")).to_have_text("1")
    files = page.get_by_role("table", name="Files in this store")
    expect(files.get_by_role("row").filter(has_text="sourdough.txt")).to_contain_text("completed")
    (store,) = stores(client).list().data
    assert store.name == "Handbook"
    assert store.expires_after is not None
    assert store.expires_after.days == 7
    assert [f.id for f in stores(client).files.list(store.id)] == [bread.id]

    add = page.get_by_role("region", name="Add files")
    add.get_by_label("kubernetes.txt").check()
    add.get_by_role("button", name="Add selected files").click()
    expect(count(page, "completed")).to_have_text("2")
    expect(count(page, "total")).to_have_text("2")
    expect(files.get_by_role("row").filter(has_text="kubernetes.txt")).to_contain_text("completed")
    # A file already in the store is no longer offered.
    expect(add.get_by_label("kubernetes.txt")).to_have_count(0)

    stores(client).files.update(
        kube.id, vector_store_id=store.id, attributes={"topic": "software", "year": 2023}
    )
    search = page.get_by_role("form", name="Search")
    search.get_by_label("Query").fill("QV-2291")
    search.get_by_label("Max results").fill("2")
    search.get_by_role("button", name="Search").click()
    results = page.get_by_role("list", name="Search results").locator("> li")
    expect(results.first).to_be_visible()
    first = results.first
    expect(first.locator(".rank")).to_have_text("#1")
    expect(first.locator(".filename")).to_have_text("kubernetes.txt")
    expect(first.locator(".score")).to_have_text(re.compile(r"^score [01]\.\d{3}$"))
    expect(first.get_by_role("list", name="Attributes")).to_contain_text('topic: "software"')
    expect(first.get_by_role("list", name="Attributes")).to_contain_text("year: 2023")
    expect(first.locator(".chunk").first).to_contain_text("Annotate the namespace with QV-2291")
    found = stores(client).search(store.id, query="QV-2291", max_num_results=2)
    assert found.data[0].file_id == kube.id
    expect(first.locator(".score")).to_have_text(f"score {found.data[0].score:.3f}")


def test_upload_into_a_store_and_remove_a_file(console: Console) -> None:
    client = sdk(console)
    store = stores(client).create(name="Uploads")
    page = console.page
    console.go(f"/vector-stores/{store.id}")
    expect(page.get_by_text("No files in this store yet.")).to_be_visible()
    page.get_by_label("Upload and add files").set_input_files(
        [
            {"name": "one.txt", "mimeType": "text/plain", "buffer": SOURDOUGH.encode()},
            {"name": "two.txt", "mimeType": "text/plain", "buffer": KUBERNETES.encode()},
        ]
    )
    expect(count(page, "completed")).to_have_text("2")
    files = page.get_by_role("table", name="Files in this store")
    expect(files.locator("tbody tr")).to_have_count(2)

    page.get_by_role("button", name="Remove one.txt").click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    expect(files.locator("tbody tr")).to_have_count(2)
    page.get_by_role("button", name="Remove one.txt").click()
    page.get_by_role("dialog").get_by_role("button", name="Remove").click()
    expect(files.locator("tbody tr")).to_have_count(1)
    expect(count(page, "total")).to_have_text("1")
    names = {f.filename for f in client.files.list()}
    assert names == {"one.txt", "two.txt"}  # removed from the store, not deleted
    (left,) = stores(client).files.list(store.id).data
    assert client.files.retrieve(left.id).filename == "two.txt"
    # The removed file is offered again.
    offered = page.get_by_role("region", name="Add files").get_by_role("checkbox")
    expect(offered).to_have_accessible_name(re.compile(r"^one\.txt "))


def test_list_page_and_delete_a_store(console: Console) -> None:
    client = sdk(console)
    for name in ("s1", "s2", "s3"):
        stores(client).create(name=name)
    page = console.page
    console.go("/vector-stores?limit=2")
    table = page.get_by_role("table", name="Vector stores")
    first_cells = table.locator("tbody td:first-child")
    expect(first_cells).to_have_text(["s3", "s2"])
    page.get_by_role("button", name="Next").click()
    expect(first_cells).to_have_text(["s1"])
    page.get_by_role("button", name="Previous").click()
    expect(first_cells).to_have_text(["s3", "s2"])
    doomed = stores(client).list(limit=1).data[0]
    page.get_by_role("button", name="Delete s3").click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    expect(first_cells).to_have_text(["s3", "s2"])
    page.get_by_role("button", name="Delete s3").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(first_cells).to_have_text(["s2", "s1"])
    with pytest.raises(openai.NotFoundError):
        stores(client).retrieve(doomed.id)


@pytest.mark.parametrize("console", [PHONE], indirect=True)
def test_a_store_fits_a_phone(console: Console) -> None:
    client = sdk(console)
    uploaded = client.files.create(
        file=("a-document-with-a-long-name-for-a-phone.txt", KUBERNETES.encode()),
        purpose="assistants",
    )
    store = stores(client).create(name="Phone", file_ids=[uploaded.id])
    page = console.page
    console.go(f"/vector-stores/{store.id}")
    expect(count(page, "completed")).to_have_text("1")
    page.get_by_label("Query").fill("QV-2291")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("list", name="Search results")).to_be_visible()
    assert_fits(page)
    assert_reachable(page, page.get_by_role("button", name=re.compile("^Remove ")))
    assert_reachable(page, page.get_by_role("button", name="Search"))
    console.go("/vector-stores")
    assert_fits(page)
    assert_reachable(page, page.get_by_role("button", name="Create vector store"))


@pytest.fixture
def gated(
    browser: Browser, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[tuple[Console, GatedEmbedder]]:
    """A console on a server whose embedder waits for the test: ingestion stays in
    progress until the test opens the gate."""
    embedder = GatedEmbedder(open_gate=False)
    live = LiveServer(
        make_settings(tmp_path_factory.mktemp("ui-gated")),
        embedders=registry_of(embedder),
        chunk_index=RecordingChunkIndex(),
    ).start()
    project = "proj_" + secrets.token_hex(5)
    key = live.new_key(project)
    page, errors = open_page(browser, DESKTOP)
    try:
        sign_in(page, live.base_url.removesuffix("/v1"), key)
        yield Console(page, live, key, project, errors), embedder
        screenshot_on_failure(request, page)
    finally:
        page.context.close()
        live.stop()
        embedder.gate.set()  # after the stop: held work must not finish on the way out
    assert not errors, f"JavaScript errors on the page: {errors}"


def test_the_page_follows_ingestion_by_itself(gated: tuple[Console, GatedEmbedder]) -> None:
    console, embedder = gated
    client = sdk(console)
    first = client.files.create(file=("first.txt", SOURDOUGH.encode()), purpose="assistants")
    client.files.create(file=("second.txt", KUBERNETES.encode()), purpose="assistants")
    page = console.page
    console.go("/vector-stores")
    form = page.get_by_role("form", name="New vector store")
    form.get_by_label("first.txt").check()
    form.get_by_role("button", name="Create vector store").click()
    files = page.get_by_role("table", name="Files in this store")
    row = files.get_by_role("row").filter(has_text="first.txt")
    expect(count(page, "in_progress")).to_have_text("1")
    expect(count(page, "completed")).to_have_text("0")
    expect(row).to_contain_text("in_progress")
    assert embedder.waiting.wait(timeout=15)
    embedder.gate.set()
    # No reload: the page asks again while anything is in progress.
    expect(count(page, "completed")).to_have_text("1")
    expect(count(page, "in_progress")).to_have_text("0")
    expect(row).to_contain_text("completed")
    (store,) = stores(client).list().data
    assert stores(client).files.retrieve(first.id, vector_store_id=store.id).status == "completed"

    # A file that fails says why, and the counts say so too.
    embedder.fail = "the embedder is down"
    add = page.get_by_role("region", name="Add files")
    add.get_by_label("second.txt").check()
    add.get_by_role("button", name="Add selected files").click()
    failed = files.get_by_role("row").filter(has_text="second.txt")
    expect(failed).to_contain_text("failed")
    expect(failed).to_contain_text("the embedder is down")
    expect(count(page, "failed")).to_have_text("1")
    expect(count(page, "total")).to_have_text("2")
