"""Suggested questions: a few on the empty chat, and «Questions liées» under each answer.

They are drawn from the questions a language model wrote for each article's sentences at
index time (:mod:`chatbot.reader.enrichment`), and a question is only ever suggested once the
reader has answered it: each candidate is asked, alone, when the suggestions are built, and
kept only when the answer is not a decline and cites the article it was written for. They are
built once per service (in the background at ``chatbot serve`` start; the page shows none
until then), at most :data:`MAX_CHECKS` answers in all, spread over the articles in turns.

A suggestion keeps the language it is written in; the chat shows those in the answer's
language (the enrichment writes French questions, so an English answer gets none).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from chatbot.analysis import analyze, detect_language
from chatbot.errors import ChatbotError
from chatbot.question import named_things
from chatbot.reader.enrichment import FILENAME, SentenceQuestions, load_enrichment

if TYPE_CHECKING:
    from chatbot.reader.values import Answer

__all__ = ["Suggestion", "SuggestionSet", "Suggestions"]

logger = logging.getLogger(__name__)

PER_ARTICLE = 4  # answered questions kept per article
CHECKS_PER_ARTICLE = 12  # candidates asked per article at most
MAX_CHECKS = 150  # answers in all (about 0.25 s each with EmbeddingGemma: under a minute, in the background)
STARTERS = 4
RELATED = 3
# A question that leans on the sentence it was written from («Que dit cette phrase ?») means
# nothing to a reader who has not read it; nor does a pronoun that names no one («Quelle
# expérience a-t-elle ?»), unless the question names its subject («Shenzhen consacre-t-il…»).
_LEANS_ON_ITS_SENTENCE = re.compile(
    r"\b(?:cette|cet|ces|ce même|la phrase|ce texte|l[’']article|ce passage|ce dernier|ce que je|je|j[’']|mes)\b",
    re.IGNORECASE,
)
# A small model's slips («Quelle proportion de les entreprises…»): not shown to readers.
_SLIP = re.compile(r"\b(?:de les|à les|à le|de le)\b", re.IGNORECASE)
SAME_TOPIC = 0.5  # share of stemmed words above which two candidates ask the same thing
_PRONOUN = re.compile(r"-t-(?:il|elle|ils|elles)\b|-(?:il|elle|ils|elles)\b|^(?:il|elle|ils|elles)\s", re.IGNORECASE)


@dataclass(frozen=True)
class Suggestion:
    """A question the reader answers, from the article it was written for."""

    question: str
    article_id: str
    lang: str = "fr"


@dataclass(frozen=True)
class SuggestionSet:
    """The suggestions kept, by article (in the order found), and what building them cost."""

    by_article: dict[str, tuple[Suggestion, ...]] = field(default_factory=dict)
    checked: int = 0
    declined: int = 0
    seconds: float = 0.0

    def __len__(self) -> int:
        return sum(len(s) for s in self.by_article.values())

    def starters(self, lang: str = "fr", n: int = STARTERS) -> list[Suggestion]:
        """``n`` questions for the empty chat, one article after another."""
        pools = [[s for s in kept if s.lang == lang] for kept in self.by_article.values()]
        chosen: list[Suggestion] = []
        for depth in range(PER_ARTICLE):
            for pool in pools:
                if len(chosen) < n and depth < len(pool):
                    chosen.append(pool[depth])
        return chosen

    def related(self, article_id: str, lang: str, exclude: Iterable[str] = (), n: int = RELATED) -> list[Suggestion]:
        """Up to ``n`` questions about ``article_id`` in ``lang``, none of ``exclude`` (the
        questions already asked)."""
        asked = {_key(q) for q in exclude}
        kept = self.by_article.get(article_id, ())
        return [s for s in kept if s.lang == lang and _key(s.question) not in asked][:n]


def _key(question: str) -> str:
    return " ".join(question.casefold().split())


def worth_suggesting(question: str) -> bool:
    """A question a reader can ask as it stands: short, a question, not leaning on the
    sentence it was written from (a demonstrative, the author's «je», a pronoun that names no
    one), without a small model's slip."""
    text = " ".join(question.split())
    if not (20 <= len(text) <= 110 and text.endswith("?")) or _LEANS_ON_ITS_SENTENCE.search(text):
        return False
    if _SLIP.search(text):
        return False
    return not _PRONOUN.search(text) or bool(named_things(text))


def candidates(rows: Iterable[SentenceQuestions]) -> dict[str, list[str]]:
    """The questions worth suggesting, by article in the file's order: first one per sentence
    (the one that names something, if any), then the others; a question that shares most of
    its words with an earlier one of its article is left out (a model writes «Quelles leçons
    Groupon a-t-il tirées…» three ways)."""
    firsts: dict[str, list[str]] = {}
    others: dict[str, list[str]] = {}
    for row in rows:
        ranked = sorted(
            (" ".join(q.split()) for q in row.questions if worth_suggesting(q)),
            key=lambda q: not named_things(q),  # stable: the model's order otherwise
        )
        if ranked:
            firsts.setdefault(row.article_id, []).append(ranked[0])
            others.setdefault(row.article_id, []).extend(ranked[1:])
    pools: dict[str, list[str]] = {}
    for article, first in firsts.items():
        kept: list[tuple[str, frozenset[str]]] = []
        for question in sorted(first, key=lambda q: not named_things(q)) + others[article]:
            words = frozenset(analyze(question))
            if words and all(_overlap(words, seen) < SAME_TOPIC for _, seen in kept):
                kept.append((question, words))
        pools[article] = [q for q, _ in kept]
    return pools


def _overlap(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b)


def build(
    pools: dict[str, list[str]],
    ask: Callable[[str], Answer],
    per_article: int = PER_ARTICLE,
    checks_per_article: int = CHECKS_PER_ARTICLE,
    max_checks: int = MAX_CHECKS,
) -> SuggestionSet:
    """Ask the candidates, one article after another in turns, and keep those answered (not
    declined, citing their article) until each article has ``per_article`` or its candidates
    (``checks_per_article`` at most) are spent; ``max_checks`` answers in all."""
    started = time.perf_counter()
    kept: dict[str, list[Suggestion]] = {article: [] for article in pools}
    tried = dict.fromkeys(pools, 0)
    checked = declined = 0
    while checked < max_checks:
        open_ = [a for a in pools if len(kept[a]) < per_article and tried[a] < min(len(pools[a]), checks_per_article)]
        if not open_:
            break
        for article in open_:
            if checked >= max_checks:
                break
            question = pools[article][tried[article]]
            tried[article] += 1
            checked += 1
            try:
                result = ask(question)
            except ChatbotError as exc:
                logger.warning("Suggestion %r not checked: %s", question, exc)
                continue
            if result.abstained or not any(c.article_id == article for c in result.citations):
                declined += 1
                continue
            kept[article].append(Suggestion(question, article, detect_language(question)))
    return SuggestionSet(
        {a: tuple(s) for a, s in kept.items() if s}, checked, declined, round(time.perf_counter() - started, 2)
    )


class Suggestions:
    """The suggestions of one service and index build: built once, on first :meth:`build` (or
    in the background), then read without waiting (:meth:`ready`). ``generation`` names the
    index build that answers; when it changes (a rebuilt index), the suggestions are built
    again in the background and none are shown meanwhile: a question checked on the old
    build could be declined by the new one. Thread-safe."""

    def __init__(
        self,
        corpus_dir: Path,
        ask: Callable[[str], Answer],
        generation: Callable[[], str] = lambda: "",
        max_checks: int = MAX_CHECKS,
    ) -> None:
        self.path = corpus_dir / FILENAME
        self._ask = ask
        self._generation = generation
        self.max_checks = max_checks
        self._built: tuple[str, SuggestionSet] | None = None
        self._lock = threading.Lock()  # held while building
        self._flag = threading.Lock()  # never held long: ready() does not wait for a build
        self._rebuilding = False

    def ready(self) -> SuggestionSet | None:
        """The suggestions if they are built for the index build now answering, else ``None``
        (never waits; a stale set starts its rebuild)."""
        built = self._built
        if built is None:
            return None
        try:
            current = self._generation()
        except ChatbotError:
            return None
        if built[0] == current:
            return built[1]
        with self._flag:
            start, self._rebuilding = not self._rebuilding, True
        if start:
            self.warm_in_background()
        return None

    def build(self) -> SuggestionSet:
        """Build the suggestions for the index build now answering (once per build; later
        calls return them). A missing or unreadable enrichment file gives none (logged).

        Raises:
            IndexStateError, ModelError: the index or the embedder cannot be used.
        """
        with self._lock:
            generation = self._generation()
            if self._built is None or self._built[0] != generation:
                try:
                    pools = candidates(load_enrichment(self.path).values())
                except ChatbotError as exc:
                    logger.warning("No suggested questions: %s", exc)
                    pools = {}
                built = build(pools, self._ask, max_checks=self.max_checks)
                self._built = (generation, built)
                with self._flag:
                    self._rebuilding = False
                logger.info("Suggested questions: %d kept of %d checked in %.1f s", len(built),
                            built.checked, built.seconds)  # fmt: skip
            return self._built[1]

    def warm_in_background(self) -> threading.Thread:
        def run() -> None:
            try:
                self.build()
            except ChatbotError as exc:
                logger.warning("The suggested questions could not be built: %s", exc)

        thread = threading.Thread(target=run, name="suggestions", daemon=True)
        thread.start()
        return thread


def related_to(suggestions: SuggestionSet, result: Answer, asked: Sequence[str]) -> list[Suggestion]:
    """«Questions liées» under an answer: about the article it cites first (a decline: the
    article of its closest passage; small talk: the starters), in its language."""
    if result.citations:
        article = result.citations[0].article_id
    elif result.evidence:
        article = result.evidence[0].hit.chunk.article_id
    else:
        seen = {_key(q) for q in asked}
        return [s for s in suggestions.starters(result.lang) if _key(s.question) not in seen][:RELATED]
    return suggestions.related(article, result.lang, [*asked, result.question])
