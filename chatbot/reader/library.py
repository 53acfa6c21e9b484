"""What a reader derives, once per build of the index, from the narrow view of the index it
reads (:class:`~chatbot.reader.values.Library`, which the :class:`~chatbot.retrieval.Retriever`
is): the sentences' named entities, the generated questions' vectors, the small-talk
recogniser. The retriever keeps them per build (so that a rebuilt index gets its own) without
knowing what they are."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from chatbot.reader.values import Library

if TYPE_CHECKING:
    from chatbot.entities import SentenceEntities
    from chatbot.reader.enrichment import QuestionVectors
    from chatbot.smalltalk import SmallTalk

__all__ = ["Library", "corpus_sentences", "generated_questions", "named_entities", "small_talk", "warm"]

logger = logging.getLogger(__name__)
T = TypeVar("T")


def named_entities(library: Library) -> SentenceEntities | None:
    """The named entities of the index's sentences (spaCy, cached beside the index; tagged
    once, ~3 s, when no cache holds them); None when spaCy's French pipeline is missing."""
    from chatbot.entities import EntitiesError, SentenceEntities

    def load() -> SentenceEntities | None:
        try:
            return SentenceEntities.load(library.chunks, library.settings.index_dir)
        except EntitiesError as exc:
            logger.warning("Answers without named entities: %s", exc)
            return None

    return library.derived("entities", load, lambda _old: load())


def generated_questions(library: Library) -> QuestionVectors:
    """The vectors of the questions written for the corpus sentences at index time
    (``<corpus>/enrichment.jsonl``; none when absent), embedded once and kept beside the index.
    A new build embeds them on first use (its file may have changed).

    Raises:
        EnrichmentError: the enrichment file cannot be read.
    """
    from chatbot.reader.enrichment import QuestionVectors

    settings = library.settings
    return library.derived(
        "questions",
        lambda: QuestionVectors.load(settings.corpus_dir, settings.index_dir, library.embedder, settings.model),
    )


def small_talk(library: Library) -> SmallTalk:
    """Recognises greetings, thanks and off-topic messages against the index's sentences
    (:mod:`chatbot.smalltalk`); a new build reuses the examples' vectors."""
    from chatbot.smalltalk import SmallTalk

    return library.derived(
        "small_talk",
        lambda: SmallTalk(library.embedder, corpus_sentences(library)),
        lambda old: old.with_sentences(corpus_sentences(library)),
    )


def warm(library: Library) -> None:
    """Derive now what a first question would wait for: the generated questions' vectors, the
    small-talk examples' vectors, the named entities.

    Raises:
        EnrichmentError: the enrichment file cannot be read.
    """
    generated_questions(library)
    small_talk(library).warm()
    named_entities(library)


def corpus_sentences(library: Library) -> np.ndarray:
    """Every sentence vector of the index (none when it stores none)."""
    rows = library.sentence_vectors_of(library.chunks) if library.settings.sentence_vectors else []
    return np.vstack(rows) if rows else np.zeros((0, 1), dtype=np.float32)
