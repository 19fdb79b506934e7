"""The console's shell: served by assistd, sign-in, the project on every page, navigation
by keyboard, and a layout that fits a phone."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.conftest import LiveServer, make_settings
from tests.ui.conftest import DESKTOP, PHONE, Console, open_page, screenshot_on_failure

SECTIONS = ["Playground", "Assistants", "Threads", "Files", "Vector stores"]


def test_the_root_redirects_to_the_console_served_with_a_strict_policy(
    ui_server: LiveServer,
) -> None:
    origin = ui_server.base_url.removesuffix("/v1")
    root = httpx.get(f"{origin}/", follow_redirects=False)
    assert root.status_code == 307
    assert root.headers["location"] == f"{origin}/ui/"
    page = httpx.get(f"{origin}/ui/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self'" in policy
    script = httpx.get(f"{origin}/ui/js/app.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert httpx.get(f"{origin}/ui/js/missing.js").status_code == 404


def test_sign_in_with_a_key_and_out_again(browser: Browser, ui_server: LiveServer) -> None:
    origin = ui_server.base_url.removesuffix("/v1")
    key = ui_server.new_key("proj_signin")
    page, errors = open_page(browser, DESKTOP)
    try:
        page.goto(f"{origin}/ui/")
        expect(page).to_have_url(f"{origin}/ui/#/sign-in")
        page.get_by_label("API key").fill("sk-wrong")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#notice")).to_contain_text("not valid")
        page.get_by_label("API key").fill(key)
        page.get_by_label("API key").press("Enter")
        expect(page).to_have_url(f"{origin}/ui/#/playground")
        expect(page.locator("#project")).to_have_text("Project: proj_signin")
        # The key is kept for the tab: a reload stays signed in.
        page.reload()
        expect(page.locator("#project")).to_have_text("Project: proj_signin")
        page.get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(f"{origin}/ui/#/sign-in")
        page.goto(f"{origin}/ui/#/files")
        expect(page).to_have_url(f"{origin}/ui/#/sign-in")
    finally:
        page.context.close()
    assert not errors


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(make_settings(tmp_path_factory.mktemp("ui-open"), api_keys="")) as live:
        yield live


def test_no_key_is_needed_in_open_mode(
    browser: Browser, open_server: LiveServer, request: pytest.FixtureRequest
) -> None:
    page, errors = open_page(browser, DESKTOP)
    origin = open_server.base_url.removesuffix("/v1")
    page.goto(f"{origin}/ui/")
    expect(page).to_have_url(f"{origin}/ui/#/playground")
    expect(page.locator("#project")).to_have_text("Project: default")
    expect(page.get_by_role("button", name="Sign out")).to_be_hidden()
    screenshot_on_failure(request, page)
    page.context.close()
    assert not errors


def test_every_section_by_keyboard_alone(console: Console) -> None:
    page = console.page
    # Start from the top of a fresh page: after signing in, Tab would go on from where the
    # sign-in form was, into the playground that replaced it.
    page.reload()
    expect(page.get_by_role("heading", name="Playground")).to_be_visible()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    for name in SECTIONS[1:]:
        link = page.get_by_role("navigation").get_by_role("link", name=name)
        # Tab until the link has focus, then follow it with Enter.
        for _ in range(12):
            if link.evaluate("node => node === document.activeElement"):
                break
            page.keyboard.press("Tab")
        expect(link).to_be_focused()
        page.keyboard.press("Enter")
        expect(link).to_have_attribute("aria-current", "page")
        expect(page.locator("#project")).to_have_text(f"Project: {console.project}")
        page.keyboard.press("Shift+Tab")  # back into the header for the next link


@pytest.mark.parametrize("console", [PHONE], indirect=True)
def test_the_shell_fits_a_phone(console: Console) -> None:
    page = console.page
    for route in ("/playground", "/assistants", "/threads", "/files", "/vector-stores"):
        console.go(route)
        expect(page.locator("#project")).to_be_visible()
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{route} is {overflow} px wider than the screen"
