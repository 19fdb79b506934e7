"""The console in a real browser: Playwright drives Debian's Chromium (by path, nothing is
downloaded) against a live server with the scripted model.

``console`` is a page signed in with a key of a fresh project, at 1280 px unless a test asks
for the phone width (``@pytest.mark.parametrize("console", [PHONE], indirect=True)``).
A failed test leaves a full-page screenshot in ``.ui-artifacts/`` at the repository root;
a JavaScript error on the page fails the test.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from tests.conftest import LiveServer, make_settings

ARTIFACTS = Path(__file__).resolve().parents[2] / ".ui-artifacts"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
# Long enough for the scripted model and ingestion; a real failure still ends quickly.
expect.set_options(timeout=15_000)


def chromium() -> str | None:
    return (
        os.environ.get("ASSISTD_CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


# Per module, not per session: while Playwright's sync driver is open its event loop counts
# as running in this thread, and later tests that call asyncio.run() (tests/unit) would fail.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    path = chromium()
    if path is None:
        reason = "no Chromium here (scripts/ensure-chromium installs Debian's); run `make test`"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    # Chromium's own sandbox needs user namespaces that root in a container lacks.
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    launched = playwright.chromium.launch(executable_path=path, args=args)
    yield launched
    launched.close()


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(make_settings(tmp_path_factory.mktemp("ui"))) as live:
        yield live


@dataclass
class Console:
    """A signed-in page and what the test needs around it."""

    page: Page
    server: LiveServer
    key: str
    project: str
    errors: list[str] = field(default_factory=list)

    @property
    def origin(self) -> str:
        return self.server.base_url.removesuffix("/v1")

    def go(self, route: str) -> None:
        """Open a console route (``"/files"``...) and wait for the page to have rendered."""
        self.page.goto(f"{self.origin}/ui/#{route}")
        expect(self.page.locator("main .loading")).to_have_count(0)


def open_page(browser: Browser, viewport: dict[str, int]) -> tuple[Page, list[str]]:
    context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    return page, errors


def screenshot_on_failure(request: pytest.FixtureRequest, page: Page) -> None:
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in request.node.nodeid)
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        print(f"screenshot of the failure: {path}")


def sign_in(page: Page, origin: str, key: str) -> None:
    page.goto(f"{origin}/ui/#/sign-in")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{origin}/ui/#/playground")


@pytest.fixture
def console(
    request: pytest.FixtureRequest, browser: Browser, ui_server: LiveServer
) -> Iterator[Console]:
    viewport = getattr(request, "param", DESKTOP)
    project = "proj_" + secrets.token_hex(5)
    key = ui_server.new_key(project)
    page, errors = open_page(browser, viewport)
    origin = ui_server.base_url.removesuffix("/v1")
    sign_in(page, origin, key)
    expect(page.locator("#project")).to_have_text(f"Project: {project}")
    yield Console(page, ui_server, key, project, errors)
    screenshot_on_failure(request, page)
    page.context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
