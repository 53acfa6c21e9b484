"""The chat's memory is its state (a list of turns), never its HTML; a refused question never
weighs on the next ones; what users share (locks, lazy views of the index) is thread-safe;
the article view shows the text the index was built from."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chatbot.answer import Answer, Progress, answer
from chatbot.app import render_article, respond, shown_turns, turn_at
from chatbot.conversation import Turn
from chatbot.feedback import FeedbackLog
from chatbot.reader import ExtractiveReader
from chatbot.retrieval import Retriever
from chatbot.service import ChatService
from chatbot.settings import Settings

from .conftest import OPEN

QUESTION = "Quel est le plafond de l'imposition sur les profits à Hong Kong ?"


class Recording(ChatService):
    """The chat's service, keeping what each question was asked after."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[str, list[str], list[tuple[str, str]]]] = []

    def stream(
        self, question: str, history: list[str], turns: list[tuple[str, str]], k: int, mode: str
    ) -> Iterator[Progress | str | Answer]:
        self.calls.append((question, list(history), list(turns)))
        yield from super().stream(question, history, turns, k, mode)


@pytest.fixture
def service(retriever: Retriever, tmp_path: Path) -> Recording:
    feedback = FeedbackLog(tmp_path / "feedback.jsonl")
    return Recording(retriever.settings, retriever, reader=ExtractiveReader(OPEN), feedback=feedback)


def _reply(service: ChatService, question: str, history: list[dict[str, Any]], turns: list[Turn]) -> Any:
    *_, (box, shown, kept) = respond(service, question, history, turns, 5, "hybrid")
    assert box == ""
    return shown, kept


def test_a_refused_question_is_no_part_of_the_questions_after_it(service: Recording) -> None:
    history, turns = _reply(service, "Quelle imposition à Hong Kong ?", [], [])
    history, turns = _reply(service, "mot " * 1500, history, turns)
    assert "trop longue" in history[-1]["content"] and turns[-1].refused
    history, turns = _reply(service, "Et la TVA ?", history, turns)
    assert "trop longue" not in history[-1]["content"] and turns[-1].answered
    assert service.calls[-1][1] == ["Quelle imposition à Hong Kong ?"]  # asked after the answered one only
    assert [t.refused for t in turns] == [False, True, False]


def test_a_long_valid_question_then_a_medium_one_both_get_answers(service: Recording) -> None:
    long_one = ("Quelle imposition sur les profits à Hong Kong ? " * 40)[:1500]
    medium = ("Et la TVA à Hong Kong, existe-t-elle vraiment ? " * 20)[:600]
    history, turns = _reply(service, long_one, [], [])
    history, turns = _reply(service, medium, history, turns)
    assert [t.answered for t in turns] == [True, True], history[-1]["content"]


def test_the_conversation_is_remembered_whatever_the_messages_look_like(service: Recording) -> None:
    history, turns = _reply(service, QUESTION, [], [])
    first = turns[0]
    assert first.answered and first.answer and f'data-answer="{first.answer_id}"' in history[-1]["content"]
    # Another markup (or a browser's list of parts): the chat never reads its messages back.
    restyled = [{"role": m["role"], "content": [{"type": "text", "text": "…"}]} for m in history]
    history, turns = _reply(service, "Et la TVA ?", restyled, turns)
    question, asked, exchanged = service.calls[-1]
    assert (question, asked, exchanged) == ("Et la TVA ?", [QUESTION], [(QUESTION, first.answer)])


def test_a_question_is_kept_as_typed_and_shown_escaped(service: Recording) -> None:
    history, turns = _reply(service, "<b>Hong Kong</b> ?", [], [])
    assert history[0]["content"] == "&lt;b&gt;Hong Kong&lt;/b&gt; ?"
    assert turns[0].question == "<b>Hong Kong</b> ?"
    _reply(service, "Et la TVA ?", history, turns)
    assert service.calls[-1][1] == ["<b>Hong Kong</b> ?"]


def test_a_new_conversation_from_a_client_starts_without_the_old_turns(service: Recording) -> None:
    _, turns = _reply(service, QUESTION, [], [])
    _reply(service, "Et la TVA ?", [], turns)  # same session, empty history: a new conversation
    assert service.calls[-1][1] == []
    assert shown_turns(turns, [{"role": "assistant", "content": "Bonjour"}]) == []
    two_asked = [{"role": "user", "content": "A ?"}, {"role": "user", "content": "B ?"}]
    assert shown_turns(turns, two_asked) == [turns[0], Turn("")]  # B's turn never came back: no answer


def test_a_vote_goes_to_the_answer_of_the_message_liked(service: Recording) -> None:
    history, turns = _reply(service, QUESTION, [{"role": "assistant", "content": "Bonjour"}], [])
    history, turns = _reply(service, "mot " * 1500, history, turns)
    history, turns = _reply(service, "Et la TVA ?", history, turns)
    # Messages: welcome, then a question and its reply per turn.
    assert [turn_at(turns, history, i) for i in (0, 1, 3, 7)] == [None, None, None, None]
    assert turn_at(turns, history, 2) == turns[0] and turns[0].answer_id
    assert turn_at(turns, history, 4) == turns[1] and turns[1].answer_id is None  # refused: nothing to rate
    assert turn_at(turns, history, 6) == turns[2]
    entry = service.record_feedback(str(turns[2].answer_id), "down")
    assert entry.question == "Et la TVA ?" and entry.history == (QUESTION,)


def test_an_answer_stopped_half_way_is_neither_context_nor_votable(service: Recording) -> None:
    replies = respond(service, QUESTION, [], [], 5, "hybrid")
    _, history, turns = next(replies)  # Stop pressed: the chat keeps what it was last given
    assert turns == [Turn(QUESTION)] and not turns[0].answered
    assert turn_at(turns, history, 1) == Turn(QUESTION)
    _reply(service, "Et la TVA ?", history, turns)
    assert service.calls[-1][1] == []


def test_a_vote_does_not_wait_for_another_users_answer(
    service: Recording, retriever: Retriever, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = answer(retriever, QUESTION, settings=OPEN)
    answer_id = service.remember(QUESTION, [], result)
    reading, release = threading.Event(), threading.Event()

    def slow_answer(*args: Any, **kwargs: Any) -> Answer:
        reading.set()
        release.wait(10)
        return result

    monkeypatch.setattr("chatbot.service.answer", slow_answer)
    other = threading.Thread(target=service.ask, args=("Et la TVA ?", [], 5, "hybrid"))
    other.start()
    try:
        assert reading.wait(5)
        vote = threading.Thread(target=service.record_feedback, args=(answer_id, "up"))
        vote.start()
        vote.join(2)
        recorded_meanwhile = not vote.is_alive()
    finally:
        release.set()
        other.join()
    assert recorded_meanwhile
    assert [e.vote for e in service.feedback.read()] == ["up"]


def _at_once(work: Any, threads: int = 4) -> None:
    """Run ``work`` in several threads started together."""
    start = threading.Barrier(threads)

    def run() -> None:
        start.wait()
        work()

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()


def test_the_articles_are_read_once_however_many_users_open_them_at_once(
    service: Recording, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chatbot import service as service_module

    reads: list[Path] = []
    real = service_module.load_corpus

    def slow(folder: Path) -> Any:
        reads.append(folder)
        time.sleep(0.2)
        return real(folder)

    monkeypatch.setattr(service_module, "load_corpus", slow)
    _at_once(service.articles)
    assert len(reads) == 1 and set(service.articles()) == {"chine", "linkedin", "twitter"}


def test_passage_positions_are_counted_once_however_many_users_ask_at_once(retriever: Retriever) -> None:
    class Slow:
        """A retriever whose passages take a while to list, counting the lists."""

        settings = retriever.settings
        derived = retriever.derived  # the service's views are kept per build of the index
        lists = 0

        @property
        def chunks(self) -> Any:
            Slow.lists += 1
            time.sleep(0.2)
            return retriever.chunks

    service = ChatService(retriever.settings, Slow())  # type: ignore[arg-type]
    _at_once(lambda: service.passage_of("chine:0"))
    assert Slow.lists == 1
    assert service.passage_of("chine:0") == (1, sum(c.article_id == "chine" for c in retriever.chunks))


def test_the_article_view_shows_the_indexed_text_after_an_edit_without_reindexing(
    settings: Settings, retriever: Retriever
) -> None:
    result = answer(retriever, QUESTION, settings=OPEN)
    cited = next(c for c in result.citations if c.article_id == "chine")
    spans = [(cited.chunk_start + cited.quote_start, cited.chunk_start + cited.quote_end)]
    path = settings.corpus_dir / "chine.md"
    heading = "# L’entrepreneuriat en Chine\n\n"
    path.write_text(
        path.read_text(encoding="utf-8").replace(heading, heading + "Un paragraphe ajouté, sans réindexer.\n\n"),
        encoding="utf-8",
    )
    shown = render_article(ChatService(settings, retriever), "chine", spans)
    assert f"<mark>{cited.quote}</mark>" in shown
    assert "ajouté" not in shown and "a changé depuis la construction de l’index" in shown


def test_an_unchanged_article_is_shown_as_written_without_a_note(settings: Settings, retriever: Retriever) -> None:
    service = ChatService(settings, retriever)
    view = service.articles()["linkedin"]
    written = (settings.corpus_dir / "linkedin.md").read_text(encoding="utf-8")
    assert not view.stale and view.title == "Les salariés ambassadeurs" and written.endswith(view.text)
    assert "a changé" not in render_article(service, "linkedin")


def test_an_article_whose_file_went_is_still_shown_as_indexed(settings: Settings, retriever: Retriever) -> None:
    os.remove(settings.corpus_dir / "twitter.txt")
    view = ChatService(settings, retriever).articles()["twitter"]
    assert view.stale and "grossière erreur sur Twitter" in view.text


@pytest.mark.integration
def test_the_api_keeps_each_clients_conversation_apart(service: Recording) -> None:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from gradio_client import Client

    from chatbot.app import launch

    demo, url = launch(service, block=False, quiet=True)
    try:
        first, other = Client(url, verbose=False), Client(url, verbose=False)
        _, messages = first.predict("mot " * 1500, [], 5, "hybrid", api_name="/ask")
        _, messages = first.predict(QUESTION, messages, 5, "hybrid", api_name="/ask")
        other.predict("Quelle part des entreprises sur LinkedIn ?", [], 5, "hybrid", api_name="/ask")
        first.predict("Et la TVA ?", messages, 5, "hybrid", api_name="/ask")
    finally:
        demo.close()
    assert service.calls[-1][:2] == ("Et la TVA ?", [QUESTION])
