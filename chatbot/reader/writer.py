"""Model-written answers, one design for two transports: an OpenAI-compatible server
(``--reader server``) or the bundled local model (``--reader local``,
:mod:`chatbot.local_model`), and the reader that runs them (:class:`ModelReader`).

The extractive reading decides first whether there is anything to answer and picks the
evidence; the model reads it (:mod:`chatbot.reader.prompt`), and nothing it writes is trusted
(:mod:`chatbot.reader.check`): what no quote supports is removed. No valid citation, an error,
a full queue, a timeout or an unreachable server: the extractive answer is served instead,
with a note.
"""

from __future__ import annotations

import collections
import logging
import os
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from chatbot.errors import ChatbotError, LanguageModelFailedError, ModelBusyError
from chatbot.model_queue import Waiting
from chatbot.question import analyze_question
from chatbot.reader.check import check_answer, copies_its_quotes, says_not_found
from chatbot.reader.extractive import ExtractiveReader
from chatbot.reader.prompt import CONTEXTS, SYSTEM_PROMPT, build_messages, excerpts
from chatbot.reader.values import NOT_FOUND, Answer, Progress, Writer

if TYPE_CHECKING:
    from chatbot.chunking import Hit
    from chatbot.reader.values import Library

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LLMConfig:
    """Where the OpenAI-compatible server is, and how long to wait for it."""

    url: str
    model: str
    api_key: str | None = None
    timeout: float = 30.0
    # Share of a sentence's analysed terms that the cited passage must contain.
    min_overlap: float = 0.5
    max_tokens: int = 160
    # What the model reads: "passages" (the whole passages that hold the best sentences, up to
    # MAX_PASSAGES: a capable server model finds what the sentence scorer missed) or
    # "sentences" (only the best sentences: a short prompt for a slow CPU model).
    context: str = "passages"

    def __post_init__(self) -> None:
        if self.context not in CONTEXTS:
            raise ValueError(f"Unknown context {self.context!r}; use one of: {', '.join(CONTEXTS)}.")

    @classmethod
    def from_env(cls, url: str | None = None, model: str | None = None, api_key: str | None = None) -> LLMConfig | None:
        """Options first, then CHATBOT_LLM_URL / CHATBOT_LLM_MODEL / CHATBOT_LLM_API_KEY (a key or
        ``@/path``); None when unset.

        Raises:
            UsageError: the key's file cannot be read.
        """
        url = url or os.environ.get("CHATBOT_LLM_URL")
        model = model or os.environ.get("CHATBOT_LLM_MODEL")
        if not url or not model:
            return None
        context = os.environ.get("CHATBOT_LLM_CONTEXT", "passages")
        from chatbot.access import read_secret

        key = api_key or read_secret(os.environ.get("CHATBOT_LLM_API_KEY"), "CHATBOT_LLM_API_KEY")
        return cls(url=url, model=model, api_key=key, context=context)


@dataclass(frozen=True)
class ServerWriter:
    """An OpenAI-compatible server (Ollama, vLLM, llama.cpp's server…)."""

    config: LLMConfig

    @property
    def label(self) -> str:
        return f"le modèle {self.config.model} ({self.config.url})"

    def write(self, messages: list[dict[str, str]], max_tokens: int) -> Iterator[str | Waiting]:
        """Stream the reply; ``config.timeout`` bounds the whole reply, not each read (a server
        that drips tokens is cut). The connection is closed when the reply ends, fails or is
        abandoned (the chat's Stop closes this generator).

        Raises:
            TimeoutError: the reply took longer than ``config.timeout`` seconds.
            openai.OpenAIError: the server refused or failed.
        """
        from openai import OpenAI

        config = self.config
        deadline = time.monotonic() + config.timeout
        with OpenAI(base_url=config.url, api_key=config.api_key or "none", timeout=config.timeout,
                    max_retries=0) as client:  # fmt: skip
            events = client.chat.completions.create(
                model=config.model,
                messages=messages,  # type: ignore[arg-type]
                stream=True,
                temperature=0,
                max_tokens=max_tokens,
            )
            with events:  # type: ignore[union-attr]
                for event in events:
                    delta = event.choices[0].delta.content if event.choices else None  # type: ignore[union-attr]
                    if delta:
                        yield delta
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"the server wrote for more than {config.timeout:g} s")


def generate(
    extractive: Answer, writer: Writer, turns: Sequence[tuple[str, str]] = (), *, min_overlap: float = 0.5,
    max_tokens: int = 160, context: str = "sentences",
) -> Iterator[Progress | str | Answer]:  # fmt: skip
    """The model's part of a writing reader, from the extractive answer and its evidence:
    progress while it waits, the growing text while it writes, then the checked answer.

    Needs no embedding model, so a web server runs it outside the lock that guards the embedder.
    """
    if extractive.abstained or not extractive.evidence:
        yield extractive  # nothing retrieved supports an answer: the model is not asked to guess
        return
    if analyze_question(extractive.question).keyword:
        # A bare name («Clever Age») asks for the sentences that hold it, which the extractive
        # answer quotes first; asked to answer it, the model writes a definition it invents.
        yield extractive
        return
    from openai import OpenAIError

    passages = excerpts(extractive.evidence, context=context)
    messages = build_messages(extractive.question, passages, extractive.lang, turns)
    written = ""
    yield Progress("write", passages=len(passages))
    replies = writer.write(messages, max_tokens)
    try:
        while True:
            try:  # only the model's call: an error of the code around it is a bug, not a fallback
                item = next(replies)
            except StopIteration:
                break
            except (ChatbotError, TimeoutError, OpenAIError, OSError) as exc:
                logger.warning("The language model failed, serving the extractive answer: %s", exc)
                yield _fallback(extractive, _why(exc))
                return
            if isinstance(item, Waiting):
                yield Progress("queue", position=item.position, expected_s=item.expected_s)
            else:
                written += item
                yield written
    finally:
        if isinstance(replies, Generator):
            replies.close()  # a stopped answer closes the model's stream
    if says_not_found(written):
        yield replace(
            extractive, text=NOT_FOUND.get(extractive.lang, NOT_FOUND["fr"]), abstained=True, citations=(),
            reason=f"{writer.label} found no answer in the passages", mode="llm",
        )  # fmt: skip
        return
    text, citations, dropped = check_answer(written, passages, min_overlap, extractive.question)
    if not citations:
        yield _fallback(extractive, ("uncited", ""), dropped)
        return
    if copies_its_quotes(text, citations):
        # It adds nothing to the quotes, which show it with its context; and a copied sentence
        # that does not answer reads as a confident wrong answer.
        yield _fallback(extractive, ("copied", ""), dropped)
        return
    yield replace(extractive, text=text, citations=tuple(citations), mode="llm", citations_dropped=dropped)


FALLBACK = {
    "fr": "Réponse extraite des articles : {why}.",
    "en": "Answer quoted from the articles: {why}.",
}
WHY = {
    "uncited": {
        "fr": "la réponse du modèle de langue ne citait aucun passage vérifiable",
        "en": "the language model's answer cited no passage that could be checked",
    },
    "copied": {
        "fr": "le modèle de langue n’a fait que recopier un passage",
        "en": "the language model only copied a passage",
    },
    "busy": {"fr": "le modèle de langue est occupé ({detail})", "en": "the language model is busy ({detail})"},
    "timeout": {
        "fr": "le modèle de langue n’a pas répondu à temps (Timeout)",
        "en": "the language model did not answer in time (Timeout)",
    },
    "error": {
        "fr": "le modèle de langue n’a pas répondu ({detail})",
        "en": "the language model did not answer ({detail})",
    },
}


def _why(exc: Exception) -> tuple[str, str]:
    if isinstance(exc, ModelBusyError):
        return "busy", str(exc)
    if isinstance(exc, TimeoutError):
        return "timeout", ""
    if isinstance(exc, LanguageModelFailedError) and exc.__cause__ is not None:
        return "error", type(exc.__cause__).__name__  # llama.cpp's own error
    return "error", type(exc).__name__


def _fallback(extractive: Answer, why: tuple[str, str], dropped: int = 0) -> Answer:
    lang = extractive.lang if extractive.lang in FALLBACK else "fr"
    reason = WHY[why[0]][lang].format(detail=why[1])
    return replace(extractive, note=FALLBACK[lang].format(why=reason), citations_dropped=dropped)


@dataclass(frozen=True)
class ModelReader:
    """A language model writes the answer (``server``: an OpenAI-compatible server; ``local``:
    the bundled model in this process); the extractive reading decides whether there is
    anything to answer and is the fallback; every citation is checked in code."""

    writer: Writer
    extractive: ExtractiveReader = field(default_factory=ExtractiveReader)
    name: str = "server"
    min_overlap: float = 0.5
    max_tokens: int = 160
    context: str = "sentences"  # what the model reads (chatbot.reader.prompt.CONTEXTS)

    def stream(
        self, question: str, history: Sequence[str], hits: Sequence[Hit], library: Library,
        turns: Sequence[tuple[str, str]] = (),
    ) -> Iterator[Progress | str | Answer]:  # fmt: skip
        yield from self.write(self.extractive.read(question, history, hits, library), turns)

    def warm(self) -> None:
        """Load the model and have it read the fixed instructions once (then cached): the first
        question waits for neither.

        Raises:
            Whatever the writer raises (:class:`Writer`).
        """
        collections.deque(self.writer.write([{"role": "system", "content": SYSTEM_PROMPT}], 1), maxlen=0)

    def write(self, extractive: Answer, turns: Sequence[tuple[str, str]] = ()) -> Iterator[Progress | str | Answer]:
        """The model's part, from the extractive reading: needs no embedding model, so the chat
        runs it outside the lock that guards the embedder."""
        items = generate(
            extractive, self.writer, turns, min_overlap=self.min_overlap, max_tokens=self.max_tokens,
            context=self.context,
        )  # fmt: skip
        for item in items:
            yield replace(item, reader=self.name) if isinstance(item, Answer) else item
