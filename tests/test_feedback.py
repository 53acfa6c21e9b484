"""The feedback file: read whatever version wrote it, printed safely to a terminal."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from chatbot.cli import main
from chatbot.feedback import Feedback, FeedbackLog


def _line(**fields: object) -> str:
    return json.dumps(fields, ensure_ascii=False) + "\n"


def test_lines_with_added_or_missing_fields_are_all_read(tmp_path: Path) -> None:
    path = tmp_path / "feedback.jsonl"
    current = asdict(Feedback("a1", "up", "Quelle TVA ?", ("Avant ?",), "Aucune [1]", ({"n": "1"},)))
    path.write_text(
        _line(**current)
        + _line(**{**current, "answer_id": "a2", "lang": "fr", "rating": 4})  # written by a newer version
        + _line(answer_id="a3", vote="down", question="Et la TVA ?")  # an older one: fewer fields
        + '[1, 2]\n"texte"\nnot json\n'  # not feedback: skipped
        + _line(answer_id="a4", vote="meh", question="?"),  # not a vote: skipped
        encoding="utf-8",
    )
    entries = list(FeedbackLog(path).read())
    assert [e.answer_id for e in entries] == ["a1", "a2", "a3"]
    assert entries[1].history == ("Avant ?",) and entries[1].sources == ({"n": "1"},)
    assert entries[2].history == () and entries[2].answer == "" and entries[2].vote == "down"


def test_the_listing_never_sends_control_characters_to_the_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = FeedbackLog(tmp_path / "feedback.jsonl")
    log.append(Feedback("a1", "down", "Linked\x1b[2J\x1b]0;pwned\x07In \u202eevil ?", (), "", (), "ok\r\nfaux 👍"))
    assert main(["feedback", "--file", str(log.path)]) == 0
    out = capsys.readouterr().out
    assert not any(ch in out for ch in "\x1b\x07\r\u202e")
    assert "Linked\\x1b[2J\\x1b]0;pwned\\x07In \\u202eevil ?" in out
    assert "« ok\\r\\nfaux 👍 »" in out
