"""The chat's HTML, built without a browser: escaping, markers, sources, progress, feedback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatbot.answer import AnswerSettings, Progress, answer
from chatbot.app import (
    ChatService,
    answer_text,
    copy_text,
    render_answer,
    render_article,
    render_progress,
)
from chatbot.feedback import Feedback, FeedbackLog, draft_questions
from chatbot.retrieval import Retriever

from .conftest import OPEN

QUESTION = "Quel est le plafond de l'imposition sur les profits à Hong Kong ?"


@pytest.fixture
def service(retriever: Retriever, tmp_path: Path) -> ChatService:
    return ChatService(retriever.settings, retriever, feedback=FeedbackLog(tmp_path / "feedback.jsonl"))


def test_an_answer_shows_marker_buttons_the_first_source_open_and_its_quote_marked(
    service: ChatService, retriever: Retriever
) -> None:
    result = answer(retriever, QUESTION, settings=OPEN)
    shown = render_answer(service, result, "abc123")
    assert '<div class="answer" data-answer="abc123"' in shown
    assert '<button type="button" class="cite" data-n="1"' in shown
    assert shown.count("<details") == len(result.sources()) and shown.count(" open>") == 1
    first = result.citations[0]
    assert f"<mark>{first.quote}</mark>" in shown
    assert answer_text(shown) == result.text  # what a client of the page reads, markers included
    assert f'data-article="{first.article_id}"' in shown


def test_text_from_articles_and_questions_is_escaped(service: ChatService, retriever: Retriever) -> None:
    from dataclasses import replace

    result = answer(retriever, QUESTION, settings=OPEN)
    hostile = replace(result, text='<img src=x onerror="alert(1)"> [1]', note="<script>x</script>")
    shown = render_answer(service, hostile, "abc")
    assert "<img" not in shown and "<script>" not in shown
    assert '<p class="answer-text" lang="fr">&lt;img src=x onerror=&#34;alert(1)&#34;&gt; <button' in shown


def test_an_abstention_offers_the_closest_passage_without_presenting_it_as_the_answer(
    service: ChatService, retriever: Retriever
) -> None:
    question = "Quelle est la recette de la tarte aux pommes ?"
    result = answer(retriever, question, settings=AnswerSettings(small_talk=False))
    assert result.abstained and result.evidence
    shown = render_answer(service, result, "abc")
    assert "le passage le plus proche" in shown and 'class="source closest"' in shown
    assert 'class="cite"' not in shown and f"<mark>{result.evidence[0].text}</mark>" in shown


def test_an_english_question_gets_english_framing(service: ChatService, retriever: Retriever) -> None:
    result = answer(retriever, "What is the profit tax cap in Hong Kong?", settings=OPEN)
    shown = render_answer(service, result, "abc")
    assert result.lang == "en"
    assert "The articles are in French" in shown and "Read in the article" in shown and "Copy the answer" in shown


def test_progress_says_what_is_happening_and_how_long_a_wait_will_be() -> None:
    assert "Recherche dans les articles" in render_progress(Progress("search"), "fr")
    assert "Lecture de 5 passages" in render_progress(Progress("read", passages=5), "fr")
    assert "3ᵉ dans la file (environ 17 s)" in render_progress(Progress("queue", position=3, expected_s=16.6), "fr")
    assert "you are next" in render_progress(Progress("queue", position=1, expected_s=4), "en")
    partial = render_progress(Progress("write", passages=2), "fr", "<b>L'imposition est plafonnée")
    assert "Rédaction de la réponse" in partial and "3 mots rédigés" in partial
    assert "imposition" not in partial  # a model's text is shown only once checked


def test_the_article_view_marks_the_quoted_spans_and_skips_those_that_no_longer_fit(
    service: ChatService, retriever: Retriever
) -> None:
    result = answer(retriever, QUESTION, settings=OPEN)
    first = result.citations[0]
    start, end = first.chunk_start + first.quote_start, first.chunk_start + first.quote_end
    shown = render_article(service, first.article_id, [(start, end), (10**6, 10**6 + 5)])
    assert shown.count("<mark>") == 1 and f"<mark>{first.quote}</mark>" in shown
    assert "n’est plus dans le corpus" in render_article(service, "missing")


def test_copy_text_gives_the_answer_and_its_quotes(retriever: Retriever) -> None:
    result = answer(retriever, QUESTION, settings=OPEN)
    copied = copy_text(result)
    assert copied.startswith(result.text) and f"[1] {result.citations[0].article} : « " in copied


def test_feedback_is_appended_and_down_votes_become_draft_questions(service: ChatService, retriever: Retriever) -> None:
    result = answer(retriever, QUESTION, settings=OPEN)
    first = service.remember(QUESTION, [], result)
    second = service.remember("Et la TVA ?", [QUESTION], result)
    service.record_feedback(first, "up")
    service.record_feedback(second, "down")
    service.record_feedback(second, "", "La TVA n'est pas citée.")
    with pytest.raises(KeyError):
        service.record_feedback("unknown", "up")
    with pytest.raises(ValueError):
        service.record_feedback(first, "meh")
    service.feedback.path.open("a", encoding="utf-8").write("not json\n")  # a damaged line is skipped
    entries = list(service.feedback.read())
    assert [e.vote for e in entries] == ["up", "down", ""]
    assert entries[1].history == (QUESTION,) and entries[1].sources[0]["quote"] == result.citations[0].quote
    drafts = draft_questions(entries)
    assert drafts == [
        {
            "id": f"feedback-{second}",
            "question": "Et la TVA ?",
            "history": [QUESTION],
            "evidence": [],
            "lang": "fr",
            "kind": "feedback",
            "note": "La TVA n'est pas citée.",
        }
    ]
    json.dumps(drafts)  # the evaluation format is JSON


def test_feedback_refuses_an_unknown_vote() -> None:
    with pytest.raises(ValueError, match="'up', 'down'"):
        Feedback("a", "maybe", "q", (), "a", ())
