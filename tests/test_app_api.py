"""The web chat launched in-process and called through gradio_client, on the real index."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import pytest
from gradio_client import Client

from chatbot.answer import NOT_FOUND
from chatbot.app import answer_text, text_of
from chatbot.cli import main
from chatbot.service import ChatService

pytestmark = pytest.mark.integration


def _ask(client: Client, question: str, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    _, messages = client.predict(question, history, 5, "hybrid", api_name="/ask")
    return list(messages)


def _last(messages: list[dict[str, Any]]) -> str:
    """The last message (the answer and its sources), as HTML."""
    return text_of(messages[-1]["content"])


def _answer_id(shown: str) -> str:
    """The id a client sends to /feedback: the page gives it as the answer's data-answer."""
    match = re.search(r'data-answer="([0-9a-f]+)"', shown)
    assert match, shown
    return match.group(1)


def test_answer_then_follow_up_with_sources_in_sight(chat_url: str) -> None:
    client = Client(chat_url, verbose=False)
    messages = _ask(client, "Quelle part des PME a un site web en France ?", [])
    shown = _last(messages)
    assert "66%" in answer_text(shown) and "[1]" in answer_text(shown)
    # The first source is open, its title and passage position given, the quoted words marked.
    first = re.search(r'<details class="source" data-n="1" open>(.*?)</details>', shown, re.S)
    assert first and "L’association digitale" in first.group(1) and "passage" in first.group(1)
    assert "<mark>" in first.group(1) and "66%" in first.group(1)
    assert 'class="open-article"' in first.group(1) and 'class="copy-answer"' in shown

    messages = _ask(client, "Et en Finlande ?", messages)
    assert "95% en Finlande" in answer_text(_last(messages))
    assert [text_of(m["content"]) for m in messages if m["role"] == "user"] == [
        "Quelle part des PME a un site web en France ?",
        "Et en Finlande ?",
    ]


def test_an_unanswered_question_is_declined_with_the_closest_passage_not_as_an_answer(chat_url: str) -> None:
    shown = _last(_ask(Client(chat_url, verbose=False), "Combien de salariés emploie Kaporal Group ?", []))
    assert answer_text(shown) == "Je ne trouve pas la réponse dans les articles."
    assert "Les articles n’en parlent pas directement ; le passage le plus proche :" in shown
    assert '<details class="source closest"' in shown and "ce n’est pas une réponse" in shown
    assert 'class="cite"' not in shown  # nothing presented as the answer's source


def test_an_english_question_gets_english_framing_and_french_quotes(chat_url: str) -> None:
    shown = _last(_ask(Client(chat_url, verbose=False), "How many Chinese people use the internet?", []))
    assert 'lang="en"' in shown and "The articles are in French" in shown and "Read in the article" in shown
    assert '<blockquote lang="fr">' in shown


def test_empty_and_huge_questions_get_a_short_french_message(chat_url: str) -> None:
    client = Client(chat_url, verbose=False)
    assert _last(_ask(client, "   ", [])) == "Veuillez saisir une question."
    assert "trop longue" in _last(_ask(client, "mot " * 1500, []))


def test_a_refused_question_does_not_poison_the_conversation(chat_url: str) -> None:
    client = Client(chat_url, verbose=False)
    messages = _ask(client, "Quelle part des PME a un site web en France ?", [])
    messages = _ask(client, "Et ailleurs ? " * 160, messages)  # refused: too long (2,240 characters)
    assert "trop longue" in _last(messages)
    messages = _ask(client, "Et en Finlande ?", messages)
    assert "95% en Finlande" in answer_text(_last(messages))  # asked after the first question, not the refused one


def test_feedback_is_written_locally_and_the_down_votes_become_draft_questions(
    chat_url: str, chat_service: ChatService, tmp_path: Path
) -> None:
    client = Client(chat_url, verbose=False)
    question = "Quel est le plafond d’imposition des profits à Hong Kong ?"
    answer_id = _answer_id(_last(_ask(client, question, [])))
    reply = client.predict(answer_id, "down", "La bonne phrase est la deuxième.", api_name="/feedback")
    assert reply.startswith("Merci")
    unknown = client.predict("0" * 12, "up", "", api_name="/feedback")
    assert unknown == "Cette réponse est trop ancienne pour être notée."
    entries = [e for e in chat_service.feedback.read() if e.answer_id == answer_id]
    assert len(entries) == 1 and entries[0].vote == "down" and entries[0].question == question
    assert entries[0].sources and "16,5%" in " ".join(s["quote"] for s in entries[0].sources)
    drafts = tmp_path / "drafts.jsonl"
    assert main(["feedback", "--file", str(chat_service.feedback.path), "--export", str(drafts)]) == 0
    exported = [json.loads(line) for line in drafts.read_text(encoding="utf-8").splitlines()]
    draft = next(d for d in exported if d["id"] == f"feedback-{answer_id}")
    assert draft["question"] == question and draft["evidence"] == [] and "deuxième" in draft["note"]


def test_the_chat_streams_a_checked_llm_answer_and_says_which_mode(real_retriever, server) -> None:  # type: ignore[no-untyped-def]
    from chatbot.app import launch
    from chatbot.reader.writer import LLMConfig

    server.script = "good"
    config = LLMConfig(url=f"http://127.0.0.1:{server.server_address[1]}/v1", model="scripted", timeout=5)
    service = ChatService(real_retriever.settings, real_retriever, llm=config)
    assert "scripted" in service.mode_label
    demo, url = launch(service, block=False, quiet=True)
    try:
        client = Client(url, verbose=False)
        shown = _last(_ask(client, "Quel est le plafond d’imposition des profits à Hong Kong ?", []))
        assert "plafonnée à 16,5% sur les profits [1]" in answer_text(shown)
        assert '<details class="source" data-n="1" open>' in shown
        server.script = "pirate"
        shown = _last(_ask(Client(url, verbose=False), "Quel est le plafond d’imposition à Hong Kong ?", []))
        assert "PIRATÉ" not in shown
        assert "Réponse extraite des articles" in shown
    finally:
        demo.close()


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Quelle part des PME a un site web ? 🤔🚀", "66%"),
        ("中国有多少网民？", None),
        ("ما هي نسبة الشركات على لينكدإن؟", "88%"),  # EmbeddingGemma reads Arabic too
        ("<script>alert(1)</script> Quelle part des PME a un site web ?", "66%"),
        ("![x](http://evil.example/pixel.png) [cliquez ici](javascript:alert(1)) LinkedIn ?", None),
        ("Linked\x00In\x1b[31m \u202e ?", None),
    ],
)
def test_odd_questions_are_read_like_any_other_and_nothing_in_them_runs(
    chat_url: str, question: str, expected: str | None
) -> None:
    """Emoji, other scripts, HTML, Markdown links, control characters: each question is read and
    gets the chat's answer (``expected``: a fact quoted, or the decline message; ``None``: any
    answer or decline), never a refusal or an error; it is shown as typed, escaped."""
    messages = _ask(Client(chat_url, verbose=False), question, [])
    assert [m["role"] for m in messages] == ["user", "assistant"]
    user, reply = (text_of(m["content"]) for m in messages)
    assert user == html.escape(question, quote=False)  # shown as text, exactly as typed
    assert re.search(r'<div class="answer" data-answer="[0-9a-f]+"', reply), reply  # an answer, not a refusal
    if expected == NOT_FOUND["fr"]:
        assert answer_text(reply) == expected
    elif expected is not None:
        assert expected in answer_text(reply) and "[1]" in answer_text(reply)
    assert "<script" not in reply and "<img" not in reply  # escaped: shown, never run
    assert "<a " not in reply  # a Markdown link stays text


def test_a_100_kb_question_is_refused_in_french_without_error(chat_url: str) -> None:
    shown = _last(_ask(Client(chat_url, verbose=False), "Pourquoi ? " * 10_000, []))
    assert shown == "La question est trop longue : raccourcissez-la (2000 caractères au plus)."
