"""End to end in a real Chromium (Debian's package), driven by Playwright, at a desktop width
(1280 px) and a phone width (390 px).

``CHATBOT_SCREENSHOTS=<folder>`` also saves a screenshot per width there (``make screenshots``).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chatbot.app import launch
from chatbot.model_queue import Waiting
from chatbot.reader import ExtractiveReader
from chatbot.reader.writer import ModelReader
from chatbot.retrieval import Retriever
from chatbot.service import ChatService

pytestmark = [pytest.mark.integration, pytest.mark.browser]

WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}
QUESTION = "Quel est le plafond d’imposition des profits à Hong Kong ?"
LAST_ANSWER = "[...document.querySelectorAll('#conversation .answer')].pop()"

# Records, from the moment it is installed, when the conversation first shows the work has
# started, and when the finished answer (its copy button) appears.
WATCH = """() => {
  window.__seen = {start: performance.now(), progress: null, answer: null, statuses: []};
  new MutationObserver(() => {
    const box = document.querySelector('#conversation');
    const shown = [...document.querySelectorAll('#chat-status:not([hidden]), #conversation .progress')];
    if (shown.length && window.__seen.progress === null) window.__seen.progress = performance.now();
    for (const status of shown) {
      if (!window.__seen.statuses.includes(status.textContent)) window.__seen.statuses.push(status.textContent);
    }
    const done = box?.querySelectorAll('.copy-answer').length || 0;
    if (done > (window.__seen.before || 0) && window.__seen.answer === null) window.__seen.answer = performance.now();
  }).observe(document.body, {subtree: true, childList: true, characterData: true, attributes: true});
  window.__seen.before = document.querySelectorAll('#conversation .copy-answer').length;
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
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
        yield browser
        browser.close()


@pytest.fixture(scope="module", params=list(WIDTHS))
def page(request: pytest.FixtureRequest, browser: Any, chat_url: str) -> Iterator[Any]:
    width, height = WIDTHS[request.param]
    context = browser.new_context(viewport={"width": width, "height": height})
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.goto(chat_url)
    page.screen = request.param  # type: ignore[attr-defined]
    yield page
    context.close()


def _ask(page: Any, question: str) -> dict[str, Any]:
    """Ask in the question box, wait for the finished answer; the times seen by the page."""
    box = page.locator("#question textarea")
    box.fill(question)
    page.evaluate(WATCH)  # from Enter: typing is the user's time
    box.press("Enter")
    page.wait_for_function("window.__seen.answer !== null", timeout=60_000)
    seen: dict[str, Any] = page.evaluate("window.__seen")
    print(
        f"\n[{page.screen}] Enter → first progress {seen['progress'] - seen['start']:.0f} ms, "
        f"→ answer {seen['answer'] - seen['start']:.0f} ms; statuses: {seen['statuses']}"
    )
    return seen


def _last_answer(page: Any) -> Any:
    return page.locator("#conversation .answer").last


def test_progress_then_the_answer_with_its_first_source_open_and_quote_marked(page: Any) -> None:
    seen = _ask(page, QUESTION)
    assert seen["progress"] is not None and seen["progress"] <= seen["answer"]
    assert any("Recherche dans les articles" in s for s in seen["statuses"])
    answer = _last_answer(page)
    assert "16,5%" in answer.locator(".answer-text").inner_text()
    sources = answer.locator("details.source")
    assert sources.count() >= 1
    assert sources.first.get_attribute("open") is not None
    assert all(sources.nth(i).get_attribute("open") is None for i in range(1, sources.count()))
    summary = sources.first.locator("summary").inner_text()
    assert summary.startswith("[1] La croissance de l’entreprenariat en Chine") and "passage" in summary
    assert "16,5% sur les profits" in " ".join(sources.first.locator("mark").all_inner_texts())
    if os.environ.get("CHATBOT_SCREENSHOTS"):
        folder = Path(os.environ["CHATBOT_SCREENSHOTS"])
        folder.mkdir(parents=True, exist_ok=True)
        answer.locator("button.open-article").first.click()
        page.locator("#article-view mark").first.wait_for(timeout=10_000)
        page.wait_for_timeout(500)
        if page.screen == "phone":
            answer.scroll_into_view_if_needed()
        page.screenshot(path=str(folder / f"chat-{page.screen}.png"))


def test_a_marker_opens_and_shows_its_source(page: Any) -> None:
    answer = _last_answer(page)
    markers = answer.locator("button.cite")
    n = markers.last.get_attribute("data-n")
    markers.last.click()
    source = answer.locator(f'details.source[data-n="{n}"]')
    page.wait_for_function(f"{LAST_ANSWER}.querySelector('details.source[data-n=\"{n}\"]').open", timeout=5_000)
    assert source.get_attribute("open") is not None
    source.locator("summary").wait_for(state="visible")


def test_the_article_view_shows_the_passage_highlighted(page: Any) -> None:
    answer = _last_answer(page)
    first = answer.locator("details.source").first
    title = first.locator("summary").inner_text().split("] ", 1)[1].split(" — ")[0]
    quote = first.locator("mark").first.inner_text()
    first.locator("button.open-article").click()
    view = page.locator("#article-view")
    view.locator("mark").first.wait_for(timeout=10_000)
    assert view.locator("h2").inner_text() == title
    assert quote in " ".join(view.locator("mark").all_inner_texts())
    box = view.locator(".article-scroll")
    scrolled = box.evaluate("""(box) => { const m = box.querySelector('mark');
        const a = box.getBoundingClientRect(), b = m.getBoundingClientRect();
        return b.top >= a.top - 1 && b.top < a.bottom; }""")
    assert scrolled, "the marked passage is not scrolled into the article view"


def test_an_unanswered_question_offers_the_closest_passage(page: Any) -> None:
    _ask(page, "Combien de salariés emploie Kaporal Group ?")
    answer = _last_answer(page)
    assert answer.locator(".answer-text").inner_text() == "Je ne trouve pas la réponse dans les articles."
    assert "le passage le plus proche" in answer.locator(".closest-intro").inner_text()
    assert answer.locator("details.closest mark").count() == 1 and answer.locator("button.cite").count() == 0


def test_a_thumbs_up_is_written_to_the_feedback_file(page: Any, chat_service: ChatService) -> None:
    before = len(list(chat_service.feedback.read()))
    _ask(page, "Quelle part des PME a un site web en France ?")
    page.locator("#conversation button[aria-label='J’aime']").last.click()  # labelled in French
    page.get_by_text("Votre avis est enregistré").wait_for(timeout=10_000)
    page.locator("#conversation button[aria-label='Vous aimez']").last.wait_for(timeout=10_000)  # pressed
    english = "#conversation button[aria-label='Like'], #conversation button[aria-label='Liked']"
    assert page.locator(english).count() == 0
    entries = list(chat_service.feedback.read())
    assert len(entries) == before + 1
    assert entries[-1].vote == "up" and entries[-1].question == "Quelle part des PME a un site web en France ?"
    assert entries[-1].sources and "66%" in entries[-1].answer
    page.locator("#comment textarea").fill("Très clair.")
    page.locator("#send-comment").click()
    page.wait_for_function(
        "!document.querySelector('#comment-row') || !document.querySelector('#comment-row').offsetParent"
    )
    assert list(chat_service.feedback.read())[-1].comment == "Très clair."


def test_copy_puts_the_answer_and_its_references_on_the_clipboard(page: Any) -> None:
    answer = _last_answer(page)
    answer.locator("button.copy-answer").click()
    page.wait_for_function(f"{LAST_ANSWER}.querySelector('.copy-answer').dataset.copied === '1'")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith(answer.locator(".answer-text").inner_text().split(" [")[0][:40])
    assert "[1] L’association digitale" in copied and "« " in copied


def test_keyboard_only(page: Any) -> None:
    page.locator("#clear").click()
    page.wait_for_function("!document.querySelector('#conversation .answer')")
    page.locator("body").focus()
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement?.closest('#question') !== null"):
            break
    else:
        pytest.fail("Tab never reaches the question box")
    page.keyboard.type("Qu'est-ce que HAX ?")
    page.evaluate(WATCH)
    page.keyboard.press("Enter")
    page.wait_for_function("window.__seen.answer !== null", timeout=60_000)
    marker = _last_answer(page).locator("button.cite").first
    marker.focus()
    page.keyboard.press("Enter")  # a marker is a button: Enter opens its source
    assert _last_answer(page).locator('details.source[data-n="1"]').get_attribute("open") is not None


def test_the_page_passes_an_accessibility_check(page: Any) -> None:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    bad = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert bad == [], [(v["id"], v["help"], [n["target"] for n in v["nodes"]][:3]) for v in bad]


def test_html_in_a_question_is_shown_as_text_and_never_runs(page: Any) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    payload = "<img src=x onerror=alert(1)>"
    _ask(page, payload)
    page.locator("#conversation").get_by_text(payload).first.wait_for(timeout=30_000)
    page.wait_for_timeout(1000)
    assert dialogs == []
    assert page.locator("#conversation img[src='x']").count() == 0


class SlowWriter:
    """A model that waits in line, then writes a word every 0.3 s."""

    label = "un modèle lent"

    def write(self, messages: list[dict[str, str]], max_tokens: int) -> Iterator[str | Waiting]:
        yield Waiting(2, 12.0)
        time.sleep(0.6)
        for word in ["L'imposition", "est", "plafonnée", "à", "16,5%", "sur", "les", "profits", "[1]."] * 5:
            time.sleep(0.3)
            yield word + " "


def test_a_long_wait_says_so_and_escape_stops_the_answer(browser: Any, real_retriever: Retriever) -> None:
    service = ChatService(real_retriever.settings, real_retriever, reader=ModelReader(SlowWriter(), ExtractiveReader()))
    demo, url = launch(service, block=False, quiet=True)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url)
        box = page.locator("#question textarea")
        box.fill(QUESTION)
        box.press("Enter")
        page.get_by_text("En attente du modèle : 2ᵉ dans la file (environ 12 s)").wait_for(timeout=20_000)
        writing = page.locator("#conversation .progress-detail").last
        writing.wait_for(timeout=20_000)  # how far the model got, never its unchecked words
        assert page.locator("#conversation .answer-text").count() == 0
        page.keyboard.press("Escape")
        page.wait_for_timeout(400)
        shown = writing.inner_text()
        page.wait_for_timeout(1500)
        assert writing.inner_text() == shown  # stopped
        assert page.locator("#conversation .copy-answer").count() == 0  # never finished
        page.close()
    finally:
        demo.close()
