"""The question log: opt-in, no address or key kept, whole lines through crashes, rotation at
its size cap, retention; and the chat and the API both write to it through the service."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chatbot.answer import AnswerSettings
from chatbot.api import Asked, Conversation, complete
from chatbot.app import respond
from chatbot.errors import UsageError
from chatbot.feedback import FeedbackLog
from chatbot.questionlog import QuestionEntry, QuestionLog, read_log
from chatbot.reader import ExtractiveReader
from chatbot.retrieval import Retriever
from chatbot.service import ChatService

from .conftest import OPEN

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _entry(n: int, when: datetime = T0, **fields: object) -> QuestionEntry:
    values: dict[str, object] = {"answer_id": f"a{n}", "question": f"Question {n} ?", "declined": False,
                                 "time": when.isoformat(timespec="seconds")}  # fmt: skip
    return QuestionEntry(**{**values, **fields})  # type: ignore[arg-type]


def test_off_unless_a_file_is_named_and_malformed_settings_are_refused(tmp_path: Path) -> None:
    assert QuestionLog.from_env({}) is None
    log = QuestionLog.from_env({"CHATBOT_QUESTION_LOG": str(tmp_path / "q.jsonl"), "CHATBOT_QUESTION_LOG_DAYS": "30"})
    assert log is not None and log.retention_days == 30 and log.max_bytes == 20_000_000
    with pytest.raises(UsageError, match="CHATBOT_QUESTION_LOG_DAYS is a whole number"):
        QuestionLog.from_env({"CHATBOT_QUESTION_LOG": "q.jsonl", "CHATBOT_QUESTION_LOG_DAYS": "beaucoup"})
    with pytest.raises(UsageError, match="at least 1 day"):
        QuestionLog.from_env({"CHATBOT_QUESTION_LOG": "q.jsonl", "CHATBOT_QUESTION_LOG_DAYS": "0"})


def test_a_reader_is_a_salted_hash_never_an_address_or_a_key(tmp_path: Path) -> None:
    log = QuestionLog(tmp_path / "q.jsonl", salt="sel")
    reader = log.reader_of("ip:203.0.113.7")
    log.record(_entry(1, client=reader))
    text = log.path.read_text(encoding="utf-8")
    assert "203.0.113.7" not in text and reader in text and len(reader) == 16
    assert log.reader_of("ip:203.0.113.7") == reader != log.reader_of("ip:203.0.113.8")
    assert QuestionLog(tmp_path / "other.jsonl", salt="autre").reader_of("ip:203.0.113.7") != reader
    assert QuestionLog(tmp_path / "random.jsonl").reader_of("ip:203.0.113.7") != reader  # a random salt
    assert log.reader_of(None) == ""


def test_entries_and_their_votes_are_read_back_and_damaged_lines_counted(tmp_path: Path) -> None:
    log = QuestionLog(tmp_path / "q.jsonl", clock=Clock())
    log.record(_entry(1))
    log.record(_entry(2, declined=True, reason="no passage"))
    log.vote("a2", "up")
    log.vote("a2", "down")  # the last vote wins
    with log.path.open("a", encoding="utf-8") as out:
        out.write('{"kind": "question", "question": 3}\n[1, 2]\nnot json\n{"kind": "question", "answer_id": "a9", "que')
    log.record(_entry(4))  # after a torn line: on a line of its own
    contents = read_log(log.path)
    assert [e.answer_id for e in contents.entries] == ["a1", "a2", "a4"]
    assert contents.entries[1].vote == "down" and contents.entries[1].declined
    assert contents.damaged == 4


def test_a_process_killed_while_appending_leaves_only_whole_lines(tmp_path: Path) -> None:
    """A plain buffered writer flushes every 8 KB, mid-line: a kill then leaves half an entry."""
    path = tmp_path / "q.jsonl"
    code = (
        "import sys; from pathlib import Path; from chatbot.questionlog import QuestionLog, QuestionEntry\n"
        f"log = QuestionLog(Path({str(path)!r}))\n"
        "print('ready', flush=True)\n"
        "n = 0\n"
        "while True:\n"
        "    n += 1\n"
        "    log.record(QuestionEntry(f'a{n}', 'Quelle part des PME ? ' * 40, False, '2025-03-01T09:30:00+00:00'))\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, cwd=Path(__file__).parent.parent)
    assert child.stdout is not None and child.stdout.readline().strip() == b"ready"
    time.sleep(1.0)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    contents = read_log(path)
    assert len(contents.entries) > 10 and contents.damaged == 0


def test_threads_appending_at_once_never_mix_their_lines(tmp_path: Path) -> None:
    log = QuestionLog(tmp_path / "q.jsonl")

    def write(worker: int) -> None:
        for n in range(100):
            log.record(_entry(worker * 1000 + n, question="« " + "x" * 300 + " »"))

    threads = [threading.Thread(target=write, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    contents = read_log(log.path)
    assert len(contents.entries) == 600 and contents.damaged == 0


def test_past_its_size_cap_the_log_is_rotated_and_the_oldest_file_goes(tmp_path: Path) -> None:
    log = QuestionLog(tmp_path / "q.jsonl", max_bytes=10_000)
    for n in range(200):
        log.record(_entry(n, question=f"Question numéro {n} " + "y" * 120 + " ?"))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["q.jsonl", "q.jsonl.1", "q.jsonl.2", "q.jsonl.3"]
    assert all(p.stat().st_size <= 10_000 for p in tmp_path.iterdir())
    kept = [e.answer_id for e in read_log(log.path).entries]
    assert kept[-1] == "a199" and "a0" not in kept  # the oldest went with the fourth rotation
    assert kept == sorted(kept, key=lambda a: int(a[1:]))  # read oldest first across the files


def test_entries_older_than_the_retention_are_removed_at_start_and_once_a_day(tmp_path: Path) -> None:
    clock = Clock()
    log = QuestionLog(tmp_path / "q.jsonl", retention_days=30, clock=clock)
    log.record(_entry(1, T0 - timedelta(days=40)))  # already too old: gone at the next pruning
    log.record(_entry(2, T0 - timedelta(days=10)))
    log.vote("a2", "up")
    assert QuestionLog(log.path, retention_days=30, clock=clock).prune() == 0  # pruned when opened
    assert [e.answer_id for e in read_log(log.path).entries] == ["a2"]
    clock.now = T0 + timedelta(days=25)  # a2 is 35 days old, its vote 25
    log.record(_entry(3, clock.now))  # a day has passed since the last pruning: pruned first
    contents = read_log(log.path)
    assert [e.answer_id for e in contents.entries] == ["a3"] and contents.damaged == 0


def _service(retriever: Retriever, log: QuestionLog, tmp_path: Path, settings: AnswerSettings = OPEN) -> ChatService:
    return ChatService(retriever.settings, retriever, reader=ExtractiveReader(settings),
                       feedback=FeedbackLog(tmp_path / "feedback.jsonl"), questions=log)  # fmt: skip


def test_the_chat_and_the_api_log_each_answer_shown_and_its_vote(retriever: Retriever, tmp_path: Path) -> None:
    log = QuestionLog(tmp_path / "q.jsonl", salt="sel")
    service = _service(retriever, log, tmp_path)
    hong_kong = "Quel est le plafond d’imposition à Hong Kong ?"
    replies = list(respond(service, hong_kong, [], [], 3, "hybrid", "ip:10.0.0.1"))
    list(respond(service, "Et la TVA ?", replies[-1][1], replies[-1][2], 3, "hybrid", "ip:10.0.0.1"))
    api = complete(service, Asked(Conversation("Quelle part des entreprises sur LinkedIn ?"), "extractive", False, True,
                                  "key:0123456789abcdef"))  # fmt: skip
    service.record_feedback(api["chatbot"]["answer_id"], "down")
    first, follow_up, via_api = read_log(log.path).entries
    assert (first.via, follow_up.via, via_api.via) == ("chat", "chat", "api")
    assert follow_up.follow_up_of == hong_kong and not first.follow_up_of
    assert first.cited and first.cited[0].article_id == "chine" and "16,5%" in first.cited[0].quote
    assert first.client == follow_up.client == log.reader_of("ip:10.0.0.1") != via_api.client
    assert all(e.latency_ms is not None and e.latency_ms > 0 for e in (first, follow_up, via_api))
    assert via_api.vote == "down" and first.vote == ""
    assert not first.vector  # answered: no vector kept
    text = log.path.read_text(encoding="utf-8")
    assert "10.0.0.1" not in text and "0123456789abcdef" not in text


def test_a_declined_question_keeps_its_closest_passage_and_its_vector(retriever: Retriever, tmp_path: Path) -> None:
    log = QuestionLog(tmp_path / "q.jsonl")
    declines = AnswerSettings(min_probability=1.01, small_talk=False)  # nothing is likely enough
    service = _service(retriever, log, tmp_path, declines)
    list(respond(service, "Combien de salariés compte la société à Shenzhen ?", [], [], 3, "hybrid"))
    (entry,) = read_log(log.path).entries
    assert entry.declined and entry.gap and entry.reason and entry.closest is not None
    assert entry.closest.article_id and entry.closest.quote and entry.embedder == "fake"
    vector = entry.vector_array()
    assert vector is not None and vector.shape == (256,)
    expected = retriever.query_vector("Combien de salariés compte la société à Shenzhen ?")[0]
    assert float(vector @ expected) > 0.99
    assert json.loads(log.path.read_text(encoding="utf-8"))["kind"] == "question"


def test_a_log_that_cannot_be_written_never_stops_an_answer(
    retriever: Retriever, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "blocked"
    folder.write_text("a file where the log's folder should be", encoding="utf-8")
    service = _service(retriever, QuestionLog(folder / "q.jsonl"), tmp_path)
    replies = list(respond(service, "Quel est le plafond d’imposition à Hong Kong ?", [], [], 3, "hybrid"))
    assert "16,5%" in replies[-1][1][-1]["content"]
    assert "The question was not logged" in caplog.text
