"""The Gradio web chat. Everything shown is plain text: HTML in a question or an article is
displayed literally and never runs (Gradio's chatbot renders HTML even without Markdown, so
every message is HTML-escaped here, the one place where text meets the page)."""

from __future__ import annotations

import html
import logging
import threading
from collections.abc import Iterator
from typing import Any

import gradio as gr

from chatbot.answer import Answer, Progress, answer
from chatbot.errors import ChatbotError, EmptyQuestionError, IndexStateError, ModelError, QuestionTooLongError
from chatbot.llm import LLMConfig
from chatbot.reader import ModelReader, Reader, make_reader
from chatbot.retrieval import Retriever
from chatbot.settings import MODES, Settings

logger = logging.getLogger(__name__)

EXAMPLES = [
    "Quelle part des entreprises n’est pas présente sur LinkedIn ?",
    "Pourquoi faut-il éviter de mélanger influenceurs et journalistes ?",
    "Quel est le plafond d’imposition des profits à Hong Kong ?",
    "How many Chinese people use the internet?",
]
MODE_LABELS = {"hybrid": "hybride (mots-clés + sens)", "bm25": "mots-clés (BM25)", "dense": "sens (vecteurs)"}
MARK_OPEN, MARK_CLOSE = "▶ ", " ◀"


class ChatService:
    """One retriever per process, loaded on first use and shared by every conversation, and
    the reader that answers (extractive unless another is given; ``llm`` gives the server reader)."""

    def __init__(
        self,
        settings: Settings,
        retriever: Retriever | None = None,
        llm: LLMConfig | None = None,
        reader: Reader | None = None,
    ) -> None:
        self.settings = settings
        self.reader = reader or make_reader(None, llm)
        self._retriever = retriever
        self._lock = threading.Lock()

    def warm_in_background(self) -> None:
        """Load a writing reader's model now, in the background (the page opens meanwhile)."""
        if not isinstance(self.reader, ModelReader):
            return
        reader = self.reader

        def warm() -> None:
            try:
                reader.warm()
            except Exception as exc:  # the chat still answers: each question falls back
                logger.warning("The language model could not be warmed up: %s", exc)

        threading.Thread(target=warm, name="warm-model", daemon=True).start()

    @property
    def retriever(self) -> Retriever:
        with self._lock:
            if self._retriever is None:
                self._retriever = Retriever(self.settings)
            return self._retriever

    def ask(self, question: str, history: list[str], k: int, mode: str) -> Answer:
        """The extractive answer (retrieval included): the answer, or the server reader's fallback."""
        retriever = self.retriever
        extractive: Reader = self.reader.extractive if isinstance(self.reader, ModelReader) else self.reader
        with self._lock:  # the embedding model is not guaranteed thread-safe
            return answer(
                retriever, question, history, k=int(k), mode=mode if mode in MODES else None, reader=extractive
            )  # type: ignore[arg-type]

    def stream(
        self, question: str, history: list[str], turns: list[tuple[str, str]], k: int, mode: str
    ) -> Iterator[Progress | str | Answer]:
        """Progress, partial texts, then the final answer: the model's when a model writes."""
        yield Progress("search")
        extractive = self.ask(question, history, k, mode)
        if not isinstance(self.reader, ModelReader):
            yield extractive
            return
        yield from self.reader.write(extractive, turns)  # outside the embedder's lock

    @property
    def mode_label(self) -> str:
        if isinstance(self.reader, ModelReader):
            return (
                f"Lecteur « {self.reader.name} » : réponses rédigées par {self.reader.writer.label}, "
                "citations vérifiées."
            )
        return "Lecteur « extractive » : réponses extraites des articles (phrases citées telles quelles)."


def french_error(exc: ChatbotError) -> str:
    """A short message in French for the chat; details go to the log."""
    if isinstance(exc, EmptyQuestionError):
        return "Veuillez saisir une question."
    if isinstance(exc, QuestionTooLongError):
        return f"La question est trop longue : raccourcissez-la ({exc.limit} caractères au plus)."
    if isinstance(exc, IndexStateError):
        return "L’index des articles est absent ou abîmé : lancez « chatbot index --rebuild » puis rechargez la page."
    if isinstance(exc, ModelError):
        return "Le modèle de recherche n’a pas pu être chargé. Consultez le journal du serveur."
    return "Une erreur est survenue ; réessayez dans un instant."


def text_of(content: Any) -> str:
    """Message content as text, whether it came from the browser (list of parts) or a client."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text", ""))
    if isinstance(content, (list, tuple)):
        return " ".join(text_of(part) for part in content)
    return ""


def shown(text: str) -> str:
    """Text as the chat must display it: literally."""
    return html.escape(text, quote=False)


def previous_turns(history: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(question, answer) pairs of the conversation, for the language model."""
    turns: list[tuple[str, str]] = []
    for message in history:
        if message.get("metadata"):
            continue
        content = html.unescape(text_of(message.get("content")))
        if message.get("role") == "user":
            turns.append((content, ""))
        elif turns and not turns[-1][1]:
            turns[-1] = (turns[-1][0], content)
    return [t for t in turns if t[1]]


def previous_questions(history: list[dict[str, Any]]) -> list[str]:
    """The user's earlier questions, as typed."""
    return [
        html.unescape(text_of(m.get("content"))) for m in history if m.get("role") == "user" and not m.get("metadata")
    ]


def sources_text(result: Answer) -> str:
    """The sources panel: title, where the passage sits, and the passage with the quoted
    sentence set between ▶ ◀."""
    blocks = []
    for n, cited in result.sources():
        first = cited[0]
        passage = first.text
        for c in sorted(cited, key=lambda c: -c.quote_start):
            passage = passage[: c.quote_start] + MARK_OPEN + c.quote + MARK_CLOSE + passage[c.quote_end :]
        blocks.append(
            f"[{n}] {first.article}\n"
            f"(passage {first.chunk_id}, caractères {first.chunk_start}–{first.chunk_end} de l’article)\n\n{passage}"
        )
    return "\n\n――――――――\n\n".join(blocks)


def respond(
    service: ChatService, message: str, history: list[dict[str, Any]], k: float, mode: str
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Stream the answer into the conversation, then add its sources as a collapsed panel."""
    question = text_of(message)
    history = list(history or [])
    asked, turns = previous_questions(history), previous_turns(history)
    history.append({"role": "user", "content": shown(question)})
    yield "", history
    history.append({"role": "assistant", "content": ""})
    result: Answer | None = None
    try:
        for item in service.stream(question, asked, turns, int(k), mode):
            if isinstance(item, Progress):
                continue
            if isinstance(item, str):  # the language model writing
                history[-1] = {"role": "assistant", "content": shown(item)}
                yield "", history
            else:
                result = item
    except ChatbotError as exc:
        logger.warning("Question failed: %s", exc)
        history[-1] = {"role": "assistant", "content": shown(french_error(exc))}
        yield "", history
        return
    assert result is not None
    words = result.text.split(" ")
    for end in range(0, len(words), 4):
        history[-1] = {"role": "assistant", "content": shown(" ".join(words[: end + 4]))}
        yield "", history
    if result.note:
        history[-1] = {"role": "assistant", "content": shown(f"{result.text}\n\n({result.note})")}
        yield "", history
    if result.abstained and result.closest_articles:
        label = "Articles les plus proches" if result.lang == "fr" else "Closest articles"
        note = "\n".join(f"• {title}" for title in result.closest_articles)
        history.append({"role": "assistant", "content": shown(note), "metadata": {"title": label, "status": "done"}})
    elif result.citations:
        history.append(
            {
                "role": "assistant",
                "content": shown(sources_text(result)),
                "metadata": {"title": "Sources", "status": "done"},
            }
        )
    yield "", history


def build_app(service: ChatService) -> gr.Blocks:
    """The chat page: conversation, question box, examples, settings, clear button."""
    with gr.Blocks(title="Questions sur les articles", analytics_enabled=False) as demo:
        gr.Markdown(
            "## Posez vos questions aux articles\n"
            "Transformation numérique, employee advocacy, influenceurs, start-up en Chine, femmes du numérique, "
            "Twitter… Chaque réponse cite les passages qui la justifient : ouvrez « Sources » pour les lire."
        )
        gr.Markdown(service.mode_label, elem_id="answer-mode")
        chatbot = gr.Chatbot(label="Conversation", render_markdown=False, height=520, elem_id="conversation")
        with gr.Row():
            box = gr.Textbox(
                placeholder="Votre question, par exemple : Quelle part des PME a un site web ?",
                show_label=False,
                scale=8,
                max_length=service.settings.max_question_chars * 2,
                elem_id="question",
            )
            send = gr.Button("Envoyer", variant="primary", scale=1, elem_id="send")
        clear = gr.Button("Effacer la conversation", elem_id="clear")
        with gr.Accordion("Réglages", open=False):
            k = gr.Slider(1, 10, value=service.settings.top_k, step=1, label="Nombre de passages consultés")
            mode = gr.Radio(
                [(label, key) for key, label in MODE_LABELS.items()],
                value=service.settings.mode,
                label="Mode de recherche",
            )
        gr.Examples(EXAMPLES, inputs=box, label="Exemples")

        def run(message: str, history: list[dict[str, Any]], k: float, mode: str) -> Iterator[Any]:
            yield from respond(service, message, history, k, mode)

        box.submit(run, [box, chatbot, k, mode], [box, chatbot], api_name="ask")
        send.click(run, [box, chatbot, k, mode], [box, chatbot], api_visibility="private")
        clear.click(lambda: ([], ""), None, [chatbot, box], api_visibility="private")
    return demo
