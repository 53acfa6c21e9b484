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


LISBONNE = "# Lisbonne\n\nLisbonne accueille le Web Summit chaque novembre depuis 2016."


class _Droppable:
    """A loaded build whose data can go, as Milvus drops the collections of a generation a
    build replaced: every search then fails, as a Milvus call on a dropped collection does."""

    def __init__(self, index: object) -> None:
        self._index = index
        self.dropped = False
        self.failed = 0
        self.closed = False

    def __getattr__(self, name: str) -> object:
        attribute = getattr(self._index, name)
        if name in ("keyword", "nearest", "chunk_vectors", "chunk_scores", "sentence_rows_of", "best_sentence_scores"):

            def call(*args: object) -> object:
                if self.dropped:
                    from chatbot.errors import BackendError

                    self.failed += 1
                    raise BackendError("Milvus failed to search the vectors (collection not found)")
                return attribute(*args)

            return call
        return attribute

    def close(self) -> None:
        self.closed = True


def _rebuilt_with_lisbonne(settings: Settings) -> None:
    (settings.corpus_dir / "lisbonne.md").write_text(LISBONNE, encoding="utf-8")
    build_index(settings, FakeEmbedder())


def test_a_question_whose_build_was_dropped_is_answered_again_from_the_new_build(settings: Settings) -> None:
    from chatbot.backends.local import load_index

    build_index(settings, FakeEmbedder())
    old = _Droppable(load_index(settings))
    retriever = Retriever(settings, embedder=FakeEmbedder(), index=old)  # type: ignore[arg-type]
    _rebuilt_with_lisbonne(settings)
    old.dropped = True
    hits = retriever.pinned(lambda: retriever.search("Lisbonne accueille le Web Summit", k=1))
    assert hits[0].chunk.article_id == "lisbonne"
    assert old.failed == 1 and old.closed  # one failed try, then the old build is let go
    assert retriever.generation == (settings.index_dir / "CURRENT").read_text(encoding="utf-8").strip()


def test_a_failure_of_the_build_in_use_is_not_retried(settings: Settings) -> None:
    from chatbot.backends.local import load_index
    from chatbot.errors import BackendError

    build_index(settings, FakeEmbedder())
    broken = _Droppable(load_index(settings))
    retriever = Retriever(settings, embedder=FakeEmbedder(), index=broken)  # type: ignore[arg-type]
    broken.dropped = True  # the pointer still names it: Milvus is down, not replaced
    with pytest.raises(BackendError, match="collection not found"):
        retriever.pinned(lambda: retriever.search("Hong Kong", k=1))
    assert broken.failed == 1 and not broken.closed


def test_a_run_finishes_on_its_build_while_another_thread_switches(settings: Settings) -> None:
    """A question's passages and rows come from one build, even if the retriever moves on."""
    build_index(settings, FakeEmbedder())
    retriever = Retriever(settings, embedder=FakeEmbedder())
    first = retriever.generation

    def answer() -> tuple[str, str]:
        hits = retriever.search("Hong Kong", k=1)
        _rebuilt_with_lisbonne(settings)
        import threading

        switched = threading.Thread(target=lambda: retriever.refresh(now=True))
        switched.start()
        switched.join()
        retriever.sentence_vectors_of([hits[0].chunk])  # rows of this run's build
        return retriever.generation, retriever.search("Lisbonne Web Summit", k=1)[0].chunk.article_id

    generation, found = retriever.pinned(answer)
    assert generation == first and found != "lisbonne"  # the run's build, to the end
    assert retriever.generation != first  # the next question gets the new one
    assert retriever.search("Lisbonne Web Summit", k=1)[0].chunk.article_id == "lisbonne"


def test_the_pointer_is_read_at_most_once_a_second(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from chatbot.backends.local import LoadedIndex

    build_index(settings, FakeEmbedder())
    retriever = Retriever(settings, embedder=FakeEmbedder())
    reads = []
    latest = LoadedIndex.latest
    monkeypatch.setattr(LoadedIndex, "latest", lambda self: reads.append(1) or latest(self))
    _rebuilt_with_lisbonne(settings)
    assert [retriever.refresh() for _ in range(50)] == [False] * 50  # built a moment ago: not read yet
    assert reads == []
    retriever._checked -= Retriever.REFRESH_EVERY_S  # a second later
    assert retriever.refresh() and len(reads) == 1
    assert not retriever.refresh() and len(reads) == 1
    assert retriever.search("Lisbonne Web Summit", k=1)[0].chunk.article_id == "lisbonne"


def test_a_newer_build_that_cannot_be_loaded_leaves_the_loaded_one_answering(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from chatbot import retrieval

    build_index(settings, FakeEmbedder())
    retriever = Retriever(settings, embedder=FakeEmbedder())
    first = retriever.generation
    _rebuilt_with_lisbonne(settings)
    newest = (settings.index_dir / "CURRENT").read_text(encoding="utf-8").strip()
    (settings.index_dir / newest / "chunks.jsonl").write_text("damaged", encoding="utf-8")
    loads = []
    load = retrieval.load_backend
    monkeypatch.setattr(retrieval, "load_backend", lambda s: loads.append(1) or load(s))
    assert not retriever.refresh(now=True)
    assert "cannot be loaded" in caplog.text
    assert retriever.generation == first and retriever.search("Hong Kong", k=1)
    monkeypatch.setattr(Retriever, "REFRESH_EVERY_S", 0.0)
    assert not retriever.refresh() and len(loads) == 1  # not loaded again every second
