"""Finding the passages that answer a question: French BM25, dense vectors, and their fusion."""

from __future__ import annotations

import functools
import logging
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from chatbot import analysis
from chatbot.backends import load_backend
from chatbot.backends.base import Ranking, SearchBackend
from chatbot.chunking import Chunk, Hit
from chatbot.conversation import fitting_context, is_short, previous_question
from chatbot.errors import (
    BackendError,
    ChatbotError,
    EmptyQuestionError,
    IndexStateError,
    ModelError,
    QuestionTooLongError,
)
from chatbot.settings import Mode, Settings

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder

    from chatbot.embedding import Embedder

logger = logging.getLogger(__name__)


_QUERY_CACHE = 1024  # recent questions' vectors (3 MB at 768 dimensions): a fit reads each question twice


def clean_question(question: str, max_chars: int) -> str:
    """Strip control characters and lone surrogates; refuse empty or over-long questions.

    Raises:
        EmptyQuestionError: nothing is left to search.
        QuestionTooLongError: the question is longer than ``max_chars``.
    """
    text = "".join(" " if unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") else ch for ch in str(question))
    text = " ".join(text.split())
    if not text:
        raise EmptyQuestionError("The question is empty.")
    if len(text) > max_chars:
        raise QuestionTooLongError(len(text), max_chars)
    return text


Key = TypeVar("Key", int, str)
T = TypeVar("T")


def rrf_fuse(rankings: list[tuple[list[tuple[Key, float]], float]], k: int) -> list[tuple[Key, float]]:
    """Weighted reciprocal rank fusion: each list adds ``weight / (k + rank)`` to its items."""
    scores: dict[Key, float] = {}
    for ranking, weight in rankings:
        for rank, (row, _) in enumerate(ranking, start=1):
            scores[row] = scores.get(row, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


class _Generation:
    """One loaded build of the index, what is derived from its chunks (built on first use:
    named entities, generated questions, small talk), and who is answering from it."""

    def __init__(self, index: SearchBackend) -> None:
        self.index = index
        self.rows = {chunk.id: row for row, chunk in enumerate(index.chunks)}
        self.extras: dict[str, Any] = {}
        self.extras_lock = threading.Lock()  # its own: deriving a new build's never blocks the old one's
        self.users = 0  # runs pinned to it (Retriever.pinned)
        self.retired = False  # a newer build replaced it: closed once no run uses it


class Retriever:
    """Searches one index, whichever backend serves it (``settings.backend``). Loads the index
    at once and the embedding model on first dense query.

    A build replaces the index while a server runs: :meth:`refresh` follows the pointer to the
    new build (the old one answers until the new one is loaded), :meth:`pinned` answers a
    question from one build from start to end, once more from the new one if the old one's
    data went meanwhile (Milvus drops a replaced build's collections).
    """

    REFRESH_EVERY_S = 1.0  # how often refresh() reads the pointer (a small file, one Milvus query)

    def __init__(self, settings: Settings, embedder: Embedder | None = None, index: SearchBackend | None = None):
        self.settings = settings
        self._current = _Generation(index if index is not None else load_backend(settings))
        if embedder is None:
            from chatbot.embedding import SentenceTransformerEmbedder

            embedder = SentenceTransformerEmbedder(settings.model, batch_size=settings.batch_size)
        self.embedder = embedder
        # A conversation encodes the same text several times (search, follow-up fusion, answer
        # scoring); the model call dominates the cost, so the last vectors are kept.
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._pins = threading.local()  # the generation this thread's run answers from
        self._swap_lock = threading.Lock()  # the current generation and the users counts
        self._reload_lock = threading.Lock()  # one load of a newer build at a time
        self._checked = time.monotonic()
        self._unloadable: str | None = None  # a newer build that failed to load: not retried
        self._follow: dict[str, Callable[[Any], Any]] = {}  # derived(): how a new build gets each

    @property
    def _gen(self) -> _Generation:
        pinned: _Generation | None = getattr(self._pins, "generation", None)
        return pinned or self._current

    @property
    def index(self) -> SearchBackend:
        """The loaded build: the one this thread's :meth:`pinned` run answers from, else the newest."""
        return self._gen.index

    @property
    def generation(self) -> str:
        """The name of the build :attr:`index` is."""
        return self._gen.index.generation

    @property
    def chunks(self) -> tuple[Chunk, ...]:
        return self.index.chunks

    def refresh(self, *, now: bool = False) -> bool:
        """Follow the pointer: when a newer build is in use, load it (the one loaded answers
        meanwhile, and questions already under way finish on it) and make it the one questions
        get. The pointer is read at most every :attr:`REFRESH_EVERY_S` seconds, or at once with
        ``now`` (a question failed). Never raises: a pointer that cannot be read, or a build that
        cannot be loaded, is logged and the loaded build answers on.

        Returns:
            Whether this call switched to a newer build.
        """
        if not now and time.monotonic() - self._checked < self.REFRESH_EVERY_S:
            return False
        if not self._reload_lock.acquire(blocking=now):
            return False  # another thread is loading it; this one answers from the loaded build
        try:
            self._checked = time.monotonic()
            current = self._current
            try:
                latest = current.index.latest()
            except ChatbotError as exc:
                logger.warning(
                    "Cannot read which build of the index is in use; answering from %s: %s",
                    current.index.generation,
                    exc,
                )
                return False
            if latest == current.index.generation or (latest == self._unloadable and not now):
                return False
            loaded: SearchBackend | None = None
            try:
                loaded = load_backend(self.settings)
                fresh = _Generation(loaded)
                self._prepare(fresh, like=current)
            except (ChatbotError, OSError) as exc:
                if loaded is not None:
                    loaded.close()
                self._unloadable = latest
                logger.warning(
                    "The new index %s cannot be loaded; answering from %s: %s", latest, current.index.generation, exc
                )
                return False
            with self._swap_lock:
                old, self._current = self._current, fresh
                old.retired = True
                idle = old.users == 0
            if idle:
                old.index.close()
            logger.info(
                "Now answering from the index's build %s (was %s).", fresh.index.generation, old.index.generation
            )
            return True
        finally:
            self._reload_lock.release()

    def pinned(self, run: Callable[[], T]) -> T:
        """``run()`` (a whole answer) on one build of the index, from start to end, even if
        another thread switches to a newer one meanwhile. When it fails because its build was
        replaced (Milvus dropped its collections, say), it runs once more on the new build.

        Raises:
            What ``run`` raises.
        """
        if getattr(self._pins, "generation", None) is not None:
            return run()  # already pinned by an outer run
        generation = self._enter()
        try:
            return self._run_on(generation, run)
        except (BackendError, IndexStateError) as exc:
            # Retried only on a newer build (switched to by another thread, or now): the same
            # failure on the build in use is the caller's.
            if self._current is generation:
                self.refresh(now=True)
            if self._current is generation:
                raise
            logger.info("The index was replaced while answering (%s); answering again from the new build.", exc)
        return self._run_on(self._enter(), run)

    def _enter(self) -> _Generation:
        """The current build, counted among its users (until :meth:`_run_on` ends)."""
        with self._swap_lock:
            generation = self._current
            generation.users += 1
        return generation

    def _run_on(self, generation: _Generation, run: Callable[[], T]) -> T:
        """``run()`` pinned to ``generation`` (entered by :meth:`_enter`)."""
        self._pins.generation = generation
        try:
            return run()
        finally:
            self._pins.generation = None
            with self._swap_lock:
                generation.users -= 1
                idle = generation.retired and generation.users == 0
            if idle:
                generation.index.close()

    def _prepare(self, fresh: _Generation, *, like: _Generation) -> None:
        """Derive now, for a newly loaded build, what questions used on the one it replaces and
        :meth:`derived` was told how to follow (the named entities from their cache, the small
        talk with the examples' vectors reused: the model is not called here), so that the first
        question on it does not wait; the rest is derived on first use."""
        pinned = getattr(self._pins, "generation", None)
        self._pins.generation = fresh
        try:
            for name, follow in list(self._follow.items()):
                if name in like.extras:
                    fresh.extras[name] = follow(like.extras[name])
        finally:
            self._pins.generation = pinned

    def search(self, question: str, *, k: int | None = None, mode: Mode | None = None) -> list[Hit]:
        """The ``k`` best chunks for ``question`` in ``mode`` (defaults from the settings).

        Raises:
            QuestionError: the question is empty or too long.
            ModelError: the embedding (or reranking) model cannot be loaded.
        """
        text = clean_question(question, self.settings.max_question_chars)
        k = k or self.settings.top_k
        mode = mode or self.settings.mode
        depth = max(k, self.settings.candidates)
        if mode == "bm25":
            ranking = self.keyword(text, depth)
        elif mode == "dense":
            ranking = self.dense(text, depth)
        elif mode == "hybrid":
            ranking = self.hybrid(text, depth)
        else:
            raise ValueError(f"Unknown mode {mode!r}; use bm25, dense or hybrid.")
        if self.settings.reranker:
            ranking = self._rerank(text, ranking[:depth])
        return [Hit(self.chunks[row], float(score), rank) for rank, (row, score) in enumerate(ranking[:k], start=1)]

    def hybrid(self, text: str, depth: int) -> Ranking:
        """Fuse the keyword and dense rankings as the settings say (z-score or RRF).

        z-score: each signal is standardised over the candidates of both retrievers and the
        signals are added with their weights: BM25 (``bm25_weight_en`` for an English question),
        the chunk's cosine, and its best sentence's cosine when the index stores sentence vectors.
        """
        bm25_weight = self.bm25_weight(text)
        if self.settings.fusion == "rrf":
            lists = [(self.keyword(text, depth), bm25_weight), (self.dense(text, depth), self.settings.dense_weight)]
            return rrf_fuse(lists, self.settings.rrf_k)
        query = self.query_vector(text)
        keyword = self.keyword(text, depth) if bm25_weight else []
        dense = self.nearest(query, depth)
        rows = np.array(sorted({row for row, _ in keyword} | {row for row, _ in dense}), dtype=np.int64)
        bm25_scores = dict(keyword)
        # Rows that only BM25 found need their dense score too.
        signals = [
            (bm25_weight, np.array([bm25_scores.get(int(r), 0.0) for r in rows])),
            (self.settings.dense_weight, self.index.chunk_scores(rows, query[0])),
        ]
        if self.settings.sentence_weight and self.settings.sentence_vectors:
            signals.append((self.settings.sentence_weight, self.index.best_sentence_scores(rows, query[0])))
        fused = np.zeros(len(rows))
        for weight, scores in signals:
            if weight:
                fused += weight * _zscore(scores)
        order = np.argsort(-fused, kind="stable")
        return [(int(rows[i]), float(fused[i])) for i in order]

    def bm25_weight(self, text: str) -> float:
        """The keyword signal's weight in hybrid search: lower for a question in English."""
        if analysis.detect_language(text) == "en":
            return self.settings.bm25_weight_en
        return self.settings.bm25_weight

    def keyword(self, text: str, depth: int) -> Ranking:
        """BM25 over the French analysis; chunks that share no term with the question are left out."""
        return self.index.keyword(text, depth)

    def dense(self, text: str, depth: int) -> Ranking:
        """Inner product between the question's vector and every chunk's."""
        return self.nearest(self.query_vector(text), depth)

    def query_vector(self, text: str) -> np.ndarray:
        """The question's vector (shape 1 x dim), encoded once for recent questions."""
        text = " ".join(text.split())
        with self._lock:
            vector = self._vectors.pop(text, None)
        if vector is None:
            vector = np.ascontiguousarray(self.embedder.encode_queries([text]), dtype=np.float32)
        with self._lock:
            self._vectors[text] = vector
            while len(self._vectors) > _QUERY_CACHE:
                self._vectors.popitem(last=False)
        return vector

    def next_chunk(self, chunk: Chunk) -> Chunk | None:
        """The passage that follows ``chunk`` in its article, if any."""
        generation = self._gen
        row = generation.rows.get(chunk.id)
        chunks = generation.index.chunks
        if row is None or row + 1 >= len(chunks):
            return None
        after = chunks[row + 1]
        return after if after.article_id == chunk.article_id and after.position == chunk.position + 1 else None

    def sentence_vectors_of(self, chunks: Sequence[Chunk]) -> list[np.ndarray]:
        """The vectors of each chunk's sentences (rows in :func:`sentence_spans` order): stored in
        the index and read at once (one round trip to a Milvus server for an answer's passages,
        not one a passage), or embedded now, in one call, when it was built without them."""
        if self.settings.sentence_vectors:
            generation = self._gen
            return generation.index.sentence_rows_of([generation.rows[chunk.id] for chunk in chunks])
        if not chunks:
            return []
        sentences = [chunk.sentences() for chunk in chunks]
        texts = [text for group in sentences for text in group]
        vectors = np.asarray(self.embedder.encode_documents(texts), dtype=np.float32).reshape(len(texts), -1)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        ends = np.cumsum([len(group) for group in sentences])
        return list(np.split(vectors, ends[:-1]))

    def derived(self, name: str, load: Callable[[], T], follow: Callable[[T], T] | None = None) -> T:
        """What ``load`` gives, computed once per build of the index, whichever thread asks
        first (a reader's caches: :mod:`chatbot.reader.library`). ``follow(old)`` makes it for a
        newly loaded build from the one it replaces, before questions reach the new build."""
        generation = self._gen
        with generation.extras_lock:
            if follow is not None:
                self._follow.setdefault(name, follow)
            if name not in generation.extras:
                generation.extras[name] = load()
            return generation.extras[name]  # type: ignore[no-any-return]

    def clear_query_cache(self) -> None:
        """Forget the kept question vectors (benchmarks measure the model, not the cache)."""
        with self._lock:
            self._vectors.clear()

    def nearest(self, query: np.ndarray, depth: int) -> Ranking:
        """The ``depth`` chunks nearest to an already-encoded question vector (shape 1 x dim)."""
        return self.index.nearest(query, depth)

    def _rerank(self, text: str, ranking: Ranking) -> Ranking:
        if not ranking:
            return ranking
        model = _cross_encoder(self.settings.reranker or "")
        pairs = [(text, self.chunks[row].indexed_text(True)) for row, _ in ranking]
        scores = model.predict(pairs, show_progress_bar=False)
        order = np.argsort(-np.asarray(scores), kind="stable")
        return [(ranking[i][0], float(scores[i])) for i in order]


def _zscore(values: np.ndarray) -> np.ndarray:
    """Standardise scores so that BM25 and cosine scores can be added."""
    spread = float(values.std())
    return (values - values.mean()) / spread if spread > 0 else np.zeros_like(values)


@functools.lru_cache(maxsize=2)
def _cross_encoder(name: str) -> CrossEncoder:
    from sentence_transformers import CrossEncoder

    try:
        return CrossEncoder(name, device="cpu")
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"Cannot load reranker {name!r}: {exc}. Give a local CrossEncoder folder or no reranker."
        ) from exc


def search_with_history(
    retriever: Retriever,
    question: str,
    history: Sequence[str] = (),
    *,
    k: int | None = None,
    mode: Mode | None = None,
) -> list[Hit]:
    """Search for ``question`` asked after the earlier questions ``history`` (oldest first).

    The question is searched with the previous one prepended, so pronouns and ellipses get
    their subject, and on its own, so a new topic still wins; the two rankings are fused,
    the contextual one weighing more when the question is short. Only ``question`` is held to
    ``max_question_chars``: the previous one is trimmed to fit beside it (:func:`fitting_context`).

    Raises:
        QuestionError: ``question`` is empty or too long (whatever the history).
    """
    limit = retriever.settings.max_question_chars
    question = clean_question(question, limit)
    previous = fitting_context(previous_question(history), question, limit)
    if not previous:
        return retriever.search(question, k=k, mode=mode)
    k = k or retriever.settings.top_k
    depth = max(k, retriever.settings.candidates)
    contextual = retriever.search(f"{previous} {question}", k=depth, mode=mode)
    alone = retriever.search(question, k=depth, mode=mode)
    weights = (1.0, 0.5) if is_short(question) else (1.0, 1.0)
    by_id = {h.chunk.id: h.chunk for h in contextual + alone}
    fused = rrf_fuse(
        [
            ([(h.chunk.id, h.score) for h in contextual], weights[0]),
            ([(h.chunk.id, h.score) for h in alone], weights[1]),
        ],
        retriever.settings.rrf_k,
    )
    return [Hit(by_id[key], score, rank) for rank, (key, score) in enumerate(fused[:k], start=1)]
