"""Follow-ups: only the question asked is held to the length limit, never the history."""

from __future__ import annotations

import pytest

from chatbot.conversation import Turn, asked_before, exchanges, fitting_context
from chatbot.errors import QuestionTooLongError
from chatbot.retrieval import Retriever, search_with_history


class Spy(Retriever):
    """The fixture's retriever, keeping every text it was asked to search."""

    searched: list[str]

    def search(self, question: str, **kwargs):  # type: ignore[no-untyped-def, override]
        self.searched.append(question)
        return super().search(question, **kwargs)


@pytest.fixture
def spy(retriever: Retriever) -> Spy:
    spy = Spy(retriever.settings, retriever.embedder, retriever.index)
    spy.searched = []
    return spy


def test_a_follow_up_after_a_question_too_long_to_search_is_searched(spy: Spy) -> None:
    refused = "Hong Kong " * 300  # 3,000 characters: refused when it was asked
    hits = search_with_history(spy, "Et la TVA ?", [refused])
    assert hits and hits[0].chunk.article_id == "chine"
    assert max(len(text) for text in spy.searched) <= spy.settings.max_question_chars


def test_a_long_valid_question_then_a_medium_one_are_both_searched(spy: Spy) -> None:
    limit = spy.settings.max_question_chars
    long_one = ("Quelle imposition à Hong Kong ? " * 60)[:1500]
    medium = ("Et la TVA à Hong Kong, existe-t-elle ? " * 20)[:600]
    assert len(long_one) + len(medium) > limit
    assert search_with_history(spy, medium, [long_one])
    contextual = [text for text in spy.searched if text != medium]
    assert contextual and all(len(text) <= limit for text in contextual)
    assert all(text.endswith(medium) for text in contextual)  # the question itself is never cut


def test_the_question_itself_is_still_held_to_the_limit_whatever_the_history(spy: Spy) -> None:
    with pytest.raises(QuestionTooLongError):
        search_with_history(spy, "mot " * 600, ["Quelle imposition à Hong Kong ?"])
    with pytest.raises(QuestionTooLongError):
        search_with_history(spy, "mot " * 600, [])


def test_the_context_keeps_the_last_whole_words_that_fit() -> None:
    assert fitting_context("un  deux\ntrois", "q ?", 100) == "un deux trois"
    assert fitting_context("alpha beta gamma delta", "q ?", 16) == "gamma delta"  # 12 left: no half word
    assert fitting_context("alpha beta", "x" * 20, 20) == ""
    assert len(fitting_context("x" * 50, "q ?", 20)) == 16  # one long word: cut, within the budget


def test_refused_and_unfinished_turns_are_no_context() -> None:
    turns = [
        Turn("Première ?", "Réponse [1]", "a1"),
        Turn("mot " * 900, refused=True),
        Turn("Arrêtée ?"),  # stopped before its answer was shown
        Turn("Seconde ?", "Je ne trouve pas la réponse dans les articles.", "a2"),
    ]
    assert asked_before(turns) == ["Première ?", "Seconde ?"]
    assert exchanges(turns) == [
        ("Première ?", "Réponse [1]"),
        ("Seconde ?", "Je ne trouve pas la réponse dans les articles."),
    ]
