"""Many users at once against the launched chat, through gradio_client.

CI runs 5 users × 5 conversations; the full figure (20 × 25) comes from
``CHATBOT_LOAD_USERS=20 CHATBOT_LOAD_CONVERSATIONS=25 pytest -m load -s`` or
``python scripts/load_test.py``.
"""

from __future__ import annotations

import os

import pytest

from .conftest import load_script

pytestmark = [pytest.mark.integration, pytest.mark.load]


def test_concurrent_users_get_the_answers_they_would_get_alone(chat_url: str) -> None:
    load_test = load_script("load_test")
    users = int(os.environ.get("CHATBOT_LOAD_USERS", "5"))
    per_user = int(os.environ.get("CHATBOT_LOAD_CONVERSATIONS", "5"))
    items = load_test.conversations()
    assert sum(len(item) > 1 for item in items) >= 5  # the set has follow-ups
    # Put follow-ups and answerable and unanswerable questions in every user's share.
    items.sort(key=len, reverse=True)
    result = load_test.run_load(chat_url, items, users, per_user)
    summary = result.summary()
    print("\nload:", {"users": users, "conversations_per_user": per_user, **summary})
    assert result.errors == ()
    assert result.mismatches == ()
    assert summary["requests"] >= users * per_user
    assert 0 < summary["p50_ms"] <= summary["p95_ms"]
