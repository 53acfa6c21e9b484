"""The question log on a real `chatbot serve` (its own process, the real index): questions
asked through the chat and through the API land in it, with the vote; `chatbot report` then
shows the declined question among the gaps with its closest passage."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from gradio_client import Client

from chatbot.app import answer_text, text_of
from chatbot.bench import free_port, serving
from chatbot.cli import main
from chatbot.questionlog import read_log
from chatbot.service import ChatService
from chatbot.settings import Settings

pytestmark = pytest.mark.integration

PME = "Quelle part des PME a un site web en France ?"
HONG_KONG = "Quel est le plafond d’imposition des profits à Hong Kong ?"
UNANSWERED = "Combien de salariés emploie Kaporal Group ?"  # named in the articles, never answered


@pytest.fixture(scope="module")
def served(
    real_settings: Settings, chat_service: ChatService, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """``chatbot serve`` with the log on. ``chat_service`` first: it embeds the enrichment's
    questions into the index's cache, which the server then reads instead of embedding them
    itself before it listens (minutes on a busy machine, past the start's time limit)."""
    folder = tmp_path_factory.mktemp("logged")
    log = folder / "questions.jsonl"
    env = {"CHATBOT_QUESTION_LOG": str(log), "CHATBOT_FEEDBACK": str(folder / "feedback.jsonl"),
           "CHATBOT_QUESTION_LOG_SALT": "un sel de test"}  # fmt: skip
    port = free_port()
    with serving(real_settings, port, env=env, log=folder / "serve.log"):
        yield f"http://127.0.0.1:{port}", log


def test_questions_of_the_chat_and_the_api_are_logged_and_the_declined_one_is_a_gap_in_the_report(
    served: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, log = served
    chat = Client(f"{url}/", verbose=False)
    _, messages = chat.predict(PME, [], 5, "hybrid", api_name="/ask")
    assert "66%" in answer_text(text_of(list(messages)[-1]["content"]))
    _, messages = chat.predict(UNANSWERED, [], 5, "hybrid", api_name="/ask")
    assert answer_text(text_of(list(messages)[-1]["content"])) == "Je ne trouve pas la réponse dans les articles."

    api = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)
    answered = api.chat.completions.create(model="extractive", messages=[
        {"role": "user", "content": PME}, {"role": "assistant", "content": "66% [1]"},
        {"role": "user", "content": HONG_KONG},
    ])  # fmt: skip
    declined = api.chat.completions.create(model="extractive", messages=[{"role": "user", "content": UNANSWERED}])
    declined_id = (declined.model_extra or {})["chatbot"]["answer_id"]
    vote = httpx.post(f"{url}/v1/feedback", json={"answer_id": declined_id, "vote": "down"})
    assert vote.status_code == 200
    assert "16,5%" in (answered.choices[0].message.content or "")

    entries = read_log(log).entries
    assert [(e.via, e.question, e.declined) for e in entries] == [
        ("chat", PME, False),
        ("chat", UNANSWERED, True),
        ("api", HONG_KONG, False),
        ("api", UNANSWERED, True),
    ]
    pme, chat_declined, hong_kong, api_declined = entries
    assert hong_kong.follow_up_of == PME and pme.cited and "66%" in " ".join(c.quote for c in pme.cited)
    assert api_declined.vote == "down" and api_declined.answer_id == declined_id
    assert all(e.latency_ms and e.latency_ms > 0 and len(e.client) == 16 for e in entries)
    assert chat_declined.vector and chat_declined.embedder == "embeddinggemma" and chat_declined.closest is not None
    assert "127.0.0.1" not in log.read_text(encoding="utf-8")

    out = tmp_path / "report.html"
    assert main(["report", "--log", str(log), "--json", "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["figures"]["questions"] == 4 and report["figures"]["not_answered"] == 2
    (gap,) = report["gaps"]
    assert gap["questions"] == [{"question": UNANSWERED, "times": 2, "follow_up_of": ""}]
    assert gap["closest"]["article"] and gap["closest"]["quote"]  # the passage the chat showed beside its decline
    assert gap["closest"]["chunk_id"] == chat_declined.closest.chunk_id
    assert [v["question"] for v in report["down_votes"]] == [UNANSWERED]
    page = out.read_text(encoding="utf-8")
    assert UNANSWERED in page and "Ce que les articles ne disent pas" in page
