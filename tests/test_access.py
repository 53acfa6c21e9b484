"""Keys, logins, limits and framing rules, without a server."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatbot.access import (
    Access,
    Guard,
    client_id,
    frame_ancestors,
    read_list,
    read_logins,
)
from chatbot.errors import AlreadyVotedError, FeedbackFullError, RateLimitedError, UsageError
from chatbot.feedback import Feedback, FeedbackLog


def test_keys_from_a_comma_list_or_a_file(tmp_path: Path) -> None:
    assert read_list(" k1, k2 ,,", "keys") == ("k1", "k2")
    assert read_list(None, "keys") == ()
    path = tmp_path / "keys.txt"
    path.write_text("# the blog\nk1\n\n  k2  \n", encoding="utf-8")
    assert read_list(f"@{path}", "keys") == ("k1", "k2")
    with pytest.raises(UsageError, match="keys file .* cannot be read"):
        read_list(f"@{tmp_path / 'missing.txt'}", "keys")


def test_logins_need_a_user_and_a_password() -> None:
    assert read_logins("ana:s3cret:with:colons, bob:x") == (("ana", "s3cret:with:colons"), ("bob", "x"))
    assert read_logins("") == ()
    for bad in ("ana", "ana:", ":pw"):
        with pytest.raises(UsageError, match="non-empty password"):
            read_logins(bad)


def test_access_from_the_environment(tmp_path: Path) -> None:
    access = Access.from_env(
        {"CHATBOT_API_KEYS": "a,b", "CHATBOT_AUTH": "ana:pw", "CHATBOT_QUESTION_LIMIT": "2/second"},
        allow_origins=["https://blog.example.org"],
    )
    assert access.api_keys == ("a", "b") and access.logins == (("ana", "pw"),)
    assert access.key_matches("b") and not access.key_matches("c") and not access.key_matches("")
    assert Access.from_env({}).logins == ()  # no login unless one is given: never a default password
    with pytest.raises(UsageError, match="10/minute"):
        Access.from_env({"CHATBOT_QUESTION_LIMIT": "lots"})
    with pytest.raises(UsageError, match="number of bytes"):
        Access.from_env({"CHATBOT_FEEDBACK_MAX_BYTES": "big"})


def test_frame_ancestors_default_to_this_site_only() -> None:
    assert frame_ancestors(()) == "frame-ancestors 'self'"
    assert frame_ancestors(["https://blog.example.org/"]) == "frame-ancestors 'self' https://blog.example.org"
    with pytest.raises(UsageError, match="origin"):
        frame_ancestors(["blog.example.org"])
    with pytest.raises(UsageError, match="origin"):
        frame_ancestors(["https://blog.example.org/chat"])


def test_listening_beyond_loopback_without_keys_is_said() -> None:
    open_access = Access()
    assert open_access.exposure_warning("127.0.0.1") == "" and open_access.exposure_warning("localhost") == ""
    assert "without CHATBOT_API_KEYS" in open_access.exposure_warning("0.0.0.0")
    assert Access(api_keys=("k",)).exposure_warning("0.0.0.0") == ""


def test_questions_are_limited_per_client_with_the_time_to_wait() -> None:
    guard = Guard(Access(question_limit="2/minute"))
    guard.question("ip:1")
    guard.question("ip:1")
    with pytest.raises(RateLimitedError) as limited:
        guard.question("ip:1")
    assert 1 <= limited.value.retry_after <= 60
    guard.question("ip:2")  # another client is not affected


def test_one_vote_and_one_comment_per_answer_and_client_within_the_feedback_limit() -> None:
    guard = Guard(Access(feedback_limit="3/minute"))
    guard.feedback("ip:1", "a1", "vote")
    with pytest.raises(AlreadyVotedError):
        guard.feedback("ip:1", "a1", "vote")
    guard.feedback("ip:1", "a1", "comment")
    guard.feedback("ip:2", "a1", "vote")  # another reader may vote on the same answer
    guard.feedback("ip:1", "a2", "vote")
    with pytest.raises(RateLimitedError):
        guard.feedback("ip:1", "a3", "vote")


def test_a_client_is_its_key_hashed_else_its_address() -> None:
    assert client_id("secret", "1.2.3.4").startswith("key:") and "secret" not in client_id("secret", None)
    assert client_id(None, "1.2.3.4") == "ip:1.2.3.4"


def test_the_feedback_file_stops_growing_at_its_cap(tmp_path: Path) -> None:
    log = FeedbackLog(tmp_path / "feedback.jsonl", max_bytes=600)
    entry = Feedback(answer_id="a", vote="up", question="Quelle part des PME a un site web ?", answer="66% [1]")
    written = 0
    with pytest.raises(FeedbackFullError):
        for _ in range(10):
            log.append(entry)
            written += 1
    assert 1 <= written < 10 and (tmp_path / "feedback.jsonl").stat().st_size <= 600
    assert len(list(log.read())) == written
