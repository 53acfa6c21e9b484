"""On the real corpus: every suggested question is answered by the default reader; in a real
Chromium, a suggestion clicked is asked and answered, and the report page of questions the
service really answered passes axe at a desktop and a phone width, within the screen's width.

``CHATBOT_SCREENSHOTS=<folder>`` also saves the report's screenshot there (``report.png``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from chatbot.evaluation import load_questions
from chatbot.feedback import FeedbackLog
from chatbot.questionlog import QuestionLog, read_log
from chatbot.report import build_report
from chatbot.report_page import render_report
from chatbot.retrieval import Retriever
from chatbot.service import ChatService

from .conftest import REPO
from .test_browser import WIDTHS, browser  # noqa: F401  (the same Chromium)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def suggested(chat_service: ChatService) -> ChatService:
    built = chat_service.suggestions.build()
    print(f"\n{len(built)} suggestions kept of {built.checked} checked ({built.declined} declined) "
          f"in {built.seconds:.1f} s, over {len(built.by_article)} articles")  # fmt: skip
    return chat_service


def test_every_suggestion_is_answered_alone_and_after_another_question_of_its_article(suggested: ChatService) -> None:
    built = suggested.suggestions.ready()
    assert built is not None and len(built.by_article) >= 4 and len(built.starters()) == 4
    for article, kept in built.by_article.items():
        assert 1 <= len(kept) <= 4
        for i, suggestion in enumerate(kept):
            alone = suggested.ask(suggestion.question)
            assert not alone.abstained, (suggestion.question, alone.reason)
            assert any(c.article_id == article for c in alone.citations)
            before = kept[i - 1].question if len(kept) > 1 else built.starters()[0].question
            followed = suggested.ask(suggestion.question, [before])  # as a click under an answer asks it
            assert not followed.abstained, (suggestion.question, before, followed.reason)


@pytest.mark.browser
def test_a_suggestion_clicked_is_asked_in_the_conversation_and_answered(
    browser: Any,  # noqa: F811
    chat_url: str,
    suggested: ChatService,
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(chat_url)
        starter = page.locator("#conversation .welcome button.suggest").first
        starter.wait_for(timeout=30_000)
        question = starter.get_attribute("data-question") or ""
        starter.click()
        answer = page.locator("#conversation .answer[data-answer]").last
        answer.wait_for(timeout=60_000)
        assert answer.get_attribute("data-abstained") == "false"
        assert answer.locator("button.cite").count() >= 1
        users = page.locator("#conversation .user-row")
        assert users.count() == 1 and question in users.last.inner_text()  # asked as the reader's message
        related = answer.locator(".related button.suggest")
        assert related.count() >= 1 and "Questions liées" in answer.locator(".related").inner_text()
        follow_up = related.first.get_attribute("data-question") or ""
        related.first.click()
        page.wait_for_function("document.querySelectorAll('#conversation .answer[data-answer]').length >= 2",
                               timeout=60_000)  # fmt: skip
        second = page.locator("#conversation .answer[data-answer]").last
        assert second.get_attribute("data-abstained") == "false"
        assert users.count() == 2 and follow_up in users.last.inner_text()  # in the same conversation
    finally:
        page.close()


@pytest.fixture(scope="module")
def report_page(real_retriever: Retriever, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of a held-out set's 79 questions (answerable, follow-ups, unanswerable, small
    talk, off topic) really answered by the service, spread over two weeks (a clock set back),
    with a few votes."""
    folder = tmp_path_factory.mktemp("report")
    day = [datetime.now(UTC)]
    log = QuestionLog(folder / "questions.jsonl", clock=lambda: day[0])
    service = ChatService(real_retriever.settings, real_retriever, feedback=FeedbackLog(folder / "feedback.jsonl"),
                          questions=log)  # fmt: skip
    for n, q in enumerate(load_questions(REPO / "evaluation" / "session6_holdout.jsonl")):
        day[0] = datetime.now(UTC) - timedelta(days=13 - n % 14, hours=n % 5)
        started = time.monotonic()
        result = service.answer(q.question, q.history)
        answer_id = service.remember(q.question, list(q.history), result, client=f"ip:10.0.0.{n % 23}",
                                     started=started, via="chat" if n % 3 else "api")  # fmt: skip
        if n % 5 == 1:
            service.record_feedback(answer_id, "down" if result.abstained or n % 10 == 1 else "up")
    report = build_report(read_log(log.path))
    assert report.gaps and report.articles and report.down_votes and report.figures["follow_ups"]
    page = folder / "report.html"
    page.write_text(render_report(report), encoding="utf-8")
    return page


@pytest.fixture(params=list(WIDTHS))
def report_view(request: pytest.FixtureRequest, browser: Any, report_page: Path) -> Iterator[Any]:  # noqa: F811
    width, height = WIDTHS[request.param]
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(report_page.as_uri())
    page.screen = request.param
    yield page
    page.close()


@pytest.mark.browser
def test_the_report_page_passes_axe_and_fits_the_screen(report_view: Any) -> None:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(report_view)
    bad = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical", "moderate")]
    assert bad == [], [(v["id"], v["help"], [n["target"] for n in v["nodes"]][:3]) for v in bad]
    width = report_view.evaluate("document.documentElement.scrollWidth")
    assert width <= report_view.viewport_size["width"]  # nothing wider than a phone
    plots = report_view.locator("figure svg[role=img]")
    assert plots.count() == 2
    box = plots.first.bounding_box()
    assert box is not None and box["width"] <= report_view.viewport_size["width"]
    if os.environ.get("CHATBOT_SCREENSHOTS") and report_view.screen == "desktop":
        folder = Path(os.environ["CHATBOT_SCREENSHOTS"])
        folder.mkdir(parents=True, exist_ok=True)
        report_view.set_viewport_size({"width": 1000, "height": 1500})
        report_view.screenshot(path=str(folder / "report.png"))
