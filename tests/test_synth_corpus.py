"""The synthetic corpus for scale tests: real French sentences, real article lengths, deterministic."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatbot.chunking import sentence_spans
from chatbot.corpus import load_corpus

from .conftest import REPO, load_script


def test_articles_are_made_of_real_sentences_and_are_reproducible(tmp_path: Path) -> None:
    synth = load_script("synth_corpus")
    paths = synth.generate(REPO / "corpus", tmp_path / "a", 12, seed=3)
    assert len(paths) == 12
    real = load_corpus(REPO / "corpus")
    real_text = "\n".join(a.text for a in real.articles)
    made = load_corpus(tmp_path / "a")
    assert len(made.articles) == 12 and made.skipped == () and made.notices == ()
    for article in made.articles:
        assert article.title.split(" (")[0] in {a.title for a in real.articles}
        for start, end in sentence_spans(article.text):
            assert article.text[start:end] in real_text
        assert len(article.text) >= min(len(a.text) for a in real.articles)
    again = synth.generate(REPO / "corpus", tmp_path / "b", 12, seed=3)
    assert [p.read_text(encoding="utf-8") for p in again] == [p.read_text(encoding="utf-8") for p in paths]
    with pytest.raises(FileExistsError):
        synth.generate(REPO / "corpus", tmp_path / "a", 1)
