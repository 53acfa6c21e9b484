"""The question log, opt-in: what readers ask the chat and the API, whether the articles
answered, what was cited, how long it took, and the vote when one comes, for the blog's
author (``chatbot report``). Off unless ``CHATBOT_QUESTION_LOG`` names a file.

Read from the environment by :meth:`QuestionLog.from_env` (``chatbot serve``):

- ``CHATBOT_QUESTION_LOG``: the JSON-lines file, e.g. ``data/questions.jsonl``; unset: no log.
- ``CHATBOT_QUESTION_LOG_DAYS``: how many days an entry is kept (default 90); older ones are
  removed at start and once a day.
- ``CHATBOT_QUESTION_LOG_MAX_BYTES``: the file's size cap (default 20 MB); past it the file is
  rotated (``questions.jsonl.1`` … ``.3``; the oldest goes).
- ``CHATBOT_QUESTION_LOG_SALT``: the salt of the readers' hashes; unset, a random one per
  process (readers are then told apart within one run of the server only).

No IP address and no key is stored: a reader is a salted hash of the client the limits use.
A declined question keeps its vector (the embedder's, float16), so that the report groups
the unanswered questions by topic without loading the model again. Each line is appended
whole and synced (:mod:`chatbot.jsonl`): a crash never tears an entry into the next one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from chatbot.errors import UsageError
from chatbot.jsonl import append_line, read_objects, replace_file

if TYPE_CHECKING:
    from chatbot.reader.values import Answer

__all__ = ["Cited", "LogContents", "QuestionEntry", "QuestionLog", "read_log"]

logger = logging.getLogger(__name__)

RETENTION_DAYS = 90
MAX_BYTES = 20_000_000
ROTATED = 3  # older files kept beside the log: questions.jsonl.1 (newest) … .3
QUOTE_CHARS = 200  # of each cited quote: enough to recognise the passage in the report
ANSWER_CHARS = 1000


def is_small_talk(reason: str) -> bool:
    """A greeting, thanks or off-topic message answered with the help message: declined, but
    not a question the articles fail to answer."""
    return reason.startswith("small talk")


@dataclass(frozen=True)
class Cited:
    """A passage an answer cited (or, for a declined question, the closest one)."""

    article_id: str
    article: str
    chunk_id: str
    quote: str = ""


@dataclass(frozen=True)
class QuestionEntry:
    """One question as it was answered. ``vote`` is filled in when the log is read, from the
    vote lines that name the answer (the last one wins)."""

    answer_id: str
    question: str
    declined: bool
    time: str  # ISO 8601, UTC, to the second
    follow_up_of: str = ""  # the earlier question of the conversation
    reader: str = ""
    reason: str = ""  # why it was declined
    lang: str = "fr"
    answer: str = ""
    cited: tuple[Cited, ...] = ()
    closest: Cited | None = None  # declined: the passage nearest to the question
    latency_ms: float | None = None
    client: str = ""  # salted hash; never an address or a key
    via: str = ""  # "chat" or "api"
    embedder: str = ""
    vector: str = ""  # declined questions: the question's vector, float16, base64
    vote: str = ""

    @property
    def day(self) -> str:
        return self.time[:10]

    @property
    def gap(self) -> bool:
        """A question the articles did not answer (small talk aside)."""
        return self.declined and not is_small_talk(self.reason)

    @property
    def when(self) -> datetime:
        return _parse_time(self.time) or datetime.min.replace(tzinfo=UTC)

    def vector_array(self) -> np.ndarray | None:
        """The stored vector, or ``None`` when there is none (or it is damaged)."""
        if not self.vector:
            return None
        try:
            return np.frombuffer(base64.b64decode(self.vector, validate=True), dtype=np.float16).astype(np.float32)
        except ValueError:
            return None

    def to_json(self) -> dict[str, Any]:
        row = asdict(self)
        row.pop("vote")
        return {"kind": "question", **row}

    @classmethod
    def of(
        cls,
        answer_id: str,
        question: str,
        history: Sequence[str],
        result: Answer,
        *,
        now: datetime,
        latency_ms: float | None = None,
        client: str = "",
        via: str = "",
        embedder: str = "",
        vector: np.ndarray | None = None,
    ) -> QuestionEntry:
        """The entry of an answer shown."""
        from chatbot.conversation import previous_question  # (the retriever's imports: not for the report)

        def cited(article_id: str, article: str, chunk_id: str, quote: str) -> Cited:
            return Cited(article_id, article, chunk_id, " ".join(quote.split())[:QUOTE_CHARS])

        closest = None
        if result.abstained and result.evidence:
            best = result.evidence[0]
            chunk = best.hit.chunk
            closest = cited(chunk.article_id, chunk.article_title, chunk.id, best.text)
        return cls(
            answer_id=answer_id,
            question=question,
            declined=result.abstained,
            time=now.astimezone(UTC).isoformat(timespec="seconds"),
            follow_up_of=previous_question(history),
            reader=result.reader,
            reason=result.reason,
            lang=result.lang,
            answer=result.text[:ANSWER_CHARS],
            cited=tuple(cited(c.article_id, c.article, c.chunk_id, c.quote) for c in result.citations),
            closest=closest,
            latency_ms=None if latency_ms is None else round(latency_ms, 1),
            client=client,
            via=via,
            embedder=embedder if vector is not None else "",
            vector=encode_vector(vector) if vector is not None else "",
        )


def encode_vector(vector: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vector, dtype=np.float16).ravel().tobytes()).decode("ascii")


def gap_text(question: str, history: Sequence[str]) -> str:
    """The text whose vector stands for a declined question: the question, after the earlier
    one when it is a short follow-up («Et en Finlande ?»), as the reader read it."""
    from chatbot.conversation import follow_up_context

    return f"{follow_up_context(question, history)} {question}".strip()


@dataclass(frozen=True)
class LogContents:
    """What a log holds: its questions (oldest first, votes joined), how many lines could not
    be read, and the files read."""

    entries: tuple[QuestionEntry, ...]
    damaged: int
    files: tuple[Path, ...]


def log_files(path: Path) -> list[Path]:
    """The log and its rotated files that exist, oldest first."""
    rotated = [path.with_name(f"{path.name}.{n}") for n in range(ROTATED, 0, -1)]
    return [p for p in [*rotated, path] if p.is_file()]


def read_log(path: Path) -> LogContents:
    """Every entry of the log at ``path`` and its rotated files. Lines that are not entries
    (torn by a crash, edited by hand) are counted as damaged and skipped.

    Raises:
        OSError: a file exists but cannot be read.
    """
    entries: dict[str, QuestionEntry] = {}
    votes: dict[str, str] = {}
    damaged = 0
    files = log_files(path)
    for file in files:
        for raw in read_objects(file):
            kind = raw.get("kind") if raw is not None else None
            if raw is not None and kind == "vote" and isinstance(raw.get("answer_id"), str):
                votes[raw["answer_id"]] = str(raw.get("vote", ""))
            elif raw is not None and kind == "question" and (entry := _entry(raw)) is not None:
                entries[entry.answer_id] = entry
            else:
                damaged += 1
    joined = (replace(e, vote=votes[e.answer_id]) if e.answer_id in votes else e for e in entries.values())
    return LogContents(tuple(sorted(joined, key=lambda e: e.time)), damaged, tuple(files))


def _cited(raw: Any) -> Cited | None:
    if not isinstance(raw, dict):
        return None
    return Cited(*(str(raw.get(k, "")) for k in ("article_id", "article", "chunk_id", "quote")))


def _entry(raw: dict[str, Any]) -> QuestionEntry | None:
    try:
        if not isinstance(raw["question"], str) or _parse_time(str(raw["time"])) is None:
            return None
        latency = raw.get("latency_ms")
        return QuestionEntry(
            answer_id=str(raw["answer_id"]),
            question=raw["question"],
            declined=bool(raw["declined"]),
            time=str(raw["time"]),
            follow_up_of=str(raw.get("follow_up_of") or ""),
            reader=str(raw.get("reader") or ""),
            reason=str(raw.get("reason") or ""),
            lang=str(raw.get("lang") or "fr"),
            answer=str(raw.get("answer") or ""),
            cited=tuple(c for c in map(_cited, raw.get("cited") or ()) if c is not None),
            closest=_cited(raw.get("closest")),
            latency_ms=float(latency) if isinstance(latency, (int, float)) else None,
            client=str(raw.get("client") or ""),
            via=str(raw.get("via") or ""),
            embedder=str(raw.get("embedder") or ""),
            vector=str(raw.get("vector") or ""),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _parse_time(text: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


class QuestionLog:
    """Appends questions and votes to the log, rotating it at ``max_bytes`` and removing
    entries older than ``retention_days`` (at creation and once a day). Thread-safe."""

    def __init__(
        self,
        path: Path,
        retention_days: int = RETENTION_DAYS,
        max_bytes: int = MAX_BYTES,
        salt: str | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if retention_days < 1:
            raise UsageError(f"CHATBOT_QUESTION_LOG_DAYS must be at least 1 day, got {retention_days}.")
        if max_bytes < 10_000:
            raise UsageError(f"CHATBOT_QUESTION_LOG_MAX_BYTES must be at least 10000 bytes, got {max_bytes}.")
        self.path = path
        self.retention_days = retention_days
        self.max_bytes = max_bytes
        self._salt = (salt or secrets.token_hex(16)).encode()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._pruned: datetime | None = None
        try:
            self.prune()
        except OSError as exc:
            logger.warning("The question log %s could not be pruned: %s", path, exc)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> QuestionLog | None:
        """The log the environment asks for (module docstring), or ``None`` when it is off.

        Raises:
            UsageError: a variable is malformed.
        """
        env = os.environ if env is None else env
        path = (env.get("CHATBOT_QUESTION_LOG") or "").strip()
        if not path:
            return None

        def number(name: str, default: int) -> int:
            try:
                return int(env.get(name) or default)
            except ValueError as exc:
                raise UsageError(f"{name} is a whole number, got {env.get(name)!r}.") from exc

        return cls(
            Path(path).expanduser(),
            retention_days=number("CHATBOT_QUESTION_LOG_DAYS", RETENTION_DAYS),
            max_bytes=number("CHATBOT_QUESTION_LOG_MAX_BYTES", MAX_BYTES),
            salt=env.get("CHATBOT_QUESTION_LOG_SALT") or None,
        )

    def now(self) -> datetime:
        return self._clock()

    def reader_of(self, client: str | None) -> str:
        """A client (``ip:…`` or ``key:…``, :func:`chatbot.access.client_id`) as the log
        keeps it: a salted hash, or «» when unknown."""
        if not client:
            return ""
        return hashlib.sha256(self._salt + client.encode()).hexdigest()[:16]

    def record(self, entry: QuestionEntry) -> None:
        """Append a question.

        Raises:
            OSError: the file cannot be written.
        """
        self._append(entry.to_json())

    def vote(self, answer_id: str, vote: str) -> None:
        """Append a vote (``up``/``down``) on an answer logged before.

        Raises:
            OSError: the file cannot be written.
        """
        self._append({"kind": "vote", "answer_id": answer_id, "vote": vote,
                      "time": self.now().astimezone(UTC).isoformat(timespec="seconds")})  # fmt: skip

    def _append(self, row: dict[str, Any]) -> None:
        line = json.dumps(row, ensure_ascii=False)
        with self._lock:
            if self._pruned is None or self.now() - self._pruned > timedelta(days=1):
                self._prune_locked()
            if append_line(self.path, line, self.max_bytes):
                return
            self._rotate_locked()
            if not append_line(self.path, line, self.max_bytes):
                logger.warning("A question log entry of %d bytes is larger than the cap; not written.", len(line))

    def _rotate_locked(self) -> None:
        """Move the log to ``<name>.1`` (and each older file one step on, the oldest dropped)."""
        for n in range(ROTATED, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            newer = self.path if n == 1 else self.path.with_name(f"{self.path.name}.{n - 1}")
            if newer.exists():
                os.replace(newer, older)

    def prune(self) -> int:
        """Remove the entries older than the retention from the log and its rotated files;
        how many lines went. A file is rewritten whole (a temporary file renamed over it)."""
        with self._lock:
            return self._prune_locked()

    def _prune_locked(self) -> int:
        now = self.now()
        self._pruned = now
        cutoff = now - timedelta(days=self.retention_days)
        removed = 0
        for file in log_files(self.path):
            lines = file.read_bytes().splitlines(keepends=True)
            kept = [line for line in lines if _recent(line, cutoff)]
            if len(kept) == len(lines):
                continue
            removed += len(lines) - len(kept)
            logger.info("Question log %s: %d entries past %d days (or undated) removed", file,
                        len(lines) - len(kept), self.retention_days)  # fmt: skip
            if not kept and file != self.path:
                file.unlink()
                continue
            data = b"".join(line if line.endswith(b"\n") else line + b"\n" for line in kept)
            replace_file(file, data, mode=0o600)  # readable by its owner only, as appended
        return removed


def _recent(line: bytes, cutoff: datetime) -> bool:
    """A line whose time is after ``cutoff``; a line without a readable time goes too."""
    try:
        raw = json.loads(line)
        when = _parse_time(str(raw["time"])) if isinstance(raw, dict) else None
    except (ValueError, KeyError):
        return False
    return when is not None and when >= cutoff
