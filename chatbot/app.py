"""The Gradio web chat.

Every answer is one chat message, HTML rendered by the Jinja2 templates of
``chatbot/templates`` (autoescape on: every piece of text, from a question or an article, is
escaped; the only markup is the templates'): the answer text with clickable [n] markers, its
sources (the first open, the quoted words in ``<mark>``), a button to read each passage in its
article, a copy button, suggested questions. The page's style and script are the files of
``chatbot/static``. The article panel beside the chat shows a whole article with the cited
passage highlighted; the articles can also be browsed by title. This module is the Gradio
wiring and the French messages.
"""

from __future__ import annotations

import html
import json
import logging
import re
import time
from collections.abc import Iterator, Sequence
from importlib import resources
from typing import Any

import gradio as gr
import jinja2

from chatbot.access import client_id
from chatbot.analysis import detect_language
from chatbot.answer import Answer, Progress
from chatbot.conversation import Turn, asked_before, exchanges
from chatbot.errors import (
    AlreadyVotedError,
    BackendError,
    ChatbotError,
    EmptyQuestionError,
    IndexStateError,
    ModelError,
    QuestionTooLongError,
    RateLimitedError,
)
from chatbot.links import text_fragment_url
from chatbot.service import ChatService
from chatbot.suggestions import related_to

logger = logging.getLogger(__name__)


def static_text(name: str) -> str:
    """A file of the page's own (``chatbot/static``: its style sheets and script)."""
    return resources.files("chatbot").joinpath("static", name).read_text(encoding="utf-8")


EXAMPLES = [
    "Quelle part des entreprises n’est pas présente sur LinkedIn ?",
    "Pourquoi faut-il éviter de mélanger influenceurs et journalistes ?",
    "Quel est le plafond d’imposition des profits à Hong Kong ?",
    "How many Chinese people use the internet?",
]
MODE_LABELS = {"hybrid": "hybride (mots-clés + sens)", "bm25": "mots-clés (BM25)", "dense": "sens (vecteurs)"}

# The interface's framing, in the question's language; quotes stay in French.
TEXT = {
    "fr": {
        "search": "Recherche dans les articles…",
        "read": "Lecture de {n} passages…",
        "queue": "En attente du modèle : {position}ᵉ dans la file (environ {seconds} s)…",
        "queue_next": "En attente du modèle : vous êtes le prochain (environ {seconds} s)…",
        "write": "Rédaction de la réponse à partir de {n} passages…",
        "written": "{words} mots rédigés ; la réponse s’affiche une fois ses citations vérifiées.",
        "sources": "Sources",
        "closest": "Les articles n’en parlent pas directement ; le passage le plus proche :",
        "closest_label": "Passage le plus proche (ce n’est pas une réponse)",
        "passage": "passage {k} sur {total}",
        "open_article": "Lire dans l’article",
        "on_blog": "Lire sur le blog",
        "on_blog_label": "Ouvrir l’article sur le blog, à la phrase citée (nouvel onglet)",
        "copy": "Copier la réponse et ses sources",
        "french_quotes": "",
        "source_button": "Voir la source {n}",
        "related": "Questions liées",
    },
    "en": {
        "search": "Searching the articles…",
        "read": "Reading {n} passages…",
        "queue": "Waiting for the model: number {position} in line (about {seconds} s)…",
        "queue_next": "Waiting for the model: you are next (about {seconds} s)…",
        "write": "Writing the answer from {n} passages…",
        "written": "{words} words written; the answer shows once its citations are checked.",
        "sources": "Sources",
        "closest": "The articles do not address this directly; the closest passage:",
        "closest_label": "Closest passage (not an answer)",
        "passage": "passage {k} of {total}",
        "open_article": "Read in the article",
        "on_blog": "Read on the blog",
        "on_blog_label": "Open the article on the blog at the quoted sentence (new tab)",
        "copy": "Copy the answer and its sources",
        "french_quotes": "The articles are in French: quotes are shown as written.",
        "source_button": "Show source {n}",
        "related": "Related questions",
    },
}

CSS = static_text("chat.css")

# The compact page for embedding (build_app(compact=True)): a 360 px side panel of a blog.
# The chat's own 🗑 clears the conversation there, so «Effacer» goes; «Arrêter» too (Escape
# still stops an answer), so that the question box and «Envoyer» share one row.
EMBED_CSS = static_text("embed.css")

# Marker clicks open and scroll to their source; «Lire dans l'article» asks the server for the
# article (through a hidden textbox and button); copy puts the plain text on the clipboard;
# Escape stops an answer being written.
HEAD = f"<script>\n{static_text('chat.js')}</script>\n"

STARTERS_TITLE = "Pour commencer, par exemple :"

SCROLL_TO_PASSAGE = """() => {
  const box = document.querySelector('#article-view .article-scroll');
  const mark = box?.querySelector('mark');
  if (box && mark) { box.scrollTop = mark.offsetTop - box.offsetTop - box.clientHeight / 3; }
  box?.focus({preventScroll: true});
  if (box && window.innerWidth < 700) { box.scrollIntoView({block: 'start'}); }
}"""


def french_error(exc: ChatbotError) -> str:
    """A short message in French for the chat; details go to the log."""
    if isinstance(exc, EmptyQuestionError):
        return "Veuillez saisir une question."
    if isinstance(exc, QuestionTooLongError):
        return f"La question est trop longue : raccourcissez-la ({exc.limit} caractères au plus)."
    if isinstance(exc, BackendError):
        return "Le moteur de recherche (Milvus) ne répond pas : vérifiez qu’il tourne, puis réessayez."
    if isinstance(exc, IndexStateError):
        return "L’index des articles est absent ou abîmé : lancez « chatbot index --rebuild » puis rechargez la page."
    if isinstance(exc, RateLimitedError):
        return (
            f"Vous avez posé beaucoup de questions en peu de temps : merci de patienter {exc.retry_after} s "
            "avant la prochaine."
        )
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


_ANSWER_TEXT = re.compile(r'<p class="answer-text"[^>]*>(.*?)</p>', re.S)
_TAG = re.compile(r"<[^>]+>")


def answer_text(content: Any) -> str:
    """The answer's own words in a chat message as a client of the page sees it (tests, the
    load test), as plain text. The chat itself never reads its messages back: its memory is
    the conversation's :class:`Turn` list (:func:`respond`)."""
    raw = text_of(content)
    match = _ANSWER_TEXT.search(raw)
    return html.unescape(_TAG.sub("", match.group(1) if match else raw)).strip()


def shown_turns(turns: Sequence[Turn] | None, history: Sequence[dict[str, Any]]) -> list[Turn]:
    """The turns of the conversation on screen, one per user message: a client that starts
    again with a shorter history (``[]``: a new conversation) drops the turns it left; a
    question whose turn never came back (stopped) counts as one without an answer."""
    asked = sum(1 for m in history if m.get("role") == "user")
    kept = list(turns or ())[:asked]
    return kept + [Turn("")] * (asked - len(kept))


def turn_at(turns: Sequence[Turn], history: Sequence[dict[str, Any]], index: int) -> Turn | None:
    """The turn whose reply is message ``index`` of the conversation shown, if there is one."""
    if not 0 <= index < len(history) or history[index].get("role") != "assistant":
        return None
    asked = sum(1 for m in history[:index] if m.get("role") == "user")
    return turns[asked - 1] if 0 < asked <= len(turns) else None


_PAGES = jinja2.Environment(
    loader=jinja2.PackageLoader("chatbot", "templates"), autoescape=True, undefined=jinja2.StrictUndefined
)


def _render(template: str, **values: Any) -> str:
    """A template of ``chatbot/templates``: every value escaped, the markup the template's."""
    return _PAGES.get_template(template).render(**values)


def _pieces(text: str, spans: Sequence[tuple[int, int]]) -> list[tuple[str, bool]]:
    """``text`` cut into (piece, marked) with the ``spans`` (start, end) marked."""
    out: list[tuple[str, bool]] = []
    last = 0
    for start, end in sorted(spans):
        if start < last:
            continue
        out += [(text[last:start], False), (text[start:end], True)]
        last = end
    out.append((text[last:], False))
    return out


def _text_pieces(text: str, numbers: set[int], lang: str) -> list[tuple[str, int, str]]:
    """The answer's text cut at its [n] markers: (text, 0, "") or (marker, n, its label) for
    those that open a source."""
    label = TEXT[lang]["source_button"]
    out: list[tuple[str, int, str]] = []
    last = 0
    for match in re.finditer(r"\[(\d+)\]", text):
        n = int(match.group(1))
        if n in numbers:
            out += [(text[last : match.start()], 0, ""), (match.group(0), n, label.format(n=n))]
            last = match.end()
    out.append((text[last:], 0, ""))
    return out


def _blog_link(link: str) -> str:
    return link if link.startswith(("https://", "http://")) else ""


def _spans(spans: Sequence[tuple[int, int]]) -> str:
    return ",".join(f"{start}-{end}" for start, end in spans)


def copy_text(result: Answer) -> str:
    """The answer as plain text with its references (title and quote), ready to paste."""
    lines = [result.text]
    if result.note:
        lines.append(f"({result.note})")
    for n, cited in result.sources():
        for c in cited:
            lines.append(f"[{n}] {c.article} : « {' '.join(c.quote.split())} »" + (f" {c.url}" if c.url else ""))
    return "\n".join(lines)


def welcome(service: ChatService) -> str:
    """The chat's first message: how it works, and questions to start with once the
    suggestions are built (:mod:`chatbot.suggestions`; never waits for them)."""
    built = service.suggestions.ready()
    starters = [s.question for s in built.starters("fr")] if built is not None else []
    return _render("welcome.html", starters=starters, title=STARTERS_TITLE)


def render_answer(service: ChatService, result: Answer, answer_id: str, asked: Sequence[str] = ()) -> str:
    """The whole answer message: text with marker buttons, note, sources or closest passage,
    and «Questions liées» (none of ``asked``, the conversation's questions)."""
    lang = result.lang if result.lang in TEXT else "fr"
    words = TEXT[lang]
    closest: dict[str, Any] | None = None
    sources: list[dict[str, Any]] = []
    if result.abstained and result.evidence:
        sentence = result.evidence[0]
        chunk = sentence.hit.chunk
        k, total = service.passage_of(chunk.id)
        closest = {
            "title": chunk.article_title,
            "where": words["passage"].format(k=k, total=total),
            "pieces": _pieces(chunk.text, [(sentence.start, sentence.end)]),
            "article_id": chunk.article_id,
            "spans": _spans([(chunk.start + sentence.start, chunk.start + sentence.end)]),
            "link": _blog_link(text_fragment_url(chunk.article_url, sentence.text)),
        }
    elif not result.abstained:
        for n, cited in result.sources():
            first = cited[0]
            spans = [(c.quote_start, c.quote_end) for c in cited]
            k, total = service.passage_of(first.chunk_id)
            sources.append({
                "n": n,
                "title": first.article,
                "where": words["passage"].format(k=k, total=total),
                "pieces": _pieces(first.text, spans),
                "article_id": first.article_id,
                "spans": _spans([(first.chunk_start + start, first.chunk_start + end) for start, end in spans]),
                "link": _blog_link(first.url),
            })  # fmt: skip
    built = service.suggestions.ready()
    related = [s.question for s in related_to(built, result, asked)] if built is not None else []
    return _render(
        "answer.html",
        answer_id=answer_id,
        mode=result.mode,
        abstained=str(result.abstained).lower(),
        lang=lang,
        text_lang="fr" if result.mode == "extractive" and not result.abstained else lang,
        text=_text_pieces(result.text, {c.n for c in result.citations}, lang),
        note=result.note,
        closest=closest,
        sources=sources,
        words=words,
        done="Copié ✓" if lang == "fr" else "Copied ✓",
        copy=copy_text(result),
        related=related,
    )


def render_progress(progress: Progress, lang: str, written: str = "") -> str:
    """What is happening while an answer is prepared. A model's text being ``written`` is never
    shown (the check may still remove its claims): only how far it has got."""
    words = TEXT[lang]
    if progress.stage == "queue":
        template = words["queue_next"] if progress.position <= 1 else words["queue"]
        status = template.format(position=progress.position, seconds=max(1, round(progress.expected_s)))
    elif progress.stage in ("read", "write"):
        status = words[progress.stage].format(n=progress.passages)
    else:
        status = words["search"]
    count = len(written.split())
    detail = words["written"].format(words=count) if count else ""
    return _render("progress.html", lang=lang, status=status, written=detail)


STALE_ARTICLE = (
    "Cet article a changé depuis la construction de l’index : voici le texte indexé, celui que "
    "citent les réponses (relancez « chatbot index » pour le mettre à jour)."
)


def render_article(service: ChatService, article_id: str, spans: Sequence[tuple[int, int]] = ()) -> str:
    """A whole article as indexed, escaped, in a scroll box; the quoted ``spans`` (offsets in
    the article text) in ``<mark>``, those that do not fit it left out."""
    article = service.articles().get(article_id)
    if article is None:
        return _render("article.html", title=None)
    fitting = [(start, end) for start, end in spans if 0 <= start < end <= len(article.text)]
    stale = STALE_ARTICLE if article.stale else ""
    return _render("article.html", title=article.title, stale=stale, pieces=_pieces(article.text, fitting))


Reply = tuple[str, list[dict[str, Any]], list[Turn]]
"""What :func:`respond` yields: the question box, the messages shown, the conversation's turns."""


def respond(
    service: ChatService,
    message: str,
    history: list[dict[str, Any]],
    turns: Sequence[Turn] | None,
    k: float,
    mode: str,
    client: str | None = None,
) -> Iterator[Reply]:
    """Show that work started at once, what is happening, the answer as it is written, then
    the answer with its sources. ``turns`` is the conversation so far (the chat's state); the
    messages are only shown, never read back. A refused question joins the turns as refused:
    the questions after it are asked without it; so does one over ``client``'s limit."""
    started = time.monotonic()
    question = text_of(message)
    history = list(history or [])
    earlier = shown_turns(turns, history)
    asked = asked_before(earlier)
    lang = detect_language(question) if question.strip() else "fr"
    lang = lang if lang in TEXT else "fr"
    history.append({"role": "user", "content": shown(question)})
    history.append({"role": "assistant", "content": render_progress(Progress("search"), lang)})
    # Until its answer is shown the turn is neither context nor votable (Stop may end it here).
    yield "", history, [*earlier, Turn(question)]
    result: Answer | None = None
    status = Progress("search")
    try:
        service.admit(client)
        for item in service.stream(question, asked, exchanges(earlier), int(k), mode):
            if isinstance(item, Progress):
                status = item
                history[-1] = {"role": "assistant", "content": render_progress(item, lang)}
            elif isinstance(item, str):  # the language model writing
                history[-1] = {"role": "assistant", "content": render_progress(status, lang, item)}
            else:
                result = item
                continue
            yield "", history, [*earlier, Turn(question)]
    except ChatbotError as exc:
        logger.warning("Question failed: %s", exc)
        history[-1] = {"role": "assistant", "content": shown(french_error(exc))}
        yield "", history, [*earlier, Turn(question, refused=True)]
        return
    assert result is not None
    answer_id = service.remember(question, asked, result, client=client, started=started, via="chat")
    history[-1] = {"role": "assistant", "content": render_answer(service, result, answer_id, asked)}
    yield "", history, [*earlier, Turn(question, result.text, answer_id)]


def client_of(request: gr.Request | None) -> str | None:
    """The chat's client for the limits: its IP address (behind a proxy on this machine, the
    one it forwards: uvicorn reads X-Forwarded-For from 127.0.0.1)."""
    client = getattr(request, "client", None)
    return client_id(None, getattr(client, "host", None)) if request is not None else None


def build_app(service: ChatService, compact: bool = False) -> gr.Blocks:
    """The chat page: conversation with sources, article panel, question box, feedback.
    ``compact``: the page for embedding in a blog (with :data:`EMBED_CSS`): the conversation
    and the question box only; no header, article panel, examples or settings."""
    with gr.Blocks(title="Questions sur les articles", analytics_enabled=False, fill_height=True) as demo:
        if not compact:
            gr.Markdown(
                "# Posez vos questions aux articles\n"
                "Transformation numérique, employee advocacy, influenceurs, start-up en Chine, femmes du numérique, "
                "Twitter… Chaque réponse cite les passages qui la justifient ; cliquez sur [1] pour voir la source, "
                "puis « Lire dans l’article » pour la lire dans son contexte."
            )
            gr.Markdown(service.mode_label, elem_id="answer-mode")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=320 if not compact else 200):
                chatbot = gr.Chatbot(
                    # A first message at load: the page fetches the code that shows messages
                    # now, not when the first answer arrives (measured: 0.7 s → 0.1 s).
                    # A function: each page opened gets the suggestions built by then.
                    value=lambda: [{"role": "assistant", "content": welcome(service)}],
                    label="Conversation",
                    render_markdown=False,
                    # Gradio's sanitiser drops data-* attributes; every text is escaped here instead.
                    sanitize_html=False,
                    elem_id="conversation",
                    height="70vh",
                    feedback_options=("Like", "Dislike"),
                    buttons=[],
                    autoscroll=True,
                )
                gr.HTML('<p id="chat-status" class="progress" role="status" aria-live="polite" hidden></p>')
                with gr.Row():
                    box = gr.Textbox(
                        placeholder="Votre question, par exemple : Quelle part des PME a un site web ?",
                        label="Votre question",
                        show_label=False,
                        scale=8,
                        min_width=180,
                        max_length=service.settings.max_question_chars * 2,
                        elem_id="question",
                        autofocus=True,
                    )
                    send = gr.Button("Envoyer", variant="primary", scale=1, min_width=90, elem_id="send")
                    stop = gr.Button("Arrêter", variant="stop", scale=1, min_width=90, elem_id="stop")
                with gr.Row(visible=False, elem_id="comment-row") as comment_row:
                    comment = gr.Textbox(label="Un commentaire sur cette réponse ? (facultatif)", scale=6,
                                         elem_id="comment")  # fmt: skip
                    send_comment = gr.Button("Envoyer le commentaire", scale=1, elem_id="send-comment")
                feedback_status = gr.Markdown("", elem_id="feedback-status")
                clear = gr.Button("Effacer la conversation", elem_id="clear")
            with gr.Column(scale=2, min_width=320, elem_id="article-panel", visible=not compact):
                titles = sorted((a.title, a.id) for a in service.articles().values())
                pick = gr.Dropdown(
                    choices=titles, value=None, label="Lire un article", elem_id="article-pick", interactive=True
                )
                article_view = gr.HTML(
                    "<p>Choisissez un article, ou cliquez « Lire dans l’article » sous une source.</p>",
                    elem_id="article-view",
                )
        request = gr.Textbox(elem_id="article-request", elem_classes="hidden-control", show_label=False,
                             container=False)  # fmt: skip
        open_article = gr.Button("Ouvrir", elem_id="article-open", elem_classes="hidden-control")
        voted = gr.State("")
        conversation = gr.State([])  # the conversation's turns (chatbot.conversation.Turn)
        with gr.Accordion("Réglages", open=False, visible=not compact):
            k = gr.Slider(1, 10, value=service.settings.top_k, step=1, label="Nombre de passages consultés")
            mode = gr.Radio(
                [(label, key) for key, label in MODE_LABELS.items()],
                value=service.settings.mode,
                label="Mode de recherche",
            )
        if not compact:
            gr.Examples(EXAMPLES, inputs=box, label="Exemples")

        def run(
            message: str, history: list[dict[str, Any]], turns: list[Turn], k: float, mode: str, request: gr.Request
        ) -> Iterator[Reply]:
            yield from respond(service, message, history, turns, k, mode, client_of(request))

        def show_article(raw: str) -> tuple[str, Any]:
            try:
                wanted = json.loads(raw)
                article_id = str(wanted["article"])
                pairs = [part.split("-", 1) for part in str(wanted["spans"]).split(",") if part]
                html_text = render_article(service, article_id, [(int(a), int(b)) for a, b in pairs])
            except (ValueError, KeyError, TypeError):
                return "<p>Cet article ne peut pas être affiché.</p>", gr.update()
            return html_text, gr.update(value=article_id)

        def browse(article_id: str | None) -> str:
            return render_article(service, article_id) if article_id else ""

        def feedback(answer_id: str, vote: str, text: str, request: gr.Request) -> str:
            """Record 👍 (up) / 👎 (down) or a comment on an answer shown by /ask (its data-answer id)."""
            try:
                service.record_feedback(answer_id, vote, text, client_of(request))
            except KeyError:
                return "Cette réponse est trop ancienne pour être notée."
            except ValueError:
                return "Vote inconnu."
            except AlreadyVotedError:
                return "Vous avez déjà donné votre avis sur cette réponse."
            except RateLimitedError as exc:
                return f"Vous avez envoyé beaucoup d’avis en peu de temps : réessayez dans {exc.retry_after} s."
            except OSError as exc:
                logger.warning("Feedback not written: %s", exc)
                return "Votre avis n’a pas pu être enregistré."
            return "Merci ! Votre avis est enregistré (sur cette machine uniquement)."

        def on_like(
            history: list[dict[str, Any]], turns: list[Turn], data: gr.LikeData, request: gr.Request
        ) -> tuple[str, str, Any, str]:
            index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
            turn = turn_at(shown_turns(turns, history), history, int(index))
            if turn is None or turn.answer_id is None:
                return "", "Cette réponse ne peut pas être notée.", gr.update(visible=False), ""
            vote = "up" if data.liked is True else "down" if data.liked is False else ""
            if not vote:
                return "", "", gr.update(visible=False), ""
            return turn.answer_id, feedback(turn.answer_id, vote, "", request), gr.update(visible=True), ""

        def on_comment(answer_id: str, text: str, request: gr.Request) -> tuple[str, Any, str]:
            if not answer_id or not text.strip():
                return "", gr.update(), text
            return feedback(answer_id, "", text, request), gr.update(visible=False), ""

        inputs, outputs = [box, chatbot, conversation, k, mode], [box, chatbot, conversation]
        ask_event = box.submit(run, inputs, outputs, api_name="ask")
        click_event = send.click(run, inputs, outputs, api_visibility="private")
        stop.click(None, None, None, cancels=[ask_event, click_event])
        clear.click(
            lambda: ([{"role": "assistant", "content": welcome(service)}], [], "", ""),
            None,
            [chatbot, conversation, box, feedback_status],
            api_visibility="private",
        )
        open_article.click(show_article, request, [article_view, pick], api_visibility="private").then(
            None, None, None, js=SCROLL_TO_PASSAGE
        )
        pick.input(browse, pick, article_view, api_visibility="private")
        chatbot.like(on_like, [chatbot, conversation], [voted, feedback_status, comment_row, comment],
                     api_visibility="private")  # fmt: skip
        send_comment.click(on_comment, [voted, comment], [feedback_status, comment_row, comment],
                           api_visibility="private")  # fmt: skip
        comment.submit(on_comment, [voted, comment], [feedback_status, comment_row, comment], api_visibility="private")
        gr.api(feedback, api_name="feedback")
    return demo


def queued(demo: gr.Blocks, service: ChatService) -> gr.Blocks:
    """``demo`` with its queue: a writing reader's own queue shows each user their place and
    caps the wait, so Gradio lets enough questions in for it to do so; answers by quotes take
    milliseconds."""
    return demo.queue(default_concurrency_limit=service.concurrency)


def launch(
    service: ChatService, host: str = "127.0.0.1", port: int | None = None, *, block: bool = True, quiet: bool = False
) -> tuple[gr.Blocks, str]:
    """Build the page and serve it alone (its CSS and scripts included); returns the app and
    its URL. ``chatbot serve`` serves it with the API instead (:mod:`chatbot.server`)."""
    demo = queued(build_app(service), service)
    _, url, _ = demo.launch(
        server_name=host,
        server_port=port,
        prevent_thread_lock=not block,
        quiet=quiet,
        footer_links=[],
        css=CSS,
        head=HEAD,
    )
    return demo, url
