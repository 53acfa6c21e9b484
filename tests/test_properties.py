"""Any Unicode text in: no crash, offsets always reproduce the chunk text, citations checked."""

from __future__ import annotations

import itertools
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from chatbot.analysis import analyze
from chatbot.answer import Citation, split_sentences
from chatbot.chunking import chunk_article
from chatbot.corpus import Article
from chatbot.retrieval import Hit

TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=600) | st.text(
    alphabet=st.sampled_from(list("ab é’'.!?\n« »%0123456789,")), max_size=600
)


@given(TEXT)
def test_the_analyzer_never_crashes_and_returns_clean_tokens(text: str) -> None:
    tokens = analyze(text)
    assert all(token and not any(ch.isspace() for ch in token) for token in tokens)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(TEXT, st.integers(min_value=50, max_value=300), st.integers(min_value=0, max_value=49))
def test_chunk_offsets_always_reproduce_the_chunk(text: str, size: int, overlap: int) -> None:
    article = Article(id="a", title="T", text=text, path=Path("a.md"))
    for chunk in chunk_article(article, size, overlap):
        assert text[chunk.start : chunk.end] == chunk.text
        assert len(chunk.text) <= size


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(TEXT, st.integers(min_value=50, max_value=300), st.integers(min_value=0, max_value=49))
def test_every_sentence_quoted_from_a_chunk_is_the_articles_own_text(text: str, size: int, overlap: int) -> None:
    """Checked against the article's text and the offsets a citation carries, not against the
    splitter that made the sentences: in order, not overlapping, stripped, never empty."""
    article = Article(id="a", title="T", text=text, path=Path("a.md"))
    for chunk in chunk_article(article, size, overlap):
        sentences = split_sentences(Hit(chunk, 1.0, 1), 1)
        for sentence in sentences:
            citation = Citation.quoting(1, chunk, sentence.text, sentence.start, sentence.end)
            at = citation.chunk_start + citation.quote_start
            assert text[at : at + len(citation.quote)] == citation.quote
            assert citation.quote and citation.quote == citation.quote.strip()
        assert all(a.end <= b.start for a, b in itertools.pairwise(sentences))


@given(TEXT, st.data())
def test_a_quote_changed_by_one_character_is_never_valid(passage: str, data: st.DataObject) -> None:
    assume(passage)
    start = data.draw(st.integers(0, len(passage) - 1))
    end = data.draw(st.integers(start + 1, len(passage)))
    quote = passage[start:end]
    assert Citation(1, "a", "T", "a:0", passage, quote, start, end, 0, len(passage)).is_valid()
    at = data.draw(st.integers(0, len(quote) - 1))
    other = "b" if quote[at] == "a" else "a"
    changed = quote[:at] + other + quote[at + 1 :]
    assert not Citation(1, "a", "T", "a:0", passage, changed, start, end, 0, len(passage)).is_valid()
