"""Who may use the service and how much: API keys, the chat's login, per-client rate limits
(with the ``limits`` package), one vote per answer and client, and who may frame the chat.

Everything is read from the environment (or files it names) by :meth:`Access.from_env`, so
that no secret ever sits on a command line (the CLI's own secret options, ``--llm-api-key`` and
``--milvus-token``, take ``@/path`` and warn when given a secret itself):

- ``CHATBOT_API_KEYS``: the bearer tokens that may call ``/v1`` (a comma list, or ``@/path``
  to a file with one key a line); unset: ``/v1`` is open.
- ``CHATBOT_AUTH``: the web chat's logins, ``user:password`` pairs (a comma list, or ``@/path``,
  one pair a line); unset: no login. There is never a default password.
- ``CHATBOT_QUESTION_LIMIT`` / ``CHATBOT_FEEDBACK_LIMIT``: rate limits per client, in the
  ``limits`` notation (``10/minute;100/hour``).
- ``CHATBOT_FEEDBACK_MAX_BYTES``: the feedback file's size cap.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import ipaddress
import math
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from chatbot.errors import AlreadyVotedError, RateLimitedError, UsageError

# Defaults for a public blog: a reader asks a question every 10-20 s at most; a flood is cut
# after a few seconds and can never take more than 100 answers an hour.
QUESTION_LIMIT = "10/minute;100/hour"
FEEDBACK_LIMIT = "10/minute;100/day"
FEEDBACK_MAX_BYTES = 20_000_000
MAX_BODY_BYTES = 1_000_000
VOTES_REMEMBERED = 100_000


def read_list(value: str | None, what: str) -> tuple[str, ...]:
    """A comma list, or ``@/path`` to a file with one item a line (blank lines and ``#``
    comments skipped); ``()`` when ``value`` is unset or blank.

    Raises:
        UsageError: the file cannot be read.
    """
    value = (value or "").strip()
    if value.startswith("@"):
        path = Path(value[1:]).expanduser()
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise UsageError(f"The {what} file {path} cannot be read: {exc.strerror or exc}.") from exc
        items = [line.strip() for line in lines if not line.strip().startswith("#")]
    else:
        items = [item.strip() for item in value.split(",")]
    return tuple(item for item in items if item)


def read_logins(value: str | None) -> tuple[tuple[str, str], ...]:
    """``user:password`` pairs (see :func:`read_list`).

    Raises:
        UsageError: a pair has no user or no password.
    """
    logins = []
    for item in read_list(value, "CHATBOT_AUTH"):
        user, sep, password = item.partition(":")
        if not sep or not user.strip() or not password:
            raise UsageError("CHATBOT_AUTH holds user:password pairs, each with a user and a non-empty password.")
        logins.append((user.strip(), password))
    return tuple(logins)


def read_secret(value: str | None, what: str) -> str | None:
    """A secret given as itself or as ``@/path`` (the file's first non-blank line); ``None``
    when unset or blank.

    Raises:
        UsageError: the file cannot be read or holds nothing.
    """
    text = (value or "").strip()
    if not text.startswith("@"):
        return text or None
    items = read_list(text, what)
    if not items:
        raise UsageError(f"The {what} file {text[1:]} holds no value.")
    return items[0]


def exposed_secrets(options: Mapping[str, str | None]) -> list[str]:
    """The options among ``options`` (name → value given on the command line) whose value is a
    secret written out, visible to every user of the machine (``ps``), rather than ``@file``."""
    return [name for name, value in options.items() if value and not value.strip().startswith("@")]


def parse_limit(value: str, name: str) -> tuple[RateLimitItem, ...]:
    """``10/minute;100/hour`` as ``limits`` items.

    Raises:
        UsageError: not in that notation.
    """
    try:
        return tuple(parse_many(value))
    except ValueError as exc:
        raise UsageError(f"{name} must look like '10/minute;100/hour', got {value!r}.") from exc


def frame_ancestors(origins: Sequence[str]) -> str:
    """The ``Content-Security-Policy`` that lets only this site and ``origins`` frame the chat.

    Raises:
        UsageError: an origin is not ``scheme://host[:port]`` (or ``*``).
    """
    for origin in origins:
        scheme, sep, rest = origin.partition("://")
        if origin != "*" and (not sep or scheme not in ("http", "https") or not rest or "/" in rest.rstrip("/")):
            raise UsageError(f"--allow-origin takes an origin such as https://blog.example.org, got {origin!r}.")
    return "frame-ancestors " + " ".join(["'self'", *(o.rstrip("/") for o in origins)])


def is_loopback(host: str) -> bool:
    """Whether ``host`` (what the server binds) is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Access:
    """The keys, logins, limits and framing origins of one server."""

    api_keys: tuple[str, ...] = ()
    logins: tuple[tuple[str, str], ...] = ()
    question_limit: str = QUESTION_LIMIT
    feedback_limit: str = FEEDBACK_LIMIT
    feedback_max_bytes: int = FEEDBACK_MAX_BYTES
    max_body_bytes: int = MAX_BODY_BYTES
    allow_origins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        parse_limit(self.question_limit, "CHATBOT_QUESTION_LIMIT")
        parse_limit(self.feedback_limit, "CHATBOT_FEEDBACK_LIMIT")
        frame_ancestors(self.allow_origins)
        if self.feedback_max_bytes < 0:
            raise UsageError(f"CHATBOT_FEEDBACK_MAX_BYTES must be 0 or more, got {self.feedback_max_bytes}.")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, allow_origins: Sequence[str] = ()) -> Access:
        """The access rules the environment gives (module docstring).

        Raises:
            UsageError: a variable is malformed or names a file that cannot be read.
        """
        env = os.environ if env is None else env
        try:
            cap = int(env.get("CHATBOT_FEEDBACK_MAX_BYTES") or FEEDBACK_MAX_BYTES)
        except ValueError as exc:
            raise UsageError("CHATBOT_FEEDBACK_MAX_BYTES is a number of bytes.") from exc
        return cls(
            api_keys=read_list(env.get("CHATBOT_API_KEYS"), "CHATBOT_API_KEYS"),
            logins=read_logins(env.get("CHATBOT_AUTH")),
            question_limit=env.get("CHATBOT_QUESTION_LIMIT") or QUESTION_LIMIT,
            feedback_limit=env.get("CHATBOT_FEEDBACK_LIMIT") or FEEDBACK_LIMIT,
            feedback_max_bytes=cap,
            allow_origins=tuple(allow_origins),
        )

    def key_matches(self, token: str) -> bool:
        """Whether ``token`` is one of the keys (compared in constant time)."""
        return any(hmac.compare_digest(token.encode(), key.encode()) for key in self.api_keys)

    def exposure_warning(self, host: str) -> str:
        """What ``chatbot serve`` says at start when it listens beyond loopback without keys."""
        if is_loopback(host) or self.api_keys:
            return ""
        return (
            f"warning: listening on {host} without CHATBOT_API_KEYS: anyone who reaches this port may call /v1 "
            "(the per-client limits still apply)."
        )


def client_id(key: str | None, address: str | None) -> str:
    """A client: its key (hashed, never kept as such), else its IP address."""
    if key:
        return "key:" + hashlib.sha256(key.encode()).hexdigest()[:16]
    return f"ip:{address or 'unknown'}"


class Guard:
    """The limits of :class:`Access` applied, per client, in this process's memory
    (thread-safe: the ``limits`` memory storage locks, and so do the votes)."""

    def __init__(self, access: Access) -> None:
        self.access = access
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._questions = parse_limit(access.question_limit, "CHATBOT_QUESTION_LIMIT")
        self._feedback = parse_limit(access.feedback_limit, "CHATBOT_FEEDBACK_LIMIT")
        self._votes: collections.OrderedDict[tuple[str, str, str], None] = collections.OrderedDict()
        self._lock = threading.Lock()

    def question(self, client: str) -> None:
        """Count one question of ``client``.

        Raises:
            RateLimitedError: over the question limit.
        """
        self._hit(self._questions, "questions", client)

    def feedback(self, client: str, answer_id: str, kind: str) -> None:
        """Count one feedback write (``kind``: vote or comment) of ``client`` on ``answer_id``.

        Raises:
            AlreadyVotedError: this client already sent this kind on this answer.
            RateLimitedError: over the feedback limit.
        """
        key = (client, answer_id, kind)
        with self._lock:
            if key in self._votes:
                raise AlreadyVotedError(f"This client already sent a {kind} on answer {answer_id}.")
        self._hit(self._feedback, "feedback writes", client)
        with self._lock:
            self._votes[key] = None
            while len(self._votes) > VOTES_REMEMBERED:
                self._votes.popitem(last=False)

    def _hit(self, items: Sequence[RateLimitItem], what: str, client: str) -> None:
        for item in items:
            if not self._limiter.hit(item, what, client):
                reset = self._limiter.get_window_stats(item, what, client).reset_time
                raise RateLimitedError(what, max(1, math.ceil(reset - time.time())))
