"""Suggested questions: which generated questions may be suggested, the reader's check that
keeps only those it answers, and where the chat shows them."""

from __future__ import annotations

import html
import re
import time
from pathlib import Path

from markupsafe import escape

from chatbot.answer import Answer, Citation
from chatbot.app import STARTERS_TITLE, render_answer, respond, welcome
from chatbot.reader import ExtractiveReader
from chatbot.reader.enrichment import FILENAME, SentenceQuestions
from chatbot.retrieval import Retriever
from chatbot.service import ChatService
from chatbot.suggestions import Suggestion, Suggestions, SuggestionSet, build, candidates, worth_suggesting

from .conftest import OPEN


def _answer(question: str, article_id: str | None) -> Answer:
    """An answer citing ``article_id``, or a decline (``None``)."""
    if article_id is None:
        return Answer(question, "Je ne trouve pas la réponse dans les articles.", True)
    cited = Citation(1, article_id, "Titre", f"{article_id}#0", "Une phrase.", "Une phrase.", 0, 11, 0, 11)
    return Answer(question, "Une phrase. [1]", False, (cited,))


def test_only_questions_that_stand_alone_may_be_suggested() -> None:
    assert worth_suggesting("Quel est le plafond d'imposition des profits à Hong Kong ?")
    assert worth_suggesting("Quelle part de son PIB Shenzhen consacre-t-il à la recherche ?")  # names its subject
    for leaning in (
        "Quelle expérience a-t-elle dans l'agence ?",  # who is «elle»?
        "Que fait-il pour ses clients ?",
        "Que dit cette phrase sur les marques ?",
        "Quel est le Président de cette association ?",  # which one?
        "Qu'est-ce qui fait que Lyon représente ce que je constate ?",  # the author's «je»
        "Quelle proportion de les entreprises n'ont pas de page Facebook ?",  # a small model's slip
        "Quel est le sujet de l'article ?",
        "Pourquoi ?",  # too short
        "Le plafond d'imposition des profits à Hong Kong",  # not a question
        "Quelle est " + "la très longue question " * 6 + "?",  # too long for a button
    ):
        assert not worth_suggesting(leaning), leaning


def test_candidates_are_grouped_by_article_named_ones_first_near_duplicates_once() -> None:
    rows = [
        SentenceQuestions("chine", "s1", ("Quel est le taux d'imposition maximal ?", "Quel impôt à Hong Kong ?"), "m"),
        SentenceQuestions("chine", "s2", ("Quel est le taux d’imposition  maximal ?".replace("’", "'"),), "m"),
        SentenceQuestions(
            "linkedin", "s3", ("Que fait-elle pour ses clients ?", "Combien d'entreprises sont absentes ?"), "m"
        ),
        SentenceQuestions("linkedin", "s4", ("Combien d'entreprises sont-elles absentes ?",), "m"),  # the same again
    ]
    assert candidates(rows) == {
        "chine": ["Quel impôt à Hong Kong ?", "Quel est le taux d'imposition maximal ?"],
        "linkedin": ["Combien d'entreprises sont absentes ?"],
    }


def test_only_the_questions_answered_from_their_own_article_are_kept_within_the_budget() -> None:
    pools = {
        "a": ["Qa1 ?", "Qa2 ?", "Qa3 ?", "Qa4 ?"],
        "b": ["Qb1 ?", "Qb2 ?"],
    }
    answers = {"Qa1 ?": "a", "Qa2 ?": None, "Qa3 ?": "b", "Qa4 ?": "a", "Qb1 ?": "b", "Qb2 ?": "b"}
    asked: list[str] = []

    def ask(question: str) -> Answer:
        asked.append(question)
        return _answer(question, answers[question])

    built = build(pools, ask, per_article=2)
    assert {a: [s.question for s in kept] for a, kept in built.by_article.items()} == {
        "a": ["Qa1 ?", "Qa4 ?"],  # Qa2 declined, Qa3 answered from another article
        "b": ["Qb1 ?", "Qb2 ?"],
    }
    assert asked[:4] == ["Qa1 ?", "Qb1 ?", "Qa2 ?", "Qb2 ?"]  # the articles take turns
    assert (built.checked, built.declined) == (6, 2)
    asked.clear()
    bounded = build(pools, ask, per_article=2, max_checks=3)
    assert len(asked) == 3 and bounded.checked == 3


def test_starters_take_one_article_after_another_and_related_ones_skip_what_was_asked() -> None:
    built = SuggestionSet({
        "a": (Suggestion("Qa1 ?", "a"), Suggestion("Qa2 ?", "a"), Suggestion("Which one?", "a", "en")),
        "b": (Suggestion("Qb1 ?", "b"),),
        "c": (Suggestion("Qc1 ?", "c"), Suggestion("Qc2 ?", "c")),
    })  # fmt: skip
    assert [s.question for s in built.starters("fr")] == ["Qa1 ?", "Qb1 ?", "Qc1 ?", "Qa2 ?"]
    assert [s.question for s in built.related("a", "fr", ["qa1  ?"])] == ["Qa2 ?"]
    assert [s.question for s in built.related("a", "en")] == ["Which one?"]
    assert built.related("b", "en") == [] and built.related("z", "fr") == []


def _enriched(retriever: Retriever) -> ChatService:
    """The tiny corpus with generated questions: two the reader answers from their own
    article, one it answers from another, one that leans on its sentence."""
    rows = [
        SentenceQuestions("chine", "Hong Kong plafonne l’imposition à 16,5% sur les profits.",
                          ("Quel est le plafond de l’imposition des profits à Hong Kong ?",
                           "Que plafonne-t-elle à 16,5% ?"), "m"),
        SentenceQuestions("chine", "Shenzhen consacre 4,3% de son PIB à la recherche et au développement.",
                          ("Quelle part de son PIB Shenzhen consacre-t-il à la recherche ?",), "m"),
        SentenceQuestions("twitter", "Ne pas citer ses sources est une grossière erreur sur Twitter.",
                          ("Quelle part des entreprises est absente de LinkedIn ?",), "m"),
    ]  # fmt: skip
    (retriever.settings.corpus_dir / FILENAME).write_text("".join(r.to_json() + "\n" for r in rows), encoding="utf-8")
    return ChatService(retriever.settings, retriever, reader=ExtractiveReader(OPEN))


def test_the_chat_shows_starters_and_related_questions_once_they_are_built(retriever: Retriever) -> None:
    service = _enriched(retriever)
    assert welcome(service) == welcome(service) and STARTERS_TITLE not in welcome(service)  # not built yet: none
    built = service.suggestions.build()
    assert [s.question for s in built.by_article["chine"]] == [
        "Quel est le plafond de l’imposition des profits à Hong Kong ?",
        "Quelle part de son PIB Shenzhen consacre-t-il à la recherche ?",
    ]
    assert "twitter" not in built.by_article  # answered, but from the LinkedIn article
    first = welcome(service)
    assert STARTERS_TITLE in first
    assert re.findall(r'data-question="([^"]*)"', first) == [str(escape(s.question)) for s in built.starters()]
    *_, (_, messages, _) = respond(service, "Quel est le plafond de l’imposition à Hong Kong ?", [], [], 3, "hybrid")
    shown = messages[-1]["content"]
    assert "Questions liées" in shown
    related = [html.unescape(q) for q in re.findall(r'class="suggest" data-question="([^"]*)"', shown)]
    assert related == ["Quel est le plafond de l’imposition des profits à Hong Kong ?",
                       "Quelle part de son PIB Shenzhen consacre-t-il à la recherche ?"]  # fmt: skip
    again = render_answer(
        service, _answer("x", "chine"), "id", ["Quelle part de son PIB Shenzhen consacre-t-il à la recherche ?"]
    )
    assert "Shenzhen" not in again.split("Questions liées")[1]  # already asked in the conversation


def test_a_suggestion_is_escaped_in_its_button(retriever: Retriever, tmp_path: Path) -> None:
    service = _enriched(retriever)
    trap = Suggestion('Un "piège" <script>alert(1)</script> ?', "chine")
    service.suggestions._built = (retriever.generation, SuggestionSet({"chine": (trap,)}))
    shown = welcome(service)
    assert "<script>" not in shown and 'data-question="Un &#34;piège&#34; &lt;script&gt;' in shown


def test_suggestions_checked_on_an_older_index_build_are_not_shown_and_are_built_again(tmp_path: Path) -> None:
    rows = [SentenceQuestions("chine", "s1", ("Quel est le plafond d'imposition à Hong Kong ?",), "m")]
    (tmp_path / FILENAME).write_text("".join(r.to_json() + "\n" for r in rows), encoding="utf-8")
    generation = ["build-1"]
    asked: list[str] = []

    def ask(question: str) -> Answer:
        asked.append(question)
        return _answer(question, "chine")

    suggestions = Suggestions(tmp_path, ask, lambda: generation[0])
    first = suggestions.build()
    assert suggestions.ready() is first and len(asked) == 1
    generation[0] = "build-2"  # the index was rebuilt
    assert suggestions.ready() is None  # not shown: checked on the old build; rebuilt in the background
    for _ in range(100):
        if suggestions.ready() is not None:
            break
        time.sleep(0.05)
    again = suggestions.ready()
    assert again is not None and again is not first and len(asked) == 2
