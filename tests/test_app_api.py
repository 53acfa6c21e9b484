"""The web chat launched in-process and called through gradio_client, on the real index."""

from __future__ import annotations

from typing import Any

import pytest
from gradio_client import Client

from chatbot.app import text_of

pytestmark = pytest.mark.integration


def _ask(client: Client, question: str, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    _, messages = client.predict(question, history, 5, "hybrid", api_name="/ask")
    return list(messages)


def _texts(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**m, "content": text_of(m["content"])} for m in messages]


def test_answer_then_follow_up_with_sources(chat_url: str) -> None:
    client = Client(chat_url, verbose=False)
    messages = _ask(client, "Quelle part des PME a un site web en France ?", [])
    answer, sources = _texts(messages)[-2:]
    assert "66%" in answer["content"] and "[1]" in answer["content"]
    assert sources["metadata"]["title"] == "Sources"
    assert "L’association digitale" in sources["content"]
    assert "▶ " in sources["content"]

    messages = _texts(_ask(client, "Et en Finlande ?", messages))
    assert "95% en Finlande" in messages[-2]["content"]
    assert [m["content"] for m in messages if m["role"] == "user"] == [
        "Quelle part des PME a un site web en France ?",
        "Et en Finlande ?",
    ]


def test_unanswerable_question_is_declined_in_french(chat_url: str) -> None:
    messages = _texts(_ask(Client(chat_url, verbose=False), "Quelle est la recette de la tarte aux pommes ?", []))
    assert messages[-2]["content"] == "Je ne trouve pas la réponse dans les articles."
    assert messages[-1]["metadata"]["title"] == "Articles les plus proches"


def test_empty_and_huge_questions_get_a_short_french_message(chat_url: str) -> None:
    client = Client(chat_url, verbose=False)
    assert _texts(_ask(client, "   ", []))[-1]["content"] == "Veuillez saisir une question."
    assert "trop longue" in _texts(_ask(client, "mot " * 1500, []))[-1]["content"]


def test_the_chat_streams_a_checked_llm_answer_and_says_which_mode(real_retriever, server) -> None:  # type: ignore[no-untyped-def]
    from chatbot.app import ChatService, build_app
    from chatbot.llm import LLMConfig

    server.script = "good"
    config = LLMConfig(url=f"http://127.0.0.1:{server.server_address[1]}/v1", model="scripted", timeout=5)
    service = ChatService(real_retriever.settings, real_retriever, llm=config)
    assert "scripted" in service.mode_label
    demo = build_app(service).queue()
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        client = Client(url, verbose=False)
        messages = _texts(_ask(client, "Quel est le plafond d’imposition des profits à Hong Kong ?", []))
        assert "plafonnée à 16,5% sur les profits [1]" in messages[-2]["content"]
        assert messages[-1]["metadata"]["title"] == "Sources"
        server.script = "pirate"
        messages = _texts(_ask(Client(url, verbose=False), "Quel est le plafond d’imposition à Hong Kong ?", []))
        assert "PIRATÉ" not in messages[-2]["content"]
        assert "Réponse extraite des articles" in messages[-2]["content"]
    finally:
        demo.close()


@pytest.mark.parametrize(
    "question",
    [
        "Quelle part des PME a un site web ? 🤔🚀",
        "中国有多少网民？",
        "ما هي نسبة الشركات على لينكدإن؟",
        "<script>alert(1)</script> Quelle part des PME a un site web ?",
        "![x](http://evil.example/pixel.png) [cliquez ici](javascript:alert(1)) LinkedIn ?",
        "Linked\x00In\x1b[31m \u202e ?",
    ],
)
def test_odd_questions_get_an_answer_or_a_short_message_and_nothing_live(chat_url: str, question: str) -> None:
    messages = _ask(Client(chat_url, verbose=False), question, [])
    user = next(m for m in messages if m["role"] == "user")
    replies = [m for m in messages if m["role"] == "assistant"]
    assert replies and text_of(replies[0]["content"]).strip()
    for message in messages:
        content = text_of(message["content"])
        assert "<script" not in content and "<img" not in content  # escaped: shown, never run
    assert "&lt;script&gt;" in text_of(user["content"]) or "<" not in question


def test_a_100_kb_question_is_refused_in_french_without_error(chat_url: str) -> None:
    messages = _texts(_ask(Client(chat_url, verbose=False), "Pourquoi ? " * 10_000, []))
    assert messages[-1]["content"] == "La question est trop longue : raccourcissez-la (2000 caractères au plus)."
