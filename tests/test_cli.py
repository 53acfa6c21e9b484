"""The command line's exit codes: 2 for the index, 64 for the user's mistakes, a traceback for bugs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from chatbot import cli
from chatbot.backends.local import MANIFEST, build_index, current_generation
from chatbot.cli import EXIT_INDEX, EXIT_USAGE, main
from chatbot.settings import Settings

from .conftest import FakeEmbedder


def test_a_bug_raising_value_error_shows_its_traceback_not_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def buggy(args: argparse.Namespace) -> int:
        """Search, with a bug: a ValueError that is not the user's mistake."""
        return int("not a number")

    monkeypatch.setattr(cli, "cmd_search", buggy)
    with pytest.raises(ValueError, match="invalid literal"):
        main(["search", "LinkedIn"])


def test_an_option_out_of_range_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "LinkedIn", "-k", "0", "--index", str(tmp_path)]) == EXIT_USAGE
    assert "top_k must be at least 1" in capsys.readouterr().err


def test_an_unknown_reader_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CHATBOT_READER", "oracle")
    assert main(["ask", "Quelle TVA ?"]) == EXIT_USAGE
    assert "Unknown reader 'oracle'" in capsys.readouterr().err


def test_a_malformed_manifest_is_an_index_error(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    build_index(settings, FakeEmbedder())
    path = current_generation(settings.index_dir) / MANIFEST
    manifest = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**manifest, "embedder": "fake"}), encoding="utf-8")
    monkeypatch.setattr(cli, "_settings", lambda args: settings)  # the fixture's chunking, which the CLI cannot set
    assert main(["search", "LinkedIn"]) == EXIT_INDEX
    assert "malformed" in capsys.readouterr().err
