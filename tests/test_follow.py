"""A server follows the index it serves: rebuilt under it (``chatbot index`` in another process),
it answers from the new build without a restart, and no question fails meanwhile."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from chatbot.backends import build_index
from chatbot.backends.local import CURRENT
from chatbot.reader import ExtractiveReader
from chatbot.retrieval import Retriever
from chatbot.service import ChatService
from chatbot.settings import Settings

from .conftest import OPEN, REPO, FakeEmbedder

LISBONNE = "# Lisbonne\n\nLisbonne accueille le Web Summit chaque novembre depuis 2016."
LISBONNE_AGAIN = "# Lisbonne\n\nLisbonne accueille le Web Summit chaque novembre, au moins jusqu’en 2028."
QUESTIONS = (
    "Quel est le plafond d’imposition des profits à Hong Kong ?",
    "Combien d’entreprises ne sont pas présentes sur LinkedIn ?",
    "Pourquoi ne pas citer ses sources sur Twitter ?",
)


def _service(settings: Settings, tmp_path: Path) -> ChatService:
    from chatbot.feedback import FeedbackLog

    retriever = Retriever(settings, embedder=FakeEmbedder())
    return ChatService(settings, retriever, reader=ExtractiveReader(OPEN), feedback=FeedbackLog(tmp_path / "fb.jsonl"))


def test_the_service_answers_from_a_rebuilt_index_without_a_restart(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Retriever, "REFRESH_EVERY_S", 0.0)  # else the pointer is read once a second
    build_index(settings, FakeEmbedder())
    service = _service(settings, tmp_path)
    assert service.ask(QUESTIONS[0]).citations
    assert "lisbonne" not in service.articles()
    (settings.corpus_dir / "lisbonne.md").write_text(LISBONNE, encoding="utf-8")
    build_index(settings, FakeEmbedder())  # as `chatbot index` would, from another process
    result = service.ask("Quand Lisbonne accueille-t-elle le Web Summit ?")
    assert "lisbonne" in {c.article_id for c in result.citations}
    assert "depuis 2016" in service.articles()["lisbonne"].text  # the article view follows too
    assert service.passage_of("lisbonne:0") == (1, 1)


REBUILDS = """
import sys, time
sys.path.insert(0, {repo!r})
from pathlib import Path
from chatbot.backends import build_index
from chatbot.settings import Settings
from tests.conftest import FakeEmbedder

settings = Settings(corpus_dir=Path({corpus!r}), index_dir=Path({index!r}), model="fake", chunk_size=120,
                    chunk_overlap=20)
Path({ready!r}).touch()
for text in ({first!r}, {second!r}):
    time.sleep(0.7)
    (settings.corpus_dir / "lisbonne.md").write_text(text, encoding="utf-8")
    build_index(settings, FakeEmbedder(), rebuild=True)
"""


@pytest.mark.integration
def test_40_api_questions_from_2_clients_while_the_index_is_rebuilt_twice(settings: Settings, tmp_path: Path) -> None:
    """The served API (chatbot.server's app, in this process) on the local backend; the index
    rebuilt twice by another process while two clients ask: no error, every answer cited, and
    the server answers from the last build at the end."""
    import uvicorn

    from chatbot.access import Access
    from chatbot.bench import free_port
    from chatbot.server import build_server

    build_index(settings, FakeEmbedder())
    service = _service(settings, tmp_path)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            build_server(service, Access(api_keys=("k1", "k2"), question_limit="1000/minute")),
            port=port,
            log_level="warning",
        )
    )
    serving = threading.Thread(target=server.run, daemon=True)
    serving.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    ready = tmp_path / "ready"
    script = REBUILDS.format(
        repo=str(REPO), corpus=str(settings.corpus_dir), index=str(settings.index_dir), ready=str(ready),
        first=LISBONNE, second=LISBONNE_AGAIN,
    )  # fmt: skip
    child = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        while not ready.exists() and child.poll() is None:
            time.sleep(0.02)
        answers: list[tuple[int, int]] = []  # (status, citations)
        errors: list[str] = []

        def client(key: str, offset: int) -> None:
            with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
                n = 0
                while n < 20 or child.poll() is None:  # 20 each, and more until both builds are in
                    question = QUESTIONS[(n + offset) % len(QUESTIONS)]
                    try:
                        reply = http.post(
                            url, json={"model": "extractive", "messages": [{"role": "user", "content": question}]}
                        )
                        cited = len(reply.json()["chatbot"]["citations"]) if reply.status_code == 200 else 0
                        answers.append((reply.status_code, cited))
                        if reply.status_code != 200:
                            errors.append(reply.text)
                    except httpx.HTTPError as exc:
                        errors.append(repr(exc))
                    n += 1
                    time.sleep(0.05)

        clients = [threading.Thread(target=client, args=(key, i)) for i, key in enumerate(("k1", "k2"))]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join(timeout=300)
        assert child.wait(timeout=120) == 0
        assert errors == []
        assert len(answers) >= 40 and all(status == 200 and cited > 0 for status, cited in answers), answers
        time.sleep(Retriever.REFRESH_EVERY_S)  # the next question reads the pointer again
        with httpx.Client(headers={"Authorization": "Bearer k1"}, timeout=60) as http:
            question = "Jusqu’en quelle année Lisbonne accueille-t-elle le Web Summit ?"
            reply = http.post(url, json={"model": "extractive", "messages": [{"role": "user", "content": question}]})
        cited = reply.json()["chatbot"]["citations"]
        assert any(c["article_id"] == "lisbonne" and "2028" in c["quote"] for c in cited), cited
        assert service.retriever.generation == (settings.index_dir / CURRENT).read_text(encoding="utf-8").strip()
    finally:
        child.kill()
        server.should_exit = True
        serving.join(timeout=30)
