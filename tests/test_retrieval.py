from dataclasses import replace

import numpy as np
import pytest

from chatbot.backends import build_index
from chatbot.errors import QuestionError
from chatbot.retrieval import Retriever, clean_question, rrf_fuse
from chatbot.settings import Settings

from .conftest import FakeEmbedder


def test_rrf_matches_a_hand_computed_fusion() -> None:
    bm25 = [(1, 9.0), (2, 5.0)]
    dense = [(2, 0.9), (3, 0.8)]
    fused = rrf_fuse([(bm25, 1.0), (dense, 1.0)], k=60)
    # 2: 1/62 + 1/61 = 0.032522; 1: 1/61 = 0.016393; 3: 1/62 = 0.016129
    assert [row for row, _ in fused] == [2, 1, 3]
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61)
    assert fused[2][1] == pytest.approx(1 / 62)


def test_rrf_weights_shift_the_order() -> None:
    fused = rrf_fuse([([(1, 1.0)], 1.0), ([(3, 1.0)], 2.0)], k=60)
    assert [row for row, _ in fused] == [3, 1]


@pytest.mark.parametrize("bad", ["", "   ", "\x00\x01\n"])
def test_empty_questions_are_refused(bad: str) -> None:
    with pytest.raises(QuestionError, match="empty"):
        clean_question(bad, 100)


def test_long_questions_are_refused_and_control_characters_removed() -> None:
    with pytest.raises(QuestionError, match="too long"):
        clean_question("a" * 101, 100)
    assert clean_question("Linked\x00In\ud800 ?", 100) == "Linked In ?"


@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid"])
def test_each_mode_finds_the_article_that_holds_the_words(retriever: Retriever, mode: str) -> None:
    hits = retriever.search("Combien d'entreprises sont absentes de LinkedIn ?", k=2, mode=mode)  # type: ignore[arg-type]
    assert hits[0].chunk.article_id == "linkedin"
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))


def test_keyword_search_matches_accent_free_numbers_and_elisions(retriever: Retriever) -> None:
    hits = retriever.search("imposition 16,5% hong kong", k=1, mode="bm25")
    assert hits[0].chunk.article_id == "chine"
    assert retriever.search("developpement", k=1, mode="bm25")[0].chunk.article_id == "chine"


def test_keyword_search_returns_nothing_for_unknown_words(retriever: Retriever) -> None:
    assert retriever.search("zzzz qwerty", mode="bm25") == []


def test_top_rows_equals_a_full_stable_sort_ties_included() -> None:
    import numpy as np

    from chatbot.backends.base import top_rows

    rng = np.random.default_rng(0)
    for _ in range(200):
        scores = rng.integers(0, 5, size=int(rng.integers(1, 60))).astype(np.float32)  # many ties
        depth = int(rng.integers(1, 70))
        assert top_rows(scores, depth).tolist() == np.argsort(-scores, kind="stable")[:depth].tolist()


def test_best_sentence_scores_take_each_chunks_best_sentence(retriever: Retriever) -> None:
    query = retriever.query_vector("Il n'existe pas de TVA")[0]
    rows = np.arange(len(retriever.chunks))
    scores = retriever.index.best_sentence_scores(rows, query)
    for row, score in zip(rows, scores, strict=True):
        sentences = retriever.chunks[row].sentences()
        best = max(float(retriever.embedder.encode_documents([s])[0] @ query) for s in sentences)
        assert score == pytest.approx(best, abs=1e-5)
    tva = next(row for row in rows if "pas de TVA" in retriever.chunks[row].text)
    assert scores[tva] == pytest.approx(1.0, abs=1e-5)  # that very sentence is in the chunk


def test_hybrid_with_only_the_sentence_signal_ranks_by_best_sentence(settings: Settings) -> None:
    build_index(settings, FakeEmbedder())
    only_sentences = replace(settings, bm25_weight=0.0, dense_weight=0.0, sentence_weight=1.0)
    retriever = Retriever(only_sentences, embedder=FakeEmbedder())
    question = "Shenzhen consacre quelle part de son PIB à la recherche ?"
    ranking = retriever.hybrid(question, 10)
    rows = np.array([row for row, _ in ranking])
    best = retriever.index.best_sentence_scores(rows, retriever.query_vector(question)[0])
    assert len(rows) > 1 and list(best) == sorted(best, reverse=True)
    assert "Shenzhen" in retriever.chunks[rows[0]].text


def test_english_questions_leave_french_bm25_out_of_hybrid(settings: Settings) -> None:
    build_index(settings, FakeEmbedder())
    retriever = Retriever(settings, embedder=FakeEmbedder())
    english = "What share of companies are not on LinkedIn?"
    french = "Quelle part des entreprises est absente de LinkedIn ?"
    assert retriever.bm25_weight(english) == settings.bm25_weight_en == 0.0
    assert retriever.bm25_weight(french) == settings.bm25_weight == 0.75
    assert retriever.keyword(english, 10)  # «LinkedIn» matches, so BM25 would weigh in
    without_bm25 = Retriever(replace(settings, bm25_weight=0.0), embedder=FakeEmbedder())
    with_bm25 = Retriever(replace(settings, bm25_weight_en=0.75), embedder=FakeEmbedder())
    assert retriever.hybrid(english, 10) == without_bm25.hybrid(english, 10)
    assert retriever.hybrid(english, 10) != with_bm25.hybrid(english, 10)
