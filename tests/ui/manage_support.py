"""Helpers for the managing pages' tests: the SDK on the console's project, reaching a
control by keyboard, and the phone-width checks."""

from __future__ import annotations

import openai
from playwright.sync_api import Locator, Page, expect

from tests.ui.conftest import Console


def sdk(console: Console) -> openai.OpenAI:
    """The official SDK with the console's key: setup data and checks of what was stored."""
    return openai.OpenAI(base_url=console.server.base_url, api_key=console.key)


def tab_to(page: Page, target: Locator, *, limit: int = 80, back: bool = False) -> None:
    """Press Tab (or Shift+Tab) until ``target`` has the focus."""
    for _ in range(limit):
        if target.evaluate("node => node === document.activeElement"):
            break
        page.keyboard.press("Shift+Tab" if back else "Tab")
    expect(target).to_be_focused()


def assert_fits(page: Page) -> None:
    """Nothing is wider than the screen."""
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow} px wider than the screen"


def assert_reachable(page: Page, control: Locator) -> None:
    """``control`` can be scrolled to and lies within the screen's width."""
    control.scroll_into_view_if_needed()
    expect(control).to_be_visible()
    box = control.bounding_box()
    assert box is not None
    width = page.evaluate("window.innerWidth")
    assert box["x"] >= 0, box
    assert box["x"] + box["width"] <= width, (box, width)
