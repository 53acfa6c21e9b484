"""Many keyed clients at once against the API of ``chatbot serve`` in its own process, alone
and beside a client flooding over its limit (scripts/api_load_test.py).

CI runs 5 clients × 5 conversations; the figure in docs/api.md (20 × 25) comes from
``CHATBOT_LOAD_USERS=20 CHATBOT_LOAD_CONVERSATIONS=25 pytest -m load -s tests/test_api_load.py``
or ``python scripts/api_load_test.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chatbot.settings import Settings

from .conftest import load_script

pytestmark = [pytest.mark.integration, pytest.mark.load]


def test_a_flood_over_its_limit_is_refused_without_slowing_the_others(real_settings: Settings, tmp_path: Path) -> None:
    api_load = load_script("api_load_test")
    users = int(os.environ.get("CHATBOT_LOAD_USERS", "5"))
    per_user = int(os.environ.get("CHATBOT_LOAD_CONVERSATIONS", "5"))
    calm, busy = api_load.load(real_settings, users, per_user, tmp_path)
    print("\n" + api_load.table(users, per_user, calm, busy))
    assert calm.errors == [] and busy.errors == []
    assert calm.mismatches == [] and busy.mismatches == []
    assert len(calm.latencies_ms) >= users * per_user
    assert busy.flood.get("429", 0) > 0 and busy.flood["with_retry_after"] == busy.flood["429"]
    assert api_load.checks(calm, busy, 1.5) == []
