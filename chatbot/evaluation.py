"""The retrieval evaluation: questions with verbatim evidence, and rank metrics.

A retrieved chunk is relevant when, after :func:`normalize`, it contains at least one of the
question's evidence spans; relevance is decided by text, so a question set survives any
change of chunking. Recall@k is the share of questions with a relevant chunk in the top k.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatbot.chunking import Chunk
from chatbot.errors import ChatbotError

if TYPE_CHECKING:
    from chatbot.answer import Citation
    from chatbot.corpus import Article
    from chatbot.retrieval import Retriever
    from chatbot.settings import Mode

KS = (1, 3, 5, 10)
METRICS = tuple(f"recall@{k}" for k in KS) + ("mrr@10", "ndcg@10")
ANSWER_METRICS = (
    "answer_evidence_rate",
    "citation_valid_rate",
    "abstain_correct",
    "abstain_false",
    "citations_dropped",
    "llm_rate",
)
_QUOTES = str.maketrans(
    {"’": "'", "‘": "'", "ʼ": "'", "´": "'", "`": "'", "“": '"', "”": '"', "«": '"', "»": '"', "„": '"'}
)


@dataclass(frozen=True)
class Question:
    """One line of a question set. Empty ``evidence`` means the articles cannot answer it."""

    id: str
    question: str
    evidence: tuple[str, ...]
    lang: str = "fr"
    kind: str = "paraphrase"
    history: tuple[str, ...] = ()

    @property
    def answerable(self) -> bool:
        return bool(self.evidence)


def normalize(text: str) -> str:
    """NFKC, typographic apostrophes and quotes to ASCII, whitespace collapsed, case folded."""
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    return re.sub(r"\s+", " ", text).strip().casefold()


def load_questions(path: Path) -> list[Question]:
    """Read a JSONL question set.

    Raises:
        ChatbotError: the file is missing or a line is not a valid question (the line is named).
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ChatbotError(f"Cannot read the question set {path}: {exc}") from exc
    questions: list[Question] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            questions.append(
                Question(
                    id=str(row["id"]),
                    question=str(row["question"]),
                    evidence=tuple(str(e) for e in row.get("evidence", [])),
                    lang=str(row.get("lang", "fr")),
                    kind=str(row.get("kind", "paraphrase")),
                    history=tuple(str(h) for h in row.get("history", [])),
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ChatbotError(f"{path}:{number}: not a valid question line ({exc}).") from exc
    return questions


def relevance(chunks: Sequence[Chunk], evidence: Sequence[str]) -> list[bool]:
    """For each chunk, whether it contains one of the evidence spans."""
    spans = [normalize(e) for e in evidence]
    return [any(span in normalize(c.text) for span in spans) for c in chunks]


def recall_at(relevant: Sequence[bool], k: int) -> float:
    """1.0 when a relevant chunk is among the first ``k``."""
    return 1.0 if any(relevant[:k]) else 0.0


def mrr_at(relevant: Sequence[bool], k: int) -> float:
    """Reciprocal rank of the first relevant chunk within the first ``k``, else 0."""
    for rank, is_relevant in enumerate(relevant[:k], start=1):
        if is_relevant:
            return 1.0 / rank
    return 0.0


def ndcg_at(relevant: Sequence[bool], k: int, n_relevant: int) -> float:
    """Binary-gain nDCG@k; ``n_relevant`` is how many chunks of the whole index are relevant."""
    dcg = sum(1.0 / math.log2(rank + 1) for rank, rel in enumerate(relevant[:k], start=1) if rel)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(n_relevant, k) + 1))
    return dcg / ideal if ideal else 0.0


def question_metrics(relevant: Sequence[bool], n_relevant: int) -> dict[str, float]:
    scores = {f"recall@{k}": recall_at(relevant, k) for k in KS}
    scores["mrr@10"] = mrr_at(relevant, 10)
    scores["ndcg@10"] = ndcg_at(relevant, 10, n_relevant)
    return scores


def _mean(rows: Iterable[dict[str, float]]) -> dict[str, float]:
    rows = list(rows)
    return {m: round(sum(r[m] for r in rows) / len(rows), 4) if rows else 0.0 for m in METRICS}


Search = Callable[[Question], Sequence[Chunk]]


def evaluate(questions: Sequence[Question], search: Search, all_chunks: Sequence[Chunk]) -> dict[str, Any]:
    """Run ``search`` on every answerable question and average the metrics.

    Returns one object with ``n``, each metric, ``by_kind`` and ``by_lang`` (the same metrics per
    group), ``unreachable`` (questions whose evidence no chunk contains: fix the evidence or the
    chunking) and ``per_question`` details.
    """
    rows: list[tuple[Question, dict[str, float]]] = []
    unreachable: list[str] = []
    details: list[dict[str, Any]] = []
    for question in questions:
        if not question.answerable:
            continue
        n_relevant = sum(relevance(all_chunks, question.evidence))
        if n_relevant == 0:
            unreachable.append(question.id)
        ranked = list(search(question))[:10]
        relevant = relevance(ranked, question.evidence)
        scores = question_metrics(relevant, n_relevant)
        rows.append((question, scores))
        details.append(
            {"id": question.id, "first_relevant_rank": next((i + 1 for i, r in enumerate(relevant) if r), None)}
        )
    by_kind: dict[str, list[dict[str, float]]] = defaultdict(list)
    by_lang: dict[str, list[dict[str, float]]] = defaultdict(list)
    for question, scores in rows:
        by_kind[question.kind].append(scores)
        by_lang[question.lang].append(scores)
    report: dict[str, Any] = {"n": len(rows), **_mean(s for _, s in rows)}
    report["by_kind"] = {kind: {"n": len(v), **_mean(v)} for kind, v in sorted(by_kind.items())}
    report["by_lang"] = {lang: {"n": len(v), **_mean(v)} for lang, v in sorted(by_lang.items())}
    report["unreachable"] = unreachable
    report["per_question"] = details
    return report


def evaluate_retriever(questions: Sequence[Question], retriever: Retriever, mode: Mode) -> dict[str, Any]:
    """:func:`evaluate` the top 10 that the chat would retrieve (follow-ups with their history)."""
    from chatbot.retrieval import search_with_history

    def search(q: Question) -> list[Chunk]:
        return [h.chunk for h in search_with_history(retriever, q.question, q.history, k=10, mode=mode)]

    return evaluate(questions, search, retriever.chunks)


def answer_metrics(questions: Sequence[Question], answers: Sequence[Any], llm: bool = False) -> dict[str, float]:
    """Answer quality over a question set, ``answers[i]`` answering ``questions[i]``.

    ``answer_evidence_rate``: answerable questions whose quoted sentences contain an evidence
    span; ``answer_first_rate``: those whose *first* quote (what a person reads as the answer)
    contains one; ``quotes_per_answer``: distinct quotes per answered question;
    ``citation_valid_rate``: citations whose quote is verbatim in the cited passage;
    ``abstain_correct``: unanswerable questions declined; ``abstain_false``: answerable ones declined;
    with ``llm``, ``citations_dropped``: LLM citations removed by the check, and ``llm_rate``: answers
    the LLM wrote (the rest fell back to extractive).
    """
    answerable = [(q, a) for q, a in zip(questions, answers, strict=True) if q.answerable]
    unanswerable = [(q, a) for q, a in zip(questions, answers, strict=True) if not q.answerable]
    citations = [c for a in answers for c in a.citations]

    def has_evidence(q: Question, a: Any) -> bool:
        quoted = normalize(" ".join(c.quote for c in a.citations))
        return not a.abstained and any(normalize(e) in quoted for e in q.evidence)

    def first_has_evidence(q: Question, a: Any) -> bool:
        first = normalize(a.citations[0].quote) if a.citations else ""
        return not a.abstained and any(normalize(e) in first for e in q.evidence)

    answered = [a for a in answers if not a.abstained]

    def share(values: list[bool]) -> float:
        return round(sum(values) / len(values), 4) if values else 0.0

    metrics: dict[str, float] = {
        "answer_evidence_rate": share([has_evidence(q, a) for q, a in answerable]),
        "answer_first_rate": share([first_has_evidence(q, a) for q, a in answerable]),
        "quotes_per_answer": (
            round(sum(len({c.quote for c in a.citations}) for a in answered) / len(answered), 3) if answered else 0.0
        ),
        "citation_valid_rate": share([c.is_valid() for c in citations]) if citations else 1.0,
        "abstain_correct": share([a.abstained for _, a in unanswerable]),
        "abstain_false": share([a.abstained for _, a in answerable]),
    }
    if llm:
        metrics["citations_dropped"] = sum(a.citations_dropped for a in answers)
        metrics["llm_rate"] = share([a.mode == "llm" for a in answers])
    return metrics


def answer_metrics_by_kind(questions: Sequence[Question], answers: Sequence[Any]) -> dict[str, dict[str, float]]:
    """:func:`answer_metrics` per kind of question: evidence and wrong abstentions for the kinds
    with evidence, right abstentions for the others; ``answers`` the number of questions."""
    kinds: dict[str, list[int]] = defaultdict(list)
    for i, question in enumerate(questions):
        kinds[question.kind].append(i)
    report: dict[str, dict[str, float]] = {}
    for kind, rows in sorted(kinds.items()):
        subset = [questions[i] for i in rows]
        metrics = answer_metrics(subset, [answers[i] for i in rows])
        keys = (
            ("answer_evidence_rate", "answer_first_rate", "quotes_per_answer", "abstain_false")
            if subset[0].answerable
            else ("abstain_correct",)
        )
        report[kind] = {"answers": len(rows), **{key: metrics[key] for key in keys}}
    return report


def citation_matches_article(citation: Citation, article_text: str) -> bool:
    """The quote is, character for character, ``article_text`` at the citation's offsets in the
    article (``chunk_start + quote_start`` to ``chunk_start + quote_end``), inside the cited
    passage: what the article view marks when a reader follows the citation.

    :meth:`Citation.is_valid` compares the quote with the passage text the citation carries,
    which was cut at the same offsets that built the quote; this compares it with the article.
    """
    start = citation.chunk_start + citation.quote_start
    end = citation.chunk_start + citation.quote_end
    return (
        0 <= citation.chunk_start <= start < end <= citation.chunk_end <= len(article_text)
        and article_text[start:end] == citation.quote
    )


def citation_article_rate(answers: Sequence[Any], articles: Mapping[str, Article]) -> float:
    """Share of the answers' citations whose quote is the article's text at its offsets
    (:func:`citation_matches_article`); ``articles`` by id, the ones the index was built from
    (``load_corpus(corpus_dir).by_id()``). A citation of an article not in ``articles`` does not
    match; 1.0 when there is no citation at all."""
    citations = [c for a in answers for c in a.citations]
    if not citations:
        return 1.0
    matching = [
        c.article_id in articles and citation_matches_article(c, articles[c.article_id].text) for c in citations
    ]
    return sum(matching) / len(matching)  # not rounded: one wrong citation in many is still below 1.0


def format_table(reports: dict[str, dict[str, Any]]) -> str:
    """A plain-text table, one row per named report (a mode or a model), one column per metric."""
    header = f"{'':<22}{'n':>4}" + "".join(f"{m:>11}" for m in METRICS)
    lines = [header]
    for name, report in reports.items():
        lines.append(f"{name:<22}{report['n']:>4}" + "".join(f"{report[m]:>11.3f}" for m in METRICS))
        extra = [f"{key}={report[key]:.3f}" for key in ANSWER_METRICS if key in report]
        if extra:
            lines.append("  answers: " + ", ".join(extra))
        for group in ("by_kind", "by_lang"):
            for key, sub in report.get(group, {}).items():
                line = f"  {key:<20}{sub.get('n', 0):>4}"
                if "n" in sub:
                    line += "".join(f"{sub[m]:>11.3f}" for m in METRICS)
                answers = [f"{k}={sub[k]:.3f}" for k in ANSWER_METRICS if k in sub]
                lines.append(line + (("   answers: " + ", ".join(answers)) if answers else ""))
    return "\n".join(lines)
