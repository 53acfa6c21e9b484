"""Enrichment at index time: for every sentence worth quoting, the questions it answers.

A question rarely uses the article's words («l'ancienne colonie britannique» for Hong Kong);
a question written *from* the sentence is closer to it than the sentence itself. A language
model (the bundled local one, or a configured server: any :class:`chatbot.reader.values.Writer`) writes
two French questions per sentence; they are stored in a plain JSONL file beside the corpus
(``<corpus>/enrichment.jsonl``), one line per sentence, keyed by the article id and the
sentence's own text (a content hash: only new or changed sentences are written again), with
the model and the prompt version that made them. Their vectors are computed once per
embedder and file and kept under the index folder. They are never shown as quotes: the
reader (:mod:`chatbot.reader`) only scores a sentence by its nearest generated question.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from chatbot.backends.build import write_cache
from chatbot.chunking import Chunk
from chatbot.errors import ChatbotError

if TYPE_CHECKING:
    from chatbot.embedding import Embedder
    from chatbot.reader.values import Writer

logger = logging.getLogger(__name__)

FILENAME = "enrichment.jsonl"
PROMPT_VERSION = 1
MIN_CHARS = 25  # as the reader's shortest quotable sentence (AnswerSettings.min_sentence_chars)
MAX_QUESTIONS = 3
SYSTEM = (
    "Tu écris les questions auxquelles une phrase d'un article répond.\n"
    "Écris deux questions courtes en français, une par ligne, sans numéro : chacune demande le fait précis que "
    "donne la phrase, avec d'autres mots que les siens (synonymes, tournures d'un lecteur), et nomme son sujet."
)
# Two examples, written for the prompt (not from the corpus): what a good pair looks like.
EXAMPLES = (
    (
        "Article : La santé numérique à Lyon\n"
        "Phrase : La ville compte aujourd’hui 120 start-up de la santé, contre 40 en 2015.",
        "Combien de jeunes entreprises du secteur médical Lyon accueille-t-elle ?\n"
        "Comment le nombre de start-up de santé lyonnaises a-t-il évolué depuis 2015 ?",
    ),
    (
        "Article : Les freins au télétravail\n"
        "Phrase : Pour la fondatrice, le principal obstacle reste la peur des managers de perdre le contrôle.",
        "Qu'est-ce qui freine le plus le travail à distance selon la fondatrice ?\n"
        "Pourquoi les responsables hésitent-ils à laisser leurs équipes travailler de chez elles ?",
    ),
)
_QUESTION_LINE = re.compile(r"^\s*(?:[-*•]|\d+[.)]|Q\d*\s*:)?\s*(.+?\?)\s*$")


class EnrichmentError(ChatbotError):
    """The enrichment file cannot be read (its line is named)."""


@dataclass(frozen=True)
class SentenceQuestions:
    """The questions a sentence of an article answers, and what wrote them."""

    article_id: str
    sentence: str  # whitespace-normalised
    questions: tuple[str, ...]
    model: str
    prompt: int = PROMPT_VERSION

    @property
    def key(self) -> str:
        return sentence_key(self.article_id, self.sentence)

    def to_json(self) -> str:
        row = {"article_id": self.article_id, "sentence": self.sentence, "questions": list(self.questions),
               "model": self.model, "prompt": self.prompt}  # fmt: skip
        return json.dumps(row, ensure_ascii=False)


def sentence_key(article_id: str, sentence: str) -> str:
    """The sentence's content hash within its article."""
    return hashlib.sha256(f"{article_id}\n{' '.join(sentence.split())}".encode()).hexdigest()[:20]


def worth_enriching(sentence: str) -> bool:
    """The sentences a reader may quote: long enough, not a question, not a bare link."""
    text = " ".join(sentence.split())
    return len(text) >= MIN_CHARS and not text.endswith("?") and not text.startswith(("http://", "https://"))


def load_enrichment(path: Path) -> dict[str, SentenceQuestions]:
    """The rows of an enrichment file by :func:`sentence_key` (a later line replaces an earlier
    one); an absent file is an empty enrichment.

    Raises:
        EnrichmentError: a line is not a valid row (its number is given).
    """
    rows: dict[str, SentenceQuestions] = {}
    try:
        lines = path.read_text("utf-8").splitlines()
    except FileNotFoundError:
        return rows
    except (OSError, UnicodeDecodeError) as exc:
        raise EnrichmentError(f"Cannot read the enrichment file {path}: {exc}") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            row = SentenceQuestions(
                article_id=str(raw["article_id"]),
                sentence=" ".join(str(raw["sentence"]).split()),
                questions=tuple(str(q) for q in raw["questions"]),
                model=str(raw.get("model", "")),
                prompt=int(raw.get("prompt", PROMPT_VERSION)),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise EnrichmentError(
                f"{path}, line {number}: not an enrichment row ({exc}); fix or delete the line, "
                "then run `chatbot index --enrich local` to write it again."
            ) from exc
        rows[row.key] = row
    return rows


def parse_questions(text: str, limit: int = MAX_QUESTIONS) -> tuple[str, ...]:
    """The questions of a model's reply: one per line, numbering and bullets removed, each
    ending with «?», between 10 and 200 characters, no duplicates."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        match = _QUESTION_LINE.match(line)
        if not match:
            continue
        question = " ".join(match.group(1).split()).strip("«»\"' ")
        if 10 <= len(question) <= 200:
            found.setdefault(question.casefold(), question)
    return tuple(found.values())[:limit]


def messages_for(title: str, before: str, sentence: str) -> list[dict[str, str]]:
    """The prompt for one sentence: fixed instructions first (llama.cpp reuses their cache)."""
    context = f"Phrase précédente : {' '.join(before.split())}\n" if before else ""
    figure = re.search(r"\d[\d\s,.]*\s*(?:%|€|\$|millions?|milliards?)?", sentence)
    hint = f"\n(La première question demande « {figure.group().strip()} ».)" if figure else ""
    user = f"Article : {title}\n{context}Phrase : {' '.join(sentence.split())}{hint}"
    shots = [m for asked, written in EXAMPLES for m in ({"role": "user", "content": asked},
                                                        {"role": "assistant", "content": written})]  # fmt: skip
    return [{"role": "system", "content": SYSTEM}, *shots, {"role": "user", "content": user}]


@dataclass(frozen=True)
class Pending:
    """A sentence to enrich, with what the model reads beside it."""

    article_id: str
    title: str
    before: str
    sentence: str


def pending(chunks: Iterable[Chunk], done: dict[str, SentenceQuestions]) -> list[Pending]:
    """The sentences of ``chunks`` worth quoting that ``done`` has no questions for, once each."""
    todo: dict[str, Pending] = {}
    for chunk in chunks:
        sentences = chunk.sentences()
        for i, sentence in enumerate(sentences):
            key = sentence_key(chunk.article_id, sentence)
            if worth_enriching(sentence) and key not in done and key not in todo:
                before = sentences[i - 1] if i else ""
                todo[key] = Pending(chunk.article_id, chunk.article_title, before, sentence)
    return list(todo.values())


def enrich(
    todo: Sequence[Pending], writer: Writer, path: Path, model: str, max_tokens: int = 120
) -> Iterator[SentenceQuestions]:
    """Ask ``writer`` for the questions of each pending sentence and append each row to
    ``path`` as soon as it is written (an interrupted run keeps what it did). Yields the rows.

    Raises:
        Whatever the writer raises (:class:`chatbot.reader.values.Writer`).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        for item in todo:
            reply = "".join(d for d in writer.write(messages_for(item.title, item.before, item.sentence), max_tokens)
                            if isinstance(d, str))  # fmt: skip
            row = SentenceQuestions(item.article_id, " ".join(item.sentence.split()), parse_questions(reply), model)
            out.write(row.to_json() + "\n")
            out.flush()
            yield row


class QuestionVectors:
    """The generated questions' vectors, by sentence: embedded once per (file, embedder) and
    kept in ``<index>/enrichment/<digest>.npy`` with the keys beside it in JSON."""

    def __init__(self, rows: dict[str, SentenceQuestions], keys: list[str], vectors: np.ndarray) -> None:
        self._rows: dict[str, tuple[int, int]] = {}
        start = 0
        for key in keys:
            count = len(rows[key].questions)
            self._rows[key] = (start, start + count)
            start += count
        self._vectors = vectors

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def vectors(self) -> np.ndarray:
        """Every generated question's vector, one row each."""
        return self._vectors

    def of(self, article_id: str, sentence: str) -> np.ndarray:
        """The vectors of the questions written for this sentence (0 rows when none)."""
        start, end = self._rows.get(sentence_key(article_id, sentence), (0, 0))
        return self._vectors[start:end]

    @classmethod
    def load(cls, corpus_dir: Path, index_dir: Path, embedder: Embedder, embedder_name: str) -> QuestionVectors:
        """The vectors for ``<corpus_dir>/enrichment.jsonl`` (none when the file is absent).

        Raises:
            EnrichmentError: the file cannot be read.
        """
        path = corpus_dir / FILENAME
        rows = {k: r for k, r in load_enrichment(path).items() if r.questions}
        keys = sorted(rows)
        if not keys:
            return cls({}, [], np.zeros((0, 1), dtype=np.float32))
        digest = hashlib.sha256(
            json.dumps([embedder_name, [(k, rows[k].questions) for k in keys]], ensure_ascii=False).encode()
        ).hexdigest()[:20]
        cache = index_dir / "enrichment" / f"{digest}.npy"
        try:
            vectors = np.load(cache, allow_pickle=False)
        except (OSError, ValueError):
            texts = [q for k in keys for q in rows[k].questions]
            vectors = np.ascontiguousarray(embedder.encode_queries(texts), dtype=np.float32)
            buffer = io.BytesIO()
            np.save(buffer, vectors, allow_pickle=False)
            write_cache(cache, buffer.getvalue())
        if vectors.ndim != 2 or len(vectors) != sum(len(rows[k].questions) for k in keys):
            raise EnrichmentError(f"The enrichment cache {cache} does not match {path}; delete it.")
        return cls(rows, keys, vectors)
