"""Readers' votes on answers (👍 / 👎, optional comment), kept in a local JSONL file that
never leaves the machine, and the 👎 ones turned into draft evaluation questions."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chatbot.errors import FeedbackFullError
from chatbot.jsonl import append_line, read_objects

DEFAULT_PATH = Path("data/feedback.jsonl")


def feedback_path(path: Path | None = None) -> Path:
    """``path``, else ``CHATBOT_FEEDBACK``, else ``data/feedback.jsonl``."""
    return path or Path(os.environ.get("CHATBOT_FEEDBACK") or DEFAULT_PATH)


@dataclass(frozen=True)
class Feedback:
    """One vote (``up``/``down``) or comment on one answer, with what the reader saw.

    Every field after ``question`` has a default, and any field added later must have one:
    the lines written before it was added are still read (:meth:`FeedbackLog.read`).
    """

    answer_id: str
    vote: str  # "up", "down" or "" (a comment alone)
    question: str
    history: tuple[str, ...] = ()
    answer: str = ""
    sources: tuple[dict[str, str], ...] = ()  # {"n", "article", "quote"}
    comment: str = ""
    reader: str = ""
    time: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def __post_init__(self) -> None:
        if self.vote not in ("up", "down", ""):
            raise ValueError(f"A vote is 'up', 'down' or empty, not {self.vote!r}.")


class FeedbackLog:
    """Appends feedback to a JSONL file, one line per vote or comment (thread-safe; each line
    written whole and synced, :mod:`chatbot.jsonl`)."""

    def __init__(self, path: Path | None = None, max_bytes: int | None = None) -> None:
        self.path = feedback_path(path)
        self.max_bytes = max_bytes  # None: no cap
        self._lock = threading.Lock()

    def append(self, feedback: Feedback) -> None:
        """Raises OSError when the file cannot be written (the UI says so), and
        :class:`~chatbot.errors.FeedbackFullError` (an ``OSError``) once it holds ``max_bytes``."""
        line = json.dumps(asdict(feedback), ensure_ascii=False)
        with self._lock:
            if not append_line(self.path, line, self.max_bytes):
                size = self.path.stat().st_size
                raise FeedbackFullError(f"The feedback file {self.path} holds {size} bytes (cap {self.max_bytes}).")

    def read(self) -> Iterator[Feedback]:
        """Every readable line, oldest first; lines that are not feedback are skipped. Fields
        this version does not know (written by a newer one) are ignored and missing ones take
        their default, so that adding a field never hides the lines written before."""
        for raw in read_objects(self.path):
            entry = _entry(raw) if raw is not None else None
            if entry is not None:
                yield entry


_FIELDS = frozenset(f.name for f in fields(Feedback))


def _entry(raw: dict[str, Any]) -> Feedback | None:
    """The feedback of one line's object, or ``None`` when it is not feedback."""
    try:
        known: dict[str, Any] = {key: value for key, value in raw.items() if key in _FIELDS}
        known["history"] = tuple(str(h) for h in known.get("history") or ())
        known["sources"] = tuple(dict(s) for s in known.get("sources") or ())
        return Feedback(**known)
    except (ValueError, TypeError):
        return None


def draft_questions(entries: list[Feedback]) -> list[dict[str, Any]]:
    """The 👎 answers as evaluation questions to complete (evidence left empty), with the
    comments left on them; one per answer."""
    comments: dict[str, list[str]] = {}
    for entry in entries:
        if entry.comment:
            comments.setdefault(entry.answer_id, []).append(entry.comment)
    drafts: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if entry.vote == "down" and entry.answer_id not in drafts:
            drafts[entry.answer_id] = {
                "id": f"feedback-{entry.answer_id}",
                "question": entry.question,
                "history": list(entry.history),
                "evidence": [],
                "lang": "en" if _looks_english(entry.question) else "fr",
                "kind": "feedback",
                "note": " / ".join(comments.get(entry.answer_id, [])) or f"👎 on: {entry.answer[:200]}",
            }
    return list(drafts.values())


def _looks_english(text: str) -> bool:
    from chatbot.analysis import detect_language

    return detect_language(text) == "en"
