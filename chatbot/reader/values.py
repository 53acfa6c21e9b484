"""The values every reader produces and every interface shows: an answer, its citations
(verbatim quotes at checked offsets), the sentences a reader weighs, progress while it works;
the narrow view of the index a reader reads (:class:`Library`) and the transport to a language
model (:class:`Writer`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar

import numpy as np

from chatbot.chunking import Chunk, sentence_spans
from chatbot.links import text_fragment_url

if TYPE_CHECKING:
    from chatbot.backends.base import Ranking
    from chatbot.chunking import Hit
    from chatbot.embedding import Embedder
    from chatbot.model_queue import Waiting
    from chatbot.settings import Settings

T = TypeVar("T")

NOT_FOUND = {
    "fr": "Je ne trouve pas la réponse dans les articles.",
    "en": "I cannot find the answer in the articles.",
}


@dataclass(frozen=True)
class AnswerSettings:
    """How the extractive reader quotes and when it declines (see :mod:`chatbot.reader`)."""

    max_sentences: int = 3
    # A sentence joins the answer when its score is within this margin of the best one.
    # Measured: the best-scored sentence holds the evidence for about 55 % of questions, one
    # of the best three for about 75 %, so close runners-up are worth quoting. A learned
    # sentence ranker (logistic, pairwise, boosted trees) did not beat this score (docs/measurements.md).
    margin: float = 0.15
    # Sentence score: cosine + lexical_weight x share of the question's terms it holds +
    # rank_weight / rank of its passage (cosines on the calibrated scale). 0.25 was chosen with
    # e5-small; with EmbeddingGemma 0.1 wins leaving one set out (evaluation/ablation.py,
    # docs/measurements.md): the stronger embedder needs less help from shared words.
    lexical_weight: float = 0.1
    rank_weight: float = 0.1
    # + enrichment_weight x how much closer the question is to one of the questions written for
    # the sentence at index time (chatbot.reader.enrichment) than to the sentence itself. Measured on
    # the 195 answerable tuning questions (1.5B-written questions): first quote holds the
    # evidence 0.662 -> 0.677 (4 won, 1 lost: numbers asked with other words); 0.75 or more
    # loses hard paraphrases. 0 turns it off.
    enrichment_weight: float = 0.5
    # An interview question that matches well hands most of its score to the answer after it.
    question_carry: float = 0.97
    # Decline when the decline model's probability that the passages answer the question is
    # below this; None: the model's own threshold, chosen on the tuning sets.
    min_probability: float | None = None
    # Optional floor on the cosine of the passage nearest to the question, per language
    # (off by default: the reader model weighs that cosine with the rest).
    min_support: tuple[tuple[str, float], ...] = ()
    min_sentence_chars: int = 25
    # Greetings, thanks and off-topic messages get the help message, not quotes (chatbot.smalltalk).
    small_talk: bool = True

    def __post_init__(self) -> None:
        if self.max_sentences < 1:
            raise ValueError(f"max_sentences must be at least 1, got {self.max_sentences}.")
        if self.margin < 0:
            raise ValueError(f"margin must be 0 or more, got {self.margin}.")


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
    article_url: str = ""  # the article on the blog, when it has a ``url`` (chatbot import writes it)
    url: str = ""  # ``article_url`` with the quote as a text fragment: opens the blog at the quoted words

    @classmethod
    def quoting(cls, n: int, chunk: Chunk, quote: str, start: int, end: int) -> Citation:
        """Marker ``n`` quoting ``chunk.text[start:end]`` (``quote``), with its links back."""
        return cls(
            n=n,
            article_id=chunk.article_id,
            article=chunk.article_title,
            chunk_id=chunk.id,
            text=chunk.text,
            quote=quote,
            quote_start=start,
            quote_end=end,
            chunk_start=chunk.start,
            chunk_end=chunk.end,
            article_url=chunk.article_url,
            url=text_fragment_url(chunk.article_url, quote),
        )

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
    reader: str = "extractive"  # the reader that produced the answer (chatbot.reader.READERS)
    note: str = ""  # shown under the answer, e.g. why the LLM answer was not used
    reason: str = ""  # why the reader declined (logs, --json), not shown as the answer
    citations_dropped: int = 0
    # The sentences the reader found closest to the question, best first: what a model reads,
    # and the closest passage shown beside an abstention. Not part of the answer's JSON.
    evidence: tuple[Sentence, ...] = field(default=(), compare=False, repr=False)

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
            "reader": self.reader,
            "note": self.note,
            "reason": self.reason,
            "citations_dropped": self.citations_dropped,
        }


@dataclass(frozen=True)
class Progress:
    """What is happening while an answer is prepared (the interfaces word it).

    ``stage``: ``search`` (retrieving), ``read`` (reading ``passages`` passages), ``queue``
    (waiting for the model: ``position`` in line, ``expected_s`` seconds), ``write`` (the
    model writes from ``passages`` passages).
    """

    stage: str
    passages: int = 0
    position: int = 0
    expected_s: float = 0.0


@dataclass(frozen=True)
class Sentence:
    hit: Hit
    start: int
    end: int
    text: str
    score: float = 0.0
    position: int = 0  # among all the sentences of the chunk: the row of its stored vector
    joined: bool = False  # two sentences quoted as one: an interview answer with its question, or a thread


def split_sentences(hit: Hit, min_chars: int) -> list[Sentence]:
    """Sentences of a passage with their offsets in it (lines count as sentence ends), those
    shorter than ``min_chars`` left out."""
    return [
        Sentence(hit, start, end, hit.chunk.text[start:end], position=position)
        for position, (start, end) in enumerate(sentence_spans(hit.chunk.text))
        if end - start >= min_chars
    ]


def with_citations(
    question: str, chosen: list[Sentence], closest: tuple[str, ...], score: float, lang: str, hits: Sequence[Hit]
) -> Answer:
    """Number the passages of ``chosen`` in order of first quote and check every quote is verbatim."""
    numbers: dict[str, int] = {}
    citations: list[Citation] = []
    parts: list[str] = []
    for sentence in chosen:
        chunk = sentence.hit.chunk
        n = numbers.setdefault(chunk.id, len(numbers) + 1)
        citation = Citation.quoting(n, chunk, sentence.text, sentence.start, sentence.end)
        if not citation.is_valid():  # cannot happen by construction; never show an unchecked quote
            continue
        citations.append(citation)
        parts.append(f"{' '.join(sentence.text.split())} [{n}]")  # the quote itself stays verbatim
    return Answer(question, " ".join(parts), False, tuple(citations), closest, score, lang, tuple(hits))


class Library(Protocol):
    """The index as a reader sees it."""

    settings: Settings
    embedder: Embedder

    @property
    def chunks(self) -> tuple[Chunk, ...]: ...

    def query_vector(self, text: str) -> np.ndarray:
        """The question's unit vector (1 x dim)."""
        ...

    def nearest(self, query: np.ndarray, depth: int) -> Ranking:
        """The ``depth`` passages nearest to a question vector."""
        ...

    def next_chunk(self, chunk: Chunk) -> Chunk | None:
        """The passage after ``chunk`` in its article, if any."""
        ...

    def sentence_vectors_of(self, chunks: Sequence[Chunk]) -> list[np.ndarray]:
        """Each passage's sentence vectors, in sentence order."""
        ...

    def derived(self, name: str, load: Callable[[], T], follow: Callable[[T], T] | None = None) -> T:
        """``load()``, once per build of the index; ``follow(old)`` makes it for a new build
        from the one it replaces, before questions reach the new build."""
        ...


class Writer(Protocol):
    """A transport to a language model: streams its reply to ``messages`` (text deltas), and
    its place in line while it waits for the model (:class:`~chatbot.model_queue.Waiting`).

    Raises (any of): :class:`~chatbot.errors.ChatbotError` (model missing, busy),
    ``TimeoutError``, ``OSError``, ``openai.OpenAIError``: the reader falls back.
    """

    @property
    def label(self) -> str: ...

    def write(self, messages: list[dict[str, str]], max_tokens: int) -> Iterator[str | Waiting]: ...
