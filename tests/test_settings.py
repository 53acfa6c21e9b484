"""Settings refuse values that cannot work, naming the field."""

from __future__ import annotations

import pytest

from chatbot.settings import Settings


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"chunk_size": 10}, "chunk_size"),
        ({"chunk_overlap": 800}, "chunk_overlap"),
        ({"mode": "fuzzy"}, "mode"),
        ({"top_k": 0}, "top_k"),
        ({"fusion": "sum"}, "fusion"),
        ({"vector_index": "ivf"}, "vector_index"),
        ({"rrf_k": 0}, "rrf_k"),
        ({"bm25_weight": -0.1}, "bm25_weight"),
        ({"bm25_weight_en": -1.0}, "bm25_weight_en"),
        ({"sentence_weight": -0.5}, "sentence_weight"),
    ],
)
def test_impossible_values_are_refused_by_name(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Settings(**changes)  # type: ignore[arg-type]


def test_with_changes_only_the_given_fields() -> None:
    base = Settings()
    changed = base.with_(top_k=3, mode=None)
    assert changed.top_k == 3 and changed.mode == base.mode
    assert base.index_settings() == changed.index_settings()


def test_every_environment_variable_read_is_listed_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    """One list of the CHATBOT_* variables (chatbot.settings.ENVIRONMENT), shown by
    ``chatbot --help``: a module that reads another one fails here."""
    import re

    from chatbot import cli
    from chatbot.settings import ENVIRONMENT

    from .conftest import REPO

    read = {
        name
        for path in (REPO / "chatbot").rglob("*.py")
        for name in re.findall(r"CHATBOT_[A-Z_]*[A-Z]", path.read_text(encoding="utf-8"))
    }
    assert read == set(ENVIRONMENT), (sorted(read - set(ENVIRONMENT)), sorted(set(ENVIRONMENT) - read))
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    shown = capsys.readouterr().out
    assert all(name in shown for name in ENVIRONMENT)
