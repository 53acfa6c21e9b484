"""The reader's decision rules (:func:`chatbot.reader.extractive.decide`) on readings built by hand: one
passage of three sentences, scores and cosines chosen here, no index and no embedder.

Most tests elsewhere switch the decline model off (``OPEN``); these give each rule of
``decide`` the input that triggers it, and a neighbour that does not. Only the decision and
the first quote are checked: which other sentences join it is not a rule.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from chatbot import analysis
from chatbot.answer import DEFAULT_ANSWER_SETTINGS, NOT_FOUND, Answer, AnswerSettings, split_sentences
from chatbot.chunking import Chunk
from chatbot.question import analyze_question, fold
from chatbot.reader.extractive import FEATURES, Candidate, Reading, decide, question_features
from chatbot.retrieval import Hit

PASSAGE = (
    "Hong Kong plafonne l’imposition à 16,5% sur les profits des entreprises. "
    "Il n’existe pas de TVA à Hong Kong, ni de taxe sur les plus-values. "
    "Shenzhen consacre une grande part de son budget à la recherche et à l’innovation."
)
TAX, VAT, SHENZHEN = 0, 1, 2  # the passage's sentences
CHUNK = Chunk("chine:3", "chine", "L’entrepreneuriat en Chine", 3, 400, 400 + len(PASSAGE), PASSAGE)
THRESHOLD = 0.35


def _reading(
    question: str,
    scores: Sequence[float] = (1.10, 1.00, 0.90),
    *,
    history: Sequence[str] = (),
    lang: str = "fr",
    support: float = 0.90,
    literal: Sequence[bool] | None = None,
    sentences: Sequence[int] | None = None,
) -> Reading:
    """``question`` read against the passage: sentence ``i`` scored ``scores[i]`` (its cosine
    the score minus 0.2), the features computed from these candidates as the reader does."""
    hit = Hit(CHUNK, 0.9, 1)
    split = split_sentences(hit, 1)
    assert len(split) == 3
    kept = range(len(split)) if sentences is None else sentences
    candidates = tuple(
        Candidate(
            replace(split[i], score=scores[i]),
            scores[i] - 0.2,
            frozenset(analysis.analyze(split[i].text)),
            fold(split[i].text),
            fold(split[i].text),
        )
        for i in kept
    )
    asked = analyze_question(question, history)
    marks = tuple(literal) if literal is not None else (False,) * len(candidates)
    features = question_features(asked, lang, candidates, fold(PASSAGE), support, marks)
    return Reading(question, lang, asked, (hit,), candidates, features, support, marks)


def _declined(result: Answer, reason: str) -> None:
    assert result.abstained
    assert re.fullmatch(reason, result.reason), result.reason
    assert result.text == NOT_FOUND[result.lang] and result.citations == ()


def _answered(result: Answer, first: int) -> None:
    assert not result.abstained and result.reason == ""
    quote = result.citations[0]
    assert quote.n == 1 and quote.quote == split_sentences(Hit(CHUNK, 0.9, 1), 1)[first].text
    assert quote.chunk_start == CHUNK.start and PASSAGE[quote.quote_start : quote.quote_end] == quote.quote
    assert result.text.startswith(" ".join(quote.quote.split()) + " [1]")


ANSWERED = "Quel est le plafond de l’imposition sur les profits à Hong Kong ?"


def test_a_question_asked_of_the_passage_that_holds_it_is_answered_with_its_best_sentence() -> None:
    reading = _reading(ANSWERED)
    assert reading.feature("type_focus_any") == 1.0 and reading.feature("focus_predicate_any") > 0
    _answered(decide(reading, 0.9, DEFAULT_ANSWER_SETTINGS, THRESHOLD), TAX)
    # The best score leads, wherever its sentence is in the passage.
    _answered(decide(_reading(ANSWERED, (0.9, 1.2, 1.0)), 0.9, DEFAULT_ANSWER_SETTINGS, THRESHOLD), VAT)


def test_passages_without_a_sentence_to_read_are_declined() -> None:
    reading = _reading(ANSWERED, sentences=())
    assert not reading.features.any() and len(reading.features) == len(FEATURES)
    _declined(
        decide(reading, 0.9, DEFAULT_ANSWER_SETTINGS, THRESHOLD), r"no sentence to read in the retrieved passages"
    )


def test_a_passage_farther_than_the_languages_min_support_is_declined() -> None:
    floor = AnswerSettings(min_support=(("fr", 0.8),))
    _declined(
        decide(_reading(ANSWERED, support=0.79), 0.9, floor, THRESHOLD),
        r"no passage is close to the question \(cosine 0\.790\)",
    )
    _answered(decide(_reading(ANSWERED, support=0.80), 0.9, floor, THRESHOLD), TAX)
    english = _reading("What is the profit tax cap in Hong Kong?", lang="en", support=0.79)
    assert not decide(english, 0.9, floor, THRESHOLD).abstained  # no floor for English


def test_a_typed_question_about_a_named_thing_no_sentence_of_that_shape_names_is_declined() -> None:
    # Shenzhen's sentence has no year, and no sentence with a number or a year names Shenzhen.
    reading = _reading("En quelle année Shenzhen a-t-elle créé son fonds ?", (0.9, 0.8, 1.1))
    assert reading.analysis.asked == "date" and reading.analysis.focus == ("shenzhen",)
    assert reading.feature("type_focus_any") == 0.0
    _declined(decide(reading, 0.9, DEFAULT_ANSWER_SETTINGS, THRESHOLD), r"no sentence about shenzhen gives a date")
    # The same shape asked about the thing a sentence with a number names is read on.
    hong_kong = _reading("Quel est le taux d’imposition des profits à Hong Kong ?")
    assert hong_kong.analysis.asked == "number" and hong_kong.feature("type_focus_any") == 1.0
    _answered(decide(hong_kong, 0.9, DEFAULT_ANSWER_SETTINGS, THRESHOLD), TAX)


def test_a_probability_under_the_threshold_declines() -> None:
    reading = _reading(ANSWERED)
    _declined(
        decide(reading, 0.34, DEFAULT_ANSWER_SETTINGS, THRESHOLD),
        r"the passages do not answer it \(answerable 0\.34 < 0\.35\)",
    )
    _answered(decide(reading, 0.35, DEFAULT_ANSWER_SETTINGS, THRESHOLD), TAX)


def test_a_keyword_query_with_a_literal_match_is_shown_that_sentence_whatever_the_probability() -> None:
    literal = _reading("Shenzhen", literal=(False, False, True))
    assert literal.analysis.keyword and literal.feature("keyword_literal") == 1.0
    # Lowest score, but it holds the query word for word: quoted first, not declined.
    _answered(decide(literal, 0.05, DEFAULT_ANSWER_SETTINGS, THRESHOLD), SHENZHEN)
    without = _reading("Shenzhen")
    assert without.feature("keyword_literal") == 0.0
    _declined(
        decide(without, 0.05, DEFAULT_ANSWER_SETTINGS, THRESHOLD),
        r"the passages do not answer it \(answerable 0\.05 < 0\.35\)",
    )
