"""What readers ask, for the blog's author: the question log (:mod:`chatbot.questionlog`)
summed up over a period. Questions per day; the questions the articles did not answer,
grouped by topic (their vectors from the embedder, clustered by SciPy), each group with
its questions and the passage closest to them; the most cited articles and passages; the
answers voted 👎 with their question; the period's figures. :mod:`chatbot.report_page` draws
it as one HTML page; :meth:`Report.to_dict` is the ``--json`` form.
"""

from __future__ import annotations

import collections
import logging
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np

from chatbot.errors import ChatbotError
from chatbot.questionlog import Cited, LogContents, QuestionEntry, gap_text

__all__ = ["Gap", "Report", "build_report"]

logger = logging.getLogger(__name__)

# Two unanswered questions share a topic when the average cosine distance between their
# groups stays under this (average linkage). Chosen by reading the groups that EmbeddingGemma
# makes of the evaluation sets' unanswerable questions (docs/report.md).
DISTANCE = 0.5
MAX_GROUPED = 1000  # distinct unanswered questions clustered (the most asked; 2,000 take 3 s); the rest are counted
MAX_EMBEDDED = 300  # of those, how many without a logged vector may be embedded now
TOP = 10
MAX_DOWN_VOTES = 50

Embed = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class Asked:
    """A question as readers asked it, and how many times."""

    question: str
    times: int
    follow_up_of: str = ""


@dataclass(frozen=True)
class Gap:
    """Questions of one topic that the articles did not answer, most asked first, and the
    passage the reader found closest to them (the most frequent among theirs)."""

    questions: tuple[Asked, ...]
    closest: Cited | None

    @property
    def times(self) -> int:
        return sum(q.times for q in self.questions)


@dataclass(frozen=True)
class Count:
    """An article or a passage and how many answers cited it."""

    key: str
    title: str
    times: int
    quote: str = ""


@dataclass(frozen=True)
class DownVote:
    question: str
    answer: str
    time: str
    declined: bool
    follow_up_of: str = ""


@dataclass(frozen=True)
class Report:
    """Everything the page shows (see the module docstring)."""

    generated: str
    first_day: str
    last_day: str
    figures: dict[str, Any]
    per_day: tuple[tuple[str, int, int, int], ...]  # day, answered, not answered, small talk
    gaps: tuple[Gap, ...]
    ungrouped: int  # distinct unanswered questions left out of the groups (past MAX_GROUPED)
    grouped_by: str  # how the gaps were grouped: the embedder's name, or "article" without vectors
    articles: tuple[Count, ...]
    passages: tuple[Count, ...]
    down_votes: tuple[DownVote, ...]
    damaged: int  # lines of the log that could not be read
    files: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not self.figures["questions"]

    def to_dict(self) -> dict[str, Any]:
        row = asdict(self)
        row["per_day"] = [dict(zip(("day", "answered", "not_answered", "small_talk"), d, strict=True))
                          for d in self.per_day]  # fmt: skip
        for gap, data in zip(self.gaps, row["gaps"], strict=True):
            data["times"] = gap.times
        return row


def build_report(
    contents: LogContents,
    *,
    embed: Embed | None = None,
    embedder: str = "",
    since: datetime | None = None,
    now: datetime | None = None,
    distance: float = DISTANCE,
) -> Report:
    """The report of the entries of ``contents`` at or after ``since``. The unanswered
    questions are grouped with their logged vectors of ``embedder`` (the most common one when
    empty); those without one are embedded with ``embed`` when given (at most
    :data:`MAX_EMBEDDED`), else grouped by the article of their closest passage."""
    now = now or datetime.now(UTC)
    entries = [e for e in contents.entries if since is None or e.when >= since]
    days = _per_day(entries)
    gaps, ungrouped, grouped_by = _gaps([e for e in entries if e.gap], embed, embedder, distance)
    return Report(
        generated=now.astimezone(UTC).isoformat(timespec="seconds"),
        first_day=days[0][0] if days else "",
        last_day=days[-1][0] if days else "",
        figures=_figures(entries, len(days)),
        per_day=tuple(days),
        gaps=gaps,
        ungrouped=ungrouped,
        grouped_by=grouped_by,
        articles=_most_cited_articles(entries),
        passages=_most_cited_passages(entries),
        down_votes=tuple(
            DownVote(e.question, e.answer, e.time, e.declined, e.follow_up_of)
            for e in reversed(entries)
            if e.vote == "down"
        )[:MAX_DOWN_VOTES],
        damaged=contents.damaged,
        files=tuple(str(f) for f in contents.files),
    )


def _figures(entries: Sequence[QuestionEntry], days: int) -> dict[str, Any]:
    latencies = sorted(e.latency_ms for e in entries if e.latency_ms is not None)
    answered = sum(not e.declined for e in entries)
    gaps = sum(e.gap for e in entries)
    return {
        "questions": len(entries),
        "days": days,
        "readers": len({e.client for e in entries if e.client}),
        "answered": answered,
        "not_answered": gaps,
        "small_talk": len(entries) - answered - gaps,
        "answered_share": round(answered / max(1, answered + gaps), 3),
        "follow_ups": sum(bool(e.follow_up_of) for e in entries),
        "via_chat": sum(e.via == "chat" for e in entries),
        "via_api": sum(e.via == "api" for e in entries),
        "latency_median_ms": round(statistics.median(latencies), 1) if latencies else None,
        "latency_p90_ms": round(latencies[int(0.9 * (len(latencies) - 1))], 1) if latencies else None,
        "votes_up": sum(e.vote == "up" for e in entries),
        "votes_down": sum(e.vote == "down" for e in entries),
    }


def _per_day(entries: Sequence[QuestionEntry]) -> list[tuple[str, int, int, int]]:
    """(day, answered, not answered, small talk) for every day from the first to the last,
    days without questions included (a plot's gaps are real)."""
    counts: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0, 0])
    for e in entries:
        counts[e.day][0 if not e.declined else 1 if e.gap else 2] += 1
    if not counts:
        return []
    first, last = date.fromisoformat(min(counts)), date.fromisoformat(max(counts))
    span = (first + timedelta(days=n) for n in range((last - first).days + 1))
    return [(d.isoformat(), *counts.get(d.isoformat(), [0, 0, 0])) for d in span]  # type: ignore[misc]


def _most_cited_articles(entries: Sequence[QuestionEntry]) -> tuple[Count, ...]:
    times: collections.Counter[str] = collections.Counter()
    titles: dict[str, str] = {}
    for e in entries:
        for c in {c.article_id: c for c in e.cited}.values():  # an answer counts once per article
            times[c.article_id] += 1
            titles.setdefault(c.article_id, c.article)
    return tuple(Count(key, titles[key], n) for key, n in times.most_common(TOP))


def _most_cited_passages(entries: Sequence[QuestionEntry]) -> tuple[Count, ...]:
    times: collections.Counter[str] = collections.Counter()
    quotes: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    titles: dict[str, str] = {}
    for e in entries:
        for c in {c.chunk_id: c for c in e.cited}.values():
            times[c.chunk_id] += 1
            titles.setdefault(c.chunk_id, c.article)
        for c in e.cited:
            quotes[c.chunk_id][c.quote] += 1
    return tuple(Count(key, titles[key], n, quotes[key].most_common(1)[0][0]) for key, n in times.most_common(TOP))


@dataclass
class _Distinct:
    """An unanswered question's occurrences, merged by text."""

    question: str
    follow_up_of: str
    times: int
    closest: collections.Counter[Cited]
    vector: np.ndarray | None


def _gaps(
    entries: Sequence[QuestionEntry], embed: Embed | None, embedder: str, distance: float
) -> tuple[tuple[Gap, ...], int, str]:
    if not entries:
        return (), 0, embedder
    if not embedder:
        embedder = logged_embedder(LogContents(tuple(entries), 0, ()))
    merged: dict[str, _Distinct] = {}
    for e in entries:
        key = " ".join(e.question.casefold().split())
        item = merged.setdefault(key, _Distinct(e.question, e.follow_up_of, 0, collections.Counter(), None))
        item.times += 1
        if e.closest is not None:
            item.closest[e.closest] += 1
        if item.vector is None and e.embedder == embedder:
            item.vector = e.vector_array()
    distinct = sorted(merged.values(), key=lambda d: -d.times)
    kept, ungrouped = distinct[:MAX_GROUPED], len(distinct) - min(len(distinct), MAX_GROUPED)
    _embed_missing(kept, embed)
    with_vectors = [d for d in kept if d.vector is not None]
    groups = _clusters(with_vectors, distance) if with_vectors else []
    clustered = {id(d) for group in groups for d in group}
    # Without a vector (no embedder to hand, or a damaged one): grouped by their closest article.
    by_article: dict[str, list[_Distinct]] = collections.defaultdict(list)
    for d in kept:
        if id(d) not in clustered:
            best = d.closest.most_common(1)
            by_article[best[0][0].article_id if best else ""].append(d)
    groups += list(by_article.values())
    gaps = [_gap(group) for group in groups]
    gaps.sort(key=lambda g: (-g.times, g.questions[0].question))
    return tuple(gaps), ungrouped, embedder if with_vectors else "article"


def _embed_missing(distinct: list[_Distinct], embed: Embed | None) -> None:
    missing = [d for d in distinct if d.vector is None][:MAX_EMBEDDED]
    if not missing or embed is None:
        return
    texts = [gap_text(d.question, [d.follow_up_of]) for d in missing]
    try:
        vectors = np.asarray(embed(texts), dtype=np.float32)
    except (ChatbotError, OSError) as exc:
        logger.warning("The unanswered questions without a logged vector are grouped by article: %s", exc)
        return
    for d, vector in zip(missing, vectors, strict=True):
        d.vector = vector


def _clusters(distinct: list[_Distinct], distance: float) -> list[list[_Distinct]]:
    """Agglomerative clustering (SciPy's: average linkage, cosine distance, cut at ``distance``;
    scikit-learn's AgglomerativeClustering gives the same groups, and takes 2 s more to import)."""
    if len(distinct) == 1:
        return [distinct]
    from scipy.cluster.hierarchy import fcluster, linkage

    # A vector of another size (a damaged line, another model under the same name) is left out.
    size = collections.Counter(len(d.vector) for d in distinct if d.vector is not None).most_common(1)[0][0]
    distinct = [d for d in distinct if d.vector is not None and len(d.vector) == size]
    if len(distinct) < 2:
        return [distinct]
    vectors = np.stack([d.vector for d in distinct if d.vector is not None])
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    labels = fcluster(linkage(vectors, method="average", metric="cosine"), t=distance, criterion="distance")
    groups: dict[int, list[_Distinct]] = collections.defaultdict(list)
    for d, label in zip(distinct, labels, strict=True):
        groups[int(label)].append(d)
    return list(groups.values())


def _gap(group: list[_Distinct]) -> Gap:
    group = sorted(group, key=lambda d: (-d.times, d.question))
    closest: collections.Counter[Cited] = collections.Counter()
    for d in group:
        closest.update(d.closest)
    best = closest.most_common(1)
    return Gap(tuple(Asked(d.question, d.times, d.follow_up_of) for d in group), best[0][0] if best else None)


def logged_embedder(contents: LogContents) -> str:
    """The embedder that wrote most of the log's vectors («» when none has)."""
    named = collections.Counter(e.embedder for e in contents.entries if e.embedder and e.vector).most_common(1)
    return named[0][0] if named else ""
