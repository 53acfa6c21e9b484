"""The Gradio web chat.

Every answer is one chat message rendered here as HTML: the answer text with clickable [n]
markers, its sources (the first open, the quoted words in ``<mark>``), a button to read each
passage in its article, and a copy button. Every piece of text, from a question or an
article, is HTML-escaped here, the one place where text meets the page; the only markup is
this module's. The article panel beside the chat shows a whole article with the cited passage
highlighted; the articles can also be browsed by title.
"""

from __future__ import annotations

import html
import json
import logging
import re
import time
from collections.abc import Iterator, Sequence
from typing import Any

import gradio as gr

from chatbot.access import client_id
from chatbot.analysis import detect_language
from chatbot.answer import Answer, Progress, Sentence
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

CSS = """
#conversation { height: calc(100vh - 300px) !important; min-height: 380px; }
#article-view .article-scroll { max-height: calc(100vh - 240px); overflow-y: auto; padding: 0 8px 0 4px; }
.answer-text { margin: 0 0 .5em 0; }
.answer .progress, .answer .progress-detail, #chat-status { font-style: italic; color: #374151; }
.answer .note { font-size: .9em; color: #374151; }
.answer button.cite { border: 0; background: none; color: #1d4ed8; text-decoration: underline; cursor: pointer;
  padding: 0 1px; font: inherit; }
.answer details.source { border-left: 3px solid #1d4ed8; margin: .4em 0; padding: .1em .6em; }
.answer details.closest { border-left-color: #6b7280; }
.answer details.source summary { cursor: pointer; font-weight: 600; }
.answer blockquote { margin: .3em 0; white-space: pre-wrap; }
.answer mark, #article-view mark { background: #fde68a; color: #111827; }
.answer .source-actions a.blog-link { color: #1d4ed8; font-size: .9em; margin-left: 4px; }
.answer .source-actions button, .answer button.copy-answer { border: 1px solid #1d4ed8; background: #fff;
  color: #1d4ed8; border-radius: 4px; padding: 2px 8px; margin: 2px 4px 2px 0; cursor: pointer; font-size: .9em; }
.answer .lang-note { font-size: .85em; color: #374151; }
.hidden-control { display: none !important; }
.related { margin: .6em 0 .1em 0; }
.related .related-title { font-weight: 600; font-size: .92em; margin: 0 0 .3em 0; }
.related ul { list-style: none; padding: 0; margin: 0; display: flex; flex-wrap: wrap; gap: 6px; }
.related button.suggest { border: 1px solid #1d4ed8; background: #eff6ff; color: #1e3a8a; border-radius: 14px;
  padding: 4px 10px; cursor: pointer; font-size: .9em; text-align: left; }
.related button.suggest:hover, .related button.suggest:focus-visible { background: #dbeafe; }
#send { background: #1d4ed8 !important; color: #fff !important; border-color: #1d4ed8 !important; }
#stop { background: #b91c1c !important; color: #fff !important; border-color: #b91c1c !important; }
h1 { font-size: 1.6em; margin: .2em 0; }
#article-view h2 { font-size: 1.15em; }
#article-view .article-text { white-space: pre-wrap; line-height: 1.5; }
@media (max-width: 640px) {
  #conversation { height: 65vh !important; min-height: 320px; }
  #article-view .article-scroll { max-height: 60vh; }
}
"""

# The compact page for embedding (build_app(compact=True)): a 360 px side panel of a blog.
# The chat's own 🗑 clears the conversation there, so «Effacer» goes; «Arrêter» too (Escape
# still stops an answer), so that the question box and «Envoyer» share one row.
EMBED_CSS = """
.gradio-container { padding: 0 !important; min-width: 0 !important; }
.gradio-container .main.app { padding: 4px 6px !important; }
#conversation { height: calc(100vh - 165px) !important; min-height: 200px; }
#question { min-width: 0 !important; }
#send { min-width: 84px !important; flex: 0 0 84px !important; padding: 8px !important; align-self: stretch; }
#stop, #clear, .answer .source-actions, footer { display: none !important; }
"""

# Marker clicks open and scroll to their source; «Lire dans l'article» asks the server for the
# article (through a hidden textbox and button); copy puts the plain text on the clipboard;
# Escape stops an answer being written.
HEAD = """
<script>
(() => {
  const setRequest = (value) => {
    const box = document.querySelector('#article-request textarea, #article-request input');
    if (!box) return;
    box.value = value;
    box.dispatchEvent(new Event('input', {bubbles: true}));
    setTimeout(() => document.querySelector('#article-open')?.click(), 50);
  };
  document.addEventListener('click', async (event) => {
    const cite = event.target.closest('button.cite');
    if (cite) {
      const answer = cite.closest('.answer');
      const source = answer?.querySelector(`details.source[data-n="${cite.dataset.n}"]`);
      if (source) {
        source.open = true;
        source.scrollIntoView({block: 'nearest', behavior: 'smooth'});
        source.querySelector('summary')?.focus({preventScroll: true});
      }
      return;
    }
    const open = event.target.closest('button.open-article');
    if (open) {
      setRequest(JSON.stringify({article: open.dataset.article, spans: open.dataset.spans}));
      return;
    }
    const suggest = event.target.closest('button.suggest');
    if (suggest) {  // asked in the conversation, as if typed
      const box = document.querySelector('#question textarea');
      if (!box) return;
      box.value = suggest.dataset.question || '';
      box.dispatchEvent(new Event('input', {bubbles: true}));
      setTimeout(() => document.querySelector('#send')?.click(), 50);
      return;
    }
    const copy = event.target.closest('button.copy-answer');
    if (copy) {
      const text = copy.dataset.copy || '';
      try { await navigator.clipboard.writeText(text); }
      catch (e) {
        const area = document.createElement('textarea');
        area.value = text; document.body.appendChild(area); area.select();
        document.execCommand('copy'); area.remove();
      }
      copy.dataset.copied = '1';
      copy.textContent = copy.dataset.done || '✓';
    }
  });
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') document.querySelector('#stop')?.click();
  });
  // The 👍/👎 buttons in French: Gradio labels them in the browser's language («Like»), and
  // in English («Liked») once pressed, and has no setting for it.
  const LIKES = {Like: 'J’aime', "J'aime": 'J’aime', Liked: 'Vous aimez', Dislike: 'Je n’aime pas',
    "Je n'aime pas": 'Je n’aime pas', Disliked: 'Vous n’aimez pas'};
  new MutationObserver(() => {
    document.querySelectorAll('#conversation button[aria-label]').forEach((button) => {
      const label = LIKES[button.getAttribute('aria-label')];
      if (label && label !== button.getAttribute('aria-label')) {
        button.setAttribute('aria-label', label);
        if (button.title) button.title = label;
      }
    });
  }).observe(document.documentElement, {subtree: true, childList: true, attributes: true,
                                         attributeFilter: ['aria-label']});
  // Work shown at once: the first answer of a page waits ~0.7 s for Gradio to open its event
  // stream, so the page says it started before the server's first word, then steps aside.
  const started = () => {
    const status = document.querySelector('#chat-status');
    if (!status) return;
    status.textContent = 'Recherche dans les articles…';
    status.hidden = false;
    const conversation = document.querySelector('#conversation');
    const done = new MutationObserver(() => { status.hidden = true; done.disconnect(); });
    if (conversation) done.observe(conversation, {subtree: true, childList: true, characterData: true});
  };
  document.addEventListener('keydown', (event) => {
    const box = event.target.closest?.('#question');
    if (box && event.key === 'Enter' && !event.shiftKey && event.target.value.trim()) started();
  }, true);
  document.addEventListener('click', (event) => {
    if (event.target.closest('#send') && document.querySelector('#question textarea')?.value.trim()) started();
  }, true);
})();
</script>
"""

WELCOME = (
    '<div class="welcome"><p>Bonjour ! Posez une question sur les articles, en français ou en anglais. '
    "Chaque réponse montre ses sources : cliquez sur [1] pour voir la phrase citée, puis « Lire dans "
    "l’article » pour la lire dans son contexte. 👍 / 👎 nous aident à améliorer les réponses.</p></div>"
)
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


def _attr(text: str) -> str:
    return html.escape(text, quote=True)


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


def _marked(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` escaped, the ``spans`` (start, end) in ``<mark>``."""
    out, last = [], 0
    for start, end in sorted(spans):
        if start < last:
            continue
        out += [shown(text[last:start]), "<mark>", shown(text[start:end]), "</mark>"]
        last = end
    out.append(shown(text[last:]))
    return "".join(out)


def _with_markers(text: str, numbers: set[int], lang: str) -> str:
    """Escaped answer text whose [n] markers are buttons that open source n."""
    label = TEXT[lang]["source_button"]

    def button(match: re.Match[str]) -> str:
        n = int(match.group(1))
        if n not in numbers:
            return match.group(0)
        return f'<button type="button" class="cite" data-n="{n}" aria-label="{_attr(label.format(n=n))}">[{n}]</button>'

    return re.sub(r"\[(\d+)\]", button, shown(text))


def _open_button(article_id: str, spans: list[tuple[int, int]], lang: str, link: str = "") -> str:
    """«Read in the article»: the article and the quotes' offsets in it; and, when the article
    is on the blog, a link to it there that scrolls to the quote (:mod:`chatbot.links`)."""
    where = ",".join(f"{start}-{end}" for start, end in spans)
    blog = (
        f'<a class="blog-link" href="{_attr(link)}" target="_blank" rel="noopener noreferrer" '
        f'aria-label="{TEXT[lang]["on_blog_label"]}">{TEXT[lang]["on_blog"]} ↗</a>'
        if link.startswith(("https://", "http://"))
        else ""
    )
    return (
        f'<div class="source-actions"><button type="button" class="open-article" data-article="{_attr(article_id)}" '
        f'data-spans="{where}">{TEXT[lang]["open_article"]}</button>{blog}</div>'
    )


def copy_text(result: Answer) -> str:
    """The answer as plain text with its references (title and quote), ready to paste."""
    lines = [result.text]
    if result.note:
        lines.append(f"({result.note})")
    for n, cited in result.sources():
        for c in cited:
            lines.append(f"[{n}] {c.article} : « {' '.join(c.quote.split())} »" + (f" {c.url}" if c.url else ""))
    return "\n".join(lines)


def render_suggestions(questions: Sequence[str], title: str) -> str:
    """Clickable questions (the page's script asks the one clicked in the conversation)."""
    if not questions:
        return ""
    items = "".join(
        f'<li><button type="button" class="suggest" data-question="{_attr(q)}">{shown(q)}</button></li>'
        for q in questions
    )
    return (
        f'<div class="related" role="group" aria-label="{_attr(title)}">'
        f'<p class="related-title">{shown(title)}</p><ul>{items}</ul></div>'
    )


def welcome(service: ChatService) -> str:
    """The chat's first message: how it works, and questions to start with once the
    suggestions are built (:mod:`chatbot.suggestions`; never waits for them)."""
    built = service.suggestions.ready()
    starters = [s.question for s in built.starters("fr")] if built is not None else []
    if not starters:
        return WELCOME
    return WELCOME.removesuffix("</div>") + render_suggestions(starters, STARTERS_TITLE) + "</div>"


def render_answer(service: ChatService, result: Answer, answer_id: str, asked: Sequence[str] = ()) -> str:
    """The whole answer message: text with marker buttons, note, sources or closest passage,
    and «Questions liées» (none of ``asked``, the conversation's questions)."""
    lang = result.lang if result.lang in TEXT else "fr"
    words = TEXT[lang]
    numbers = {c.n for c in result.citations}
    parts = [
        f'<div class="answer" data-answer="{answer_id}" data-mode="{result.mode}" '
        f'data-abstained="{str(result.abstained).lower()}" lang="{lang}">',
        f'<p class="answer-text" lang="{"fr" if result.mode == "extractive" and not result.abstained else lang}">'
        f"{_with_markers(result.text, numbers, lang)}</p>",
    ]
    if result.note:
        parts.append(f'<p class="note">{shown(result.note)}</p>')
    if result.abstained:
        closest = result.evidence[:1]
        if closest:
            parts.append(f'<p class="closest-intro">{words["closest"]}</p>')
            parts.append(_closest_block(service, closest[0], lang))
    elif result.citations:
        if lang != "fr":
            parts.append(f'<p class="lang-note">{words["french_quotes"]}</p>')
        parts.append(f'<div class="sources" aria-label="{words["sources"]}">')
        for i, (n, cited) in enumerate(result.sources()):
            first = cited[0]
            spans = [(c.quote_start, c.quote_end) for c in cited]
            k, total = service.passage_of(first.chunk_id)
            where = words["passage"].format(k=k, total=total)
            in_article = [(first.chunk_start + start, first.chunk_start + end) for start, end in spans]
            parts.append(
                f'<details class="source" data-n="{n}"{" open" if i == 0 else ""}>'
                f"<summary>[{n}] {shown(first.article)} — {where}</summary>"
                f'<blockquote lang="fr">{_marked(first.text, spans)}</blockquote>'
                f"{_open_button(first.article_id, in_article, lang, first.url)}</details>"
            )
        parts.append("</div>")
    done = "Copié ✓" if lang == "fr" else "Copied ✓"
    parts.append(
        f'<button type="button" class="copy-answer" data-done="{done}" data-copy="{_attr(copy_text(result))}">'
        f"{words['copy']}</button>"
    )
    built = service.suggestions.ready()
    if built is not None:
        parts.append(render_suggestions([s.question for s in related_to(built, result, asked)], words["related"]))
    parts.append("</div>")
    return "".join(parts)


def _closest_block(service: ChatService, sentence: Sentence, lang: str) -> str:
    chunk = sentence.hit.chunk
    k, total = service.passage_of(chunk.id)
    where = TEXT[lang]["passage"].format(k=k, total=total)
    link = text_fragment_url(chunk.article_url, sentence.text)
    return (
        f'<details class="source closest" data-n="0" open><summary>{TEXT[lang]["closest_label"]} : '
        f"{shown(chunk.article_title)} — {where}</summary>"
        f'<blockquote lang="fr">{_marked(chunk.text, [(sentence.start, sentence.end)])}</blockquote>'
        f"{_open_button(chunk.article_id, [(chunk.start + sentence.start, chunk.start + sentence.end)], lang, link)}"
        "</details>"
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
    done = f'<p class="progress-detail">{words["written"].format(words=count)}</p>' if count else ""
    return f'<div class="answer" lang="{lang}"><p class="progress" role="status">{status}</p>{done}</div>'


STALE_ARTICLE = (
    "Cet article a changé depuis la construction de l’index : voici le texte indexé, celui que "
    "citent les réponses (relancez « chatbot index » pour le mettre à jour)."
)


def render_article(service: ChatService, article_id: str, spans: Sequence[tuple[int, int]] = ()) -> str:
    """A whole article as indexed, escaped, in a scroll box; the quoted ``spans`` (offsets in
    the article text) in ``<mark>``, those that do not fit it left out."""
    article = service.articles().get(article_id)
    if article is None:
        return "<p>Cet article n’est plus dans le corpus.</p>"
    text = article.text
    fitting = [(start, end) for start, end in spans if 0 <= start < end <= len(text)]
    note = f'<p class="note stale">{shown(STALE_ARTICLE)}</p>' if article.stale else ""
    return (
        f'<div class="article-scroll" tabindex="0" role="region" aria-label="Article : {_attr(article.title)}">'
        f'<article lang="fr"><h2>{shown(article.title)}</h2>{note}'
        f'<div class="article-text">{_marked(text, fitting)}</div></article></div>'
    )


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
