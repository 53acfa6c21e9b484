"""Enrichment at index time: the questions each sentence answers, written by a model, stored as JSONL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from chatbot.answer import AnswerSettings, answer
from chatbot.backends import build_index
from chatbot.chunking import Chunk
from chatbot.model_queue import Waiting
from chatbot.reader.enrichment import (
    FILENAME,
    EnrichmentError,
    QuestionVectors,
    enrich,
    load_enrichment,
    parse_questions,
    pending,
    sentence_key,
)
from chatbot.retrieval import Retriever
from chatbot.settings import Settings

from .conftest import OPEN, FakeEmbedder


class _Writer:
    """Writes two questions per sentence, numbered as small models do, and counts its calls."""

    label = "fake"

    def __init__(self) -> None:
        self.calls = 0

    def write(self, messages: list[dict[str, str]], max_tokens: int) -> Iterator[str | Waiting]:
        self.calls += 1
        sentence = messages[-1]["content"].split("Phrase : ")[-1].split("\n")[0]
        yield Waiting(1, 0.0)
        yield f"1. Que dit la phrase «{sentence[:20]}» ?\n2) Quel est le fait n°{self.calls} ?\nbavardage"


def _chunk(text: str, article: str = "a") -> Chunk:
    return Chunk(
        id=f"{article}:0", article_id=article, article_title="T", position=0, start=0, end=len(text), text=text
    )


def test_questions_are_parsed_one_per_line_without_numbers_or_chatter() -> None:
    reply = "1. Quel est le taux ?\n- Combien d'élèves ?\nVoici mes questions :\n2) Quel est le taux ?\nCourt ?"
    assert parse_questions(reply) == ("Quel est le taux ?", "Combien d'élèves ?")


def test_each_new_sentence_is_enriched_once_and_appended_as_it_is_written(tmp_path: Path) -> None:
    path = tmp_path / FILENAME
    chunks = [_chunk("Une première phrase assez longue pour compter. Courte. Une seconde phrase assez longue ici.")]
    writer = _Writer()
    todo = pending(chunks + chunks, {})  # the same sentence seen in two overlapping passages: once
    assert [p.sentence for p in todo] == [
        "Une première phrase assez longue pour compter.", "Une seconde phrase assez longue ici."
    ]  # fmt: skip
    rows = list(enrich(todo, writer, path, "fake-model"))
    assert writer.calls == 2 and len(path.read_text("utf-8").splitlines()) == 2
    assert rows[0].questions[1] == "Quel est le fait n°1 ?" and rows[0].model == "fake-model"
    done = load_enrichment(path)
    assert set(done) == {r.key for r in rows}
    # Only the changed sentence is written again; the other keeps its questions.
    changed = [_chunk("Une première phrase assez longue pour compter. Une phrase nouvelle et assez longue.")]
    assert [p.sentence for p in pending(changed, done)] == ["Une phrase nouvelle et assez longue."]


def test_a_broken_enrichment_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / FILENAME
    path.write_text('{"article_id": "a", "sentence": "s", "questions": []}\n{"article_id": "a"}\n', encoding="utf-8")
    with pytest.raises(EnrichmentError, match="line 2"):
        load_enrichment(path)
    assert load_enrichment(tmp_path / "absent.jsonl") == {}


def test_question_vectors_are_embedded_once_and_read_back_from_the_index_folder(tmp_path: Path) -> None:
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    corpus.mkdir()
    sentence = "Une première phrase assez longue pour compter."
    list(enrich(pending([_chunk(sentence)], {}), _Writer(), corpus / FILENAME, "fake"))

    class Counting(FakeEmbedder):
        calls = 0

        def encode_queries(self, texts):  # type: ignore[no-untyped-def]
            Counting.calls += 1
            return super().encode_queries(texts)

    first = QuestionVectors.load(corpus, index, Counting(), "fake")
    again = QuestionVectors.load(corpus, index, Counting(), "fake")
    assert Counting.calls == 1 and len(first) == 1
    assert first.of("a", sentence).shape[0] == 2 and np.allclose(first.of("a", sentence), again.of("a", sentence))
    assert first.of("a", "une autre phrase").shape[0] == 0
    assert sentence_key("a", sentence) == sentence_key("a", f"  {sentence.replace(' ', '  ')} ")


def test_a_sentence_closer_to_its_written_question_is_quoted_first(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    text = "Les PME françaises vendent peu en ligne cette année. Le taux plafonné atteint 16,5% pour les profits."
    (corpus / "a.md").write_text(f"# T\n\n{text}\n", encoding="utf-8")
    settings = Settings(corpus_dir=corpus, index_dir=tmp_path / "index", model="fake", chunk_size=400)
    build_index(settings, FakeEmbedder())
    question = "Les PME françaises vendent peu en ligne ?"
    # Every sentence quoted (a wide margin), the written question weighing much: the order shows it.
    wide = AnswerSettings(min_probability=0.0, margin=10.0, enrichment_weight=3.0)
    before = answer(Retriever(settings, embedder=FakeEmbedder()), question, settings=wide)
    assert before.citations[0].quote.startswith("Les PME")
    # A question written for the other sentence that is the user's question word for word.
    key = sentence_key("a", "Le taux plafonné atteint 16,5% pour les profits.")
    row = (
        '{"article_id": "a", "sentence": "Le taux plafonné atteint 16,5% pour les profits.", '
        f'"questions": ["{question}"], "model": "t"}}'
    )
    (corpus / FILENAME).write_text(row + "\n", encoding="utf-8")
    assert key in load_enrichment(corpus / FILENAME)
    after = answer(Retriever(settings, embedder=FakeEmbedder()), question, settings=wide)
    assert after.citations[0].quote.startswith("Le taux")
    assert {c.quote for c in after.citations} == {c.quote for c in before.citations}  # the same quotes, reordered
    off = answer(Retriever(settings, embedder=FakeEmbedder()), question, settings=AnswerSettings(
        min_probability=0.0, margin=10.0, enrichment_weight=0.0))  # fmt: skip
    assert off.citations[0].quote.startswith("Les PME")
    assert OPEN.enrichment_weight > 0
