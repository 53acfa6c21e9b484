"""Short extractive answers: the sentences of the retrieved passages that best answer the
question, each with a numbered citation that is checked to be verbatim in its passage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from chatbot import analysis
from chatbot.chunking import sentence_spans
from chatbot.conversation import follow_up_context, previous_question, search_with_history
from chatbot.retrieval import Hit, Retriever
from chatbot.settings import Mode

NOT_FOUND = {
    "fr": "Je ne trouve pas la réponse dans les articles.",
    "en": "I cannot find the answer in the articles.",
}


@dataclass(frozen=True)
class AnswerSettings:
    """How sentences are scored and when the answer is declined (calibrated on the eval set)."""

    max_sentences: int = 3
    # A sentence joins the answer when its score is within this margin of the best one.
    # Measured: the best-scored sentence holds the evidence for about 55 % of questions, one
    # of the best three for about 75 %, so close runners-up are worth quoting.
    margin: float = 0.15
    # Decline when support (the cosine of the passage nearest to the question) falls below
    # the threshold of the question's language: the lowest values that decline every
    # unanswerable question of evaluation/questions.jsonl (python evaluation/calibrate.py).
    # e5 gives lower cosines across languages, hence the lower English threshold. Adding the
    # share of question terms found in the passage made the classes overlap more (measured).
    min_support: tuple[tuple[str, float], ...] = (("fr", 0.852), ("en", 0.795))
    lexical_weight: float = 0.25
    # Bonus for sentences of higher-ranked passages: weight / rank.
    rank_weight: float = 0.1
    # An interview question that matches well hands most of its score to the answer after it.
    question_carry: float = 0.97
    min_sentence_chars: int = 25


DEFAULT_ANSWER_SETTINGS = AnswerSettings()


@dataclass(frozen=True)
class Citation:
    """Marker ``[n]``: a sentence quoted verbatim from a passage of an article."""

    n: int
    article_id: str
    article: str
    chunk_id: str
    text: str
    quote: str
    quote_start: int  # offsets of the quote in ``text``
    quote_end: int
    chunk_start: int  # offsets of the passage in the article
    chunk_end: int

    def is_valid(self) -> bool:
        """The quoted sentence is, character for character, in the cited passage."""
        return bool(self.quote) and self.text[self.quote_start : self.quote_end] == self.quote


@dataclass(frozen=True)
class Answer:
    """What every interface shows: the answer text with [n] markers and its citations."""

    question: str
    text: str
    abstained: bool
    citations: tuple[Citation, ...] = ()
    closest_articles: tuple[str, ...] = ()
    score: float = 0.0
    lang: str = "fr"
    hits: tuple[Hit, ...] = field(default=(), compare=False, repr=False)
    # "extractive" (quoted sentences) or "llm" (written by a language model, citations checked).
    mode: str = "extractive"
    note: str = ""  # shown under the answer, e.g. why the LLM answer was not used
    citations_dropped: int = 0

    def sources(self) -> list[tuple[int, list[Citation]]]:
        """The cited passages in marker order, each with the citations (quotes) it backs."""
        return [(n, [c for c in self.citations if c.n == n]) for n in sorted({c.n for c in self.citations})]

    def to_dict(self) -> dict[str, object]:
        """The JSON shape of ``chatbot ask --json``."""
        return {
            "answer": self.text,
            "abstained": self.abstained,
            "citations": [asdict(c) for c in self.citations],
            "closest_articles": list(self.closest_articles),
            "mode": self.mode,
            "note": self.note,
            "citations_dropped": self.citations_dropped,
        }


@dataclass(frozen=True)
class Sentence:
    hit: Hit
    start: int
    end: int
    text: str
    score: float = 0.0
    position: int = 0  # among all the sentences of the chunk: the row of its stored vector


def split_sentences(hit: Hit, min_chars: int) -> list[Sentence]:
    """Sentences of a passage with their offsets in it (lines count as sentence ends), those
    shorter than ``min_chars`` left out."""
    return [
        Sentence(hit, start, end, hit.chunk.text[start:end], position=position)
        for position, (start, end) in enumerate(sentence_spans(hit.chunk.text))
        if end - start >= min_chars
    ]


def coverage(asked: frozenset[str], text: str) -> float:
    """Share of the question's analysed terms ``asked`` that ``text`` contains."""
    if not asked:
        return 0.0
    return len(asked & set(analysis.analyze(text))) / len(asked)


def compose(
    question: str,
    hits: Sequence[Hit],
    retriever: Retriever,
    settings: AnswerSettings = DEFAULT_ANSWER_SETTINGS,
    history: Sequence[str] = (),
) -> Answer:
    """Pick the best sentences of ``hits`` and number their passages.

    ``history`` holds the earlier questions: a short follow-up is scored together with the
    previous one, and any question asked after others is supported when either reading
    (alone, or after the previous question) is close to a passage.
    """
    lang = analysis.detect_language(question)
    closest = tuple(dict.fromkeys(h.chunk.article_title for h in hits))[:3]

    def decline(support: float = 0.0) -> Answer:
        return Answer(
            question, NOT_FOUND[lang], True, closest_articles=closest, score=support, lang=lang, hits=tuple(hits)
        )

    sentences = [s for hit in hits for s in split_sentences(hit, settings.min_sentence_chars)]
    if not sentences:
        return decline()
    query = f"{follow_up_context(question, history)} {question}".strip()
    # What a short follow-up asks is in its own words («Et la TVA ?»); the earlier question
    # only gives the subject, which the cosine over ``query`` carries.
    asked = frozenset(analysis.analyze(question) or analysis.analyze(query))
    q_vec = retriever.query_vector(query)
    previous = previous_question(history)
    readings = {question, query, *([f"{previous} {question}"] if previous else [])}
    support = max(_nearest_cosine(retriever, retriever.query_vector(text)) for text in readings)
    if support < dict(settings.min_support).get(lang, 0.0):
        return decline(support)
    vectors = {hit.chunk.id: retriever.sentence_vectors(hit.chunk) for hit in hits}
    scored = [
        replace(
            s,
            score=float(vectors[s.hit.chunk.id][s.position] @ q_vec[0])
            + settings.lexical_weight * coverage(asked, s.text)
            + settings.rank_weight / s.hit.rank,
        )
        for s in sentences
    ]
    scored = _answers_not_questions(scored, settings.question_carry)
    if not scored:
        return decline(support)
    scored.sort(key=lambda s: (-s.score, s.hit.rank, s.start))
    best = scored[0]
    chosen = [best]
    for candidate in scored[1:]:
        if len(chosen) == settings.max_sentences or candidate.score < best.score - settings.margin:
            break
        if all(not _overlaps(candidate, c) for c in chosen):
            chosen.append(candidate)
    return _with_citations(question, chosen, closest, support, lang, hits)


def _nearest_cosine(retriever: Retriever, q_vec: np.ndarray) -> float:
    nearest = retriever.nearest(q_vec, 1)
    return nearest[0][1] if nearest else 0.0


def _answers_not_questions(sentences: list[Sentence], carry: float) -> list[Sentence]:
    """Drop questions (the interviewer's, or rhetorical) and URLs from the candidates. A question
    passes a share of its score to the sentence that follows it in the same passage; when that
    share wins, the quote takes the question along («Le point faible ? Le coût du logement…»),
    since the answer alone often does not say what it answers."""
    out: list[Sentence] = []
    asked: Sentence | None = None
    inherited = 0.0
    previous_chunk = ""
    for sentence in sentences:
        if sentence.hit.chunk.id != previous_chunk:
            asked, inherited, previous_chunk = None, 0.0, sentence.hit.chunk.id
        if sentence.text.endswith("?"):
            if sentence.score * carry > inherited:
                asked, inherited = sentence, sentence.score * carry
            continue
        if sentence.text.startswith(("http://", "https://")):
            continue
        if asked is not None and inherited > sentence.score:
            text = sentence.hit.chunk.text[asked.start : sentence.end]
            out.append(replace(sentence, start=asked.start, text=text, score=inherited))
        else:
            out.append(sentence)
        asked, inherited = None, 0.0
    return out


def _overlaps(a: Sentence, b: Sentence) -> bool:
    """Same words twice: the same sentence seen in two overlapping passages."""
    return a.text == b.text or (a.hit.chunk.id == b.hit.chunk.id and a.start < b.end and b.start < a.end)


def _with_citations(
    question: str, chosen: list[Sentence], closest: tuple[str, ...], score: float, lang: str, hits: Sequence[Hit]
) -> Answer:
    numbers: dict[str, int] = {}
    citations: list[Citation] = []
    parts: list[str] = []
    for sentence in chosen:
        chunk = sentence.hit.chunk
        n = numbers.setdefault(chunk.id, len(numbers) + 1)
        citation = Citation(
            n=n,
            article_id=chunk.article_id,
            article=chunk.article_title,
            chunk_id=chunk.id,
            text=chunk.text,
            quote=sentence.text,
            quote_start=sentence.start,
            quote_end=sentence.end,
            chunk_start=chunk.start,
            chunk_end=chunk.end,
        )
        if not citation.is_valid():  # cannot happen by construction; never show an unchecked quote
            continue
        citations.append(citation)
        parts.append(f"{' '.join(sentence.text.split())} [{n}]")  # the quote itself stays verbatim
    return Answer(question, " ".join(parts), False, tuple(citations), closest, score, lang, tuple(hits))


def answer(
    retriever: Retriever,
    question: str,
    history: Sequence[str] = (),
    *,
    k: int | None = None,
    mode: Mode | None = None,
    settings: AnswerSettings = DEFAULT_ANSWER_SETTINGS,
) -> Answer:
    """Retrieve passages for ``question`` (asked after ``history``) and compose the answer.

    Raises:
        QuestionError: the question is empty or too long.
    """
    hits = search_with_history(retriever, question, history, k=k, mode=mode)
    return compose(question, hits, retriever, settings, history=history)
