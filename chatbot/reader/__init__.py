"""Reading the retrieved passages against the question: the one place that decides support.

Answering is retrieve → read → compose citations. A reader takes the question, the earlier
questions and the retrieved passages and returns an :class:`~chatbot.reader.values.Answer` (quotes
with citations) or a reasoned abstention.

- ``extractive`` (default): every sentence of the passages is a candidate, scored by cosine,
  term coverage and passage rank; the best ones are quoted. Whether the passages *answer* the
  question is read from what it asks (:mod:`chatbot.question`): two stated rules (a number,
  amount or date asked about a named thing that no sentence about it gives; a French question
  nothing in the passages anchors) and a logistic model over question-level features
  (``chatbot reader-fit``, one per embedder in ``reader_model.json``). A bare keyword query
  shows the sentence that holds it.
- ``server`` and ``local``: a language model writes the answer from the best sentences of the
  same passages, through an OpenAI-compatible server or the bundled local model
  (:mod:`chatbot.local_model`); the extractive reading decides first whether there is
  anything to answer, and every claim the model writes is checked against its cited passage
  (:mod:`chatbot.reader.check`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

from chatbot.reader.extractive import ExtractiveReader
from chatbot.reader.values import DEFAULT_ANSWER_SETTINGS, Answer, AnswerSettings, Progress
from chatbot.reader.writer import LLMConfig, ModelReader, ServerWriter
from chatbot.settings import READERS

if TYPE_CHECKING:
    from chatbot.chunking import Hit
    from chatbot.reader.values import Library

__all__ = ["ExtractiveReader", "ModelReader", "Reader", "make_reader"]


class Reader(Protocol):
    """Reads retrieved passages and answers: the final :class:`Answer` is the last item of
    :meth:`stream`; earlier items are partial texts (a model writing)."""

    @property
    def name(self) -> str: ...

    def stream(
        self, question: str, history: Sequence[str], hits: Sequence[Hit], library: Library,
        turns: Sequence[tuple[str, str]] = (),
    ) -> Iterator[Progress | str | Answer]: ...  # fmt: skip


def make_reader(
    name: str | None, llm: LLMConfig | None = None, settings: AnswerSettings = DEFAULT_ANSWER_SETTINGS,
    local_model: str | None = None,
) -> ExtractiveReader | ModelReader:  # fmt: skip
    """The reader called ``name`` (default: ``server`` when a server is configured, else
    ``extractive``). ``local`` shares the process's one instance of the local model
    (``local_model`` or ``CHATBOT_LOCAL_MODEL``), loaded on first use.

    Raises:
        ValueError: unknown reader, or ``server`` without a configured server.
        LocalModelError: ``local`` without an installed local model.
    """
    name = name or ("server" if llm is not None else "extractive")
    extractive = ExtractiveReader(settings)
    if name == "extractive":
        return extractive
    if name == "server":
        if llm is None:
            raise ValueError(
                "The server reader needs an OpenAI-compatible server: set --llm-url and --llm-model "
                "(or CHATBOT_LLM_URL and CHATBOT_LLM_MODEL)."
            )
        return ModelReader(ServerWriter(llm), extractive, "server", llm.min_overlap, llm.max_tokens, llm.context)
    if name == "local":
        from chatbot.local_model import local_writer

        return ModelReader(local_writer(local_model), extractive, "local")
    raise ValueError(f"Unknown reader {name!r}; use one of: {', '.join(READERS)}.")
