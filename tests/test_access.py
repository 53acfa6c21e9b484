"""Keys, logins, limits and framing rules, without a server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def test_secret_options_read_a_file_and_warn_when_written_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from chatbot import cli

    key = tmp_path / "key"
    key.write_text("\n  sk-from-file \n", encoding="utf-8")
    seen: list[str | None] = []

    def ask(args: Any) -> int:
        """Record the key the reader would use."""
        config = cli._llm(args)
        seen.append(config.api_key if config else None)
        return 0

    monkeypatch.setattr(cli, "cmd_ask", ask)
    common = ["ask", "Bonjour ?", "--llm-url", "http://127.0.0.1:9/v1", "--llm-model", "m"]
    assert cli.main([*common, "--llm-api-key", f"@{key}"]) == 0
    assert seen == ["sk-from-file"] and "warning" not in capsys.readouterr().err
    assert cli.main([*common, "--llm-api-key", "sk-literal"]) == 0
    err = capsys.readouterr().err
    assert seen[-1] == "sk-literal" and "--llm-api-key is visible" in err and "CHATBOT_LLM_API_KEY" in err
    assert "sk-literal" not in err  # the warning does not repeat the secret
    assert cli.main([*common, "--llm-api-key", f"@{tmp_path / 'missing'}"]) == cli.EXIT_USAGE
    assert "cannot be read" in capsys.readouterr().err


def test_the_milvus_token_is_read_from_its_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from chatbot import cli

    token = tmp_path / "token"
    token.write_text("user:secret\n", encoding="utf-8")
    monkeypatch.setenv("CHATBOT_MILVUS_TOKEN", f"@{token}")
    args = cli.build_parser().parse_args(["search", "Hong Kong", "--backend", "milvus"])
    assert cli._settings(args).milvus_token == "user:secret"
