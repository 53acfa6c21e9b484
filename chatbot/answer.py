"""Answering: retrieve → read → compose citations, the one entry point every interface
calls, and the values it gives them (:mod:`chatbot.reader.values`). How passages are read is
:mod:`chatbot.reader`'s."""

from __future__ import annotations

import collections
from collections.abc import Iterator, Sequence

from chatbot.reader import ExtractiveReader, Reader
from chatbot.reader.values import (
    DEFAULT_ANSWER_SETTINGS,
    NOT_FOUND,
    Answer,
    AnswerSettings,
    Citation,
    Progress,
    Sentence,
    split_sentences,
    with_citations,
)
from chatbot.retrieval import Retriever, search_with_history
from chatbot.settings import Mode

__all__ = [
    "DEFAULT_ANSWER_SETTINGS",
    "NOT_FOUND",
    "Answer",
    "AnswerSettings",
    "Citation",
    "Progress",
    "Sentence",
    "answer",
    "split_sentences",
    "stream",
    "with_citations",
]


def stream(
    retriever: Retriever,
    question: str,
    history: Sequence[str] = (),
    *,
    k: int | None = None,
    mode: Mode | None = None,
    settings: AnswerSettings = DEFAULT_ANSWER_SETTINGS,
    reader: Reader | None = None,
    turns: Sequence[tuple[str, str]] = (),
) -> Iterator[Progress | str | Answer]:
    """Retrieve passages for ``question`` (asked after ``history``) and read them: the
    extractive reader unless ``reader`` is given. Yields :class:`Progress`, partial texts
    while a model writes, then the :class:`Answer`; ``turns`` are the earlier (question,
    answer) pairs.

    Raises:
        QuestionError: the question is empty or too long.
    """
    yield Progress("search")
    hits = search_with_history(retriever, question, history, k=k, mode=mode)
    yield Progress("read", passages=len(hits))
    yield from (reader or ExtractiveReader(settings)).stream(question, history, hits, retriever, turns)


def answer(
    retriever: Retriever,
    question: str,
    history: Sequence[str] = (),
    *,
    k: int | None = None,
    mode: Mode | None = None,
    settings: AnswerSettings = DEFAULT_ANSWER_SETTINGS,
    reader: Reader | None = None,
    turns: Sequence[tuple[str, str]] = (),
) -> Answer:
    """The final :class:`Answer` of :func:`stream`.

    Raises:
        QuestionError: the question is empty or too long.
    """
    answers = stream(retriever, question, history, k=k, mode=mode, settings=settings, reader=reader, turns=turns)
    (result,) = collections.deque(answers, maxlen=1)
    assert isinstance(result, Answer)
    return result
