"""End to end in a real Chromium (Debian's package), driven by Playwright."""

from __future__ import annotations

import shutil

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.browser]


@pytest.fixture(scope="module")
def page(chat_url: str):  # type: ignore[no-untyped-def]
    playwright_api = pytest.importorskip("playwright.sync_api")
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("Debian's chromium is not installed: run `make browser` (make test does it).")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=executable,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        page = browser.new_page()
        page.goto(chat_url)
        yield page
        browser.close()


def _ask(page, question: str) -> None:  # type: ignore[no-untyped-def]
    box = page.locator("#question textarea")
    box.fill(question)
    box.press("Enter")


def test_question_answer_and_sources(page) -> None:  # type: ignore[no-untyped-def]
    _ask(page, "Quel est le plafond d’imposition des profits à Hong Kong ?")
    conversation = page.locator("#conversation")
    conversation.get_by_text("[1]").first.wait_for(timeout=60_000)
    conversation.get_by_text("Sources", exact=True).first.click()
    conversation.get_by_text("La croissance de l’entreprenariat en Chine", exact=False).first.wait_for(timeout=10_000)
    assert "▶ " in conversation.inner_text()


def test_html_in_a_question_is_shown_as_text_and_never_runs(page) -> None:  # type: ignore[no-untyped-def]
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.locator("#clear").click()
    # Clearing also empties the question box: wait for it, or it may wipe the text typed next.
    page.wait_for_function("!document.querySelector('#conversation .message')")
    payload = "<img src=x onerror=alert(1)>"
    _ask(page, payload)
    page.locator("#conversation").get_by_text(payload).first.wait_for(timeout=30_000)
    page.wait_for_timeout(1500)
    assert dialogs == []
    assert page.locator("#conversation img[src='x']").count() == 0
