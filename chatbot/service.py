"""The answering service every interface calls: the chat (:mod:`chatbot.app`), the API
(:mod:`chatbot.api`) and the CLI. One retriever per process, one reader, the answers shown (for
feedback), the question log (opt-in), the suggested questions and the articles as indexed. No
web framework here."""

from __future__ import annotations

import collections
import logging
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from chatbot import synonyms
from chatbot.access import Guard
from chatbot.answer import Answer, Progress, answer
from chatbot.chunking import Chunk, article_text_from_chunks
from chatbot.corpus import load_corpus
from chatbot.errors import ChatbotError, CorpusError
from chatbot.feedback import Feedback, FeedbackLog
from chatbot.local_model import LocalWriter
from chatbot.questionlog import QuestionEntry, QuestionLog, gap_text, is_small_talk
from chatbot.reader import Reader, make_reader
from chatbot.reader.writer import LLMConfig, ModelReader
from chatbot.retrieval import Retriever
from chatbot.settings import MODES, Settings
from chatbot.suggestions import Suggestions

__all__ = ["ChatService", "IndexedArticle", "Shown"]

logger = logging.getLogger(__name__)

REMEMBERED = 2000  # answers kept in memory for feedback


@dataclass(frozen=True)
class Shown:
    """An answer as the chat showed it, kept for feedback."""

    question: str
    history: tuple[str, ...]
    result: Answer


@dataclass(frozen=True)
class IndexedArticle:
    """An article as the index holds it: the text its passages' offsets point into. ``stale``:
    the corpus file changed or went since the index was built, so the text is rebuilt from the
    index's passages (the spaces between them guessed)."""

    id: str
    title: str
    text: str
    stale: bool = False


class ChatService:
    """One retriever per process, loaded on first use and shared by every conversation; the
    reader that answers (extractive unless another is given; ``llm`` gives the server reader);
    the articles for the article view, as indexed; the answers shown, for feedback.

    With a ``guard``, every client's questions and feedback writes are limited; the chat and
    the API (:mod:`chatbot.api`) count against the same limits.

    Thread-safe: one lock loads the retriever, one serialises reading (the embedding model),
    one guards the answers shown (a vote never waits for someone's answer); the views of the
    index (articles, passage positions) are made once per build of it, by the retriever
    (:meth:`Retriever.derived`).
    """

    def __init__(
        self,
        settings: Settings,
        retriever: Retriever | None = None,
        llm: LLMConfig | None = None,
        reader: Reader | None = None,
        feedback: FeedbackLog | None = None,
        guard: Guard | None = None,
        questions: QuestionLog | None = None,
    ) -> None:
        self.settings = settings
        self.reader = reader or make_reader(None, llm)
        self.feedback = feedback or FeedbackLog()
        self.guard = guard  # per-client limits (chatbot serve); None: none
        self.questions = questions  # the question log (CHATBOT_QUESTION_LOG); None: off
        # Checked with the extractive reader, alone, as a question asked first, once per index
        # build (chatbot.suggestions).
        self.suggestions = Suggestions(
            settings.corpus_dir, lambda question: self.ask(question), lambda: self.retriever.generation
        )
        self._retriever = retriever
        self._load_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._shown_lock = threading.Lock()
        self._shown: collections.OrderedDict[str, Shown] = collections.OrderedDict()

    def warm(self) -> None:
        """Load now what the first question would wait for: the embedding model, and what the
        reader derives from the index (:func:`chatbot.reader.library.warm`)."""
        from chatbot.reader.library import warm

        self.retriever.search("démarrage")
        warm(self.retriever)

    def warm_in_background(self) -> None:
        """Load now, in the background, what a first question would wait for (the page opens
        meanwhile): the word vectors of count questions, the suggested questions, and a writing
        reader's model."""
        reader = self.reader if isinstance(self.reader, ModelReader) else None

        def warm() -> None:
            synonyms.warm()  # without them, count questions read exact words (it says so)
            self.suggestions.build()  # each one answered once: until then the page shows none
            if reader is None:
                return
            try:
                reader.warm()
            except Exception as exc:  # the chat still answers: each question falls back
                logger.warning("The language model could not be warmed up: %s", exc)

        threading.Thread(target=warm, name="warm-model", daemon=True).start()

    @property
    def retriever(self) -> Retriever:
        with self._load_lock:
            if self._retriever is None:
                self._retriever = Retriever(self.settings)
            return self._retriever

    def admit(self, client: str | None) -> None:
        """Count a question of ``client`` (no limit without a guard or a client).

        Raises:
            RateLimitedError: the client is over its question limit.
        """
        if self.guard is not None and client is not None:
            self.guard.question(client)

    def ask(self, question: str, history: Sequence[str] = (), k: int | None = None, mode: str | None = None) -> Answer:
        """The extractive answer (retrieval included): the answer, or a writing reader's fallback.

        Raises:
            QuestionError: the question is empty or too long.
            IndexStateError, BackendError, ModelError: the index or the embedder cannot be used.
        """
        retriever = self.retriever
        extractive: Reader = self.reader.extractive if isinstance(self.reader, ModelReader) else self.reader
        # A rebuilt index is loaded here, outside the lock: the others answer from the old one meanwhile.
        retriever.refresh()
        with self._read_lock:  # the embedding model is not guaranteed thread-safe
            return retriever.pinned(  # one build per answer; answered again if its build went
                lambda: answer(
                    retriever,
                    question,
                    history,
                    k=None if k is None else int(k),
                    mode=mode if mode in MODES else None,  # type: ignore[arg-type]
                    reader=extractive,
                )
            )

    def stream(
        self,
        question: str,
        history: Sequence[str] = (),
        turns: Sequence[tuple[str, str]] = (),
        k: int | None = None,
        mode: str | None = None,
        reader: str | None = None,
    ) -> Iterator[Progress | str | Answer]:
        """Progress after the search (the caller shows the search itself), partial texts while
        a model writes, then the final answer: the model's when a model writes
        (``reader="extractive"``: the extractive answer whatever the reader)."""
        extractive = self.ask(question, history, k, mode)
        if not isinstance(self.reader, ModelReader) or reader == "extractive":
            yield extractive
            return
        yield Progress("read", passages=len(extractive.hits))
        yield from self.reader.write(extractive, turns)  # outside the embedder's lock

    def answer(
        self,
        question: str,
        history: Sequence[str] = (),
        turns: Sequence[tuple[str, str]] = (),
        k: int | None = None,
        mode: str | None = None,
    ) -> Answer:
        """The final answer of :meth:`stream` (the CLI, the evaluation)."""
        (result,) = collections.deque(self.stream(question, history, turns, k, mode), maxlen=1)
        assert isinstance(result, Answer)
        return result

    def remember(
        self,
        question: str,
        history: list[str],
        result: Answer,
        *,
        client: str | None = None,
        started: float | None = None,
        via: str = "",
    ) -> str:
        """Keep a shown answer (the most recent ones) and return its id; with the question log
        on, log it (``started``: when the question came, ``time.monotonic()``; ``via``: chat
        or api). A log that cannot be written is reported in the server's log, never to the
        reader."""
        answer_id = uuid.uuid4().hex[:12]
        with self._shown_lock:
            self._shown[answer_id] = Shown(question, tuple(history), result)
            while len(self._shown) > REMEMBERED:
                self._shown.popitem(last=False)
        if self.questions is not None:
            latency = None if started is None else (time.monotonic() - started) * 1000
            try:
                self._log(answer_id, question, history, result, latency, client, via)
            except (OSError, ChatbotError) as exc:
                logger.warning("The question was not logged: %s", exc)
        return answer_id

    def _log(
        self, answer_id: str, question: str, history: list[str], result: Answer, latency_ms: float | None,
        client: str | None, via: str,
    ) -> None:  # fmt: skip
        log = self.questions
        assert log is not None
        vector = None
        if result.abstained and not is_small_talk(result.reason):
            # Its vector groups it with the others by topic in the report; the reader has just
            # encoded this text, so it comes from the retriever's cache.
            with self._read_lock:
                vector = self.retriever.query_vector(gap_text(question, history))[0]
        entry = QuestionEntry.of(
            answer_id, question, history, result, now=log.now(), latency_ms=latency_ms,
            client=log.reader_of(client), via=via, embedder=self.settings.model, vector=vector,
        )  # fmt: skip
        log.record(entry)

    def record_feedback(self, answer_id: str, vote: str, comment: str = "", client: str | None = None) -> Feedback:
        """Append a vote or comment on a shown answer to the feedback file; with a guard, one
        vote and one comment per answer and ``client``, within the client's feedback limit.

        Raises:
            KeyError: no answer with that id was shown (or it is too old).
            ValueError: the vote is not up, down or empty.
            AlreadyVotedError: the client already sent that on this answer.
            RateLimitedError: the client is over its feedback limit.
            OSError: the feedback file cannot be written, or is full (FeedbackFullError).
        """
        with self._shown_lock:
            shown = self._shown[answer_id]
        if vote not in ("up", "down", ""):
            raise ValueError(f"A vote is 'up', 'down' or empty, not {vote!r}.")
        if self.guard is not None and client is not None:
            self.guard.feedback(client, answer_id, "vote" if vote else "comment")
        result = shown.result
        entry = Feedback(
            answer_id=answer_id,
            vote=vote,
            question=shown.question,
            history=shown.history,
            answer=result.text,
            sources=tuple({"n": str(c.n), "article": c.article, "quote": c.quote} for c in result.citations),
            comment=comment.strip()[:2000],
            reader=result.reader,
        )
        self.feedback.append(entry)
        if vote and self.questions is not None:
            try:
                self.questions.vote(answer_id, vote)
            except OSError as exc:
                logger.warning("The vote was not logged with its question: %s", exc)
        return entry

    def articles(self) -> dict[str, IndexedArticle]:
        """The indexed articles by id, with the text the index was built from (so that the
        quotes' offsets fall on the quoted words), made once per build of the index; empty
        while there is no index."""
        try:
            return self.retriever.derived("articles", self._indexed_articles)
        except ChatbotError as exc:
            logger.warning("The articles cannot be shown: %s", exc)
            return {}

    def _indexed_articles(self) -> dict[str, IndexedArticle]:
        """The corpus file's text where it is still the indexed one (same content hash), else
        the text rebuilt from the index's passages."""
        index = self.retriever.index
        try:
            on_disk = load_corpus(self.settings.corpus_dir).by_id()
        except CorpusError as exc:
            logger.warning("The corpus cannot be read; the articles are shown from the index: %s", exc)
            on_disk = {}
        passages: dict[str, list[Chunk]] = {}
        for chunk in index.chunks:
            passages.setdefault(chunk.article_id, []).append(chunk)
        stored = index.manifest["articles"]
        views: dict[str, IndexedArticle] = {}
        for article_id, chunks in passages.items():
            article = on_disk.get(article_id)
            if article is not None and article.content_hash == stored.get(article_id, {}).get("hash"):
                views[article_id] = IndexedArticle(article_id, article.title, article.text)
            else:
                text = article_text_from_chunks(chunks)
                views[article_id] = IndexedArticle(article_id, chunks[0].article_title, text, stale=True)
        return views

    def passage_of(self, chunk_id: str) -> tuple[int, int]:
        """Where a passage sits in its article: (its number from 1, the article's passages),
        from the index, counted once per build of it."""
        return self.retriever.derived("positions", self._positions).get(chunk_id, (1, 1))

    def _positions(self) -> dict[str, tuple[int, int]]:
        chunks = self.retriever.chunks
        counts = collections.Counter(c.article_id for c in chunks)
        return {c.id: (c.position + 1, counts[c.article_id]) for c in chunks}

    @property
    def concurrency(self) -> int:
        """How many questions the web server lets in at once: a local model's own queue shows
        each user their place and caps the wait, so enough must reach it; quotes take ms."""
        writer = self.reader.writer if isinstance(self.reader, ModelReader) else None
        return writer.queue.capacity + 2 if isinstance(writer, LocalWriter) else 4

    @property
    def mode_label(self) -> str:
        if isinstance(self.reader, ModelReader):
            return (
                f"Lecteur « {self.reader.name} » : réponses rédigées par {self.reader.writer.label}, "
                "citations vérifiées."
            )
        return "Lecteur « extractive » : réponses extraites des articles (phrases citées telles quelles)."
