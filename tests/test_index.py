import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from chatbot.backends.local import CURRENT, build_index, current_generation, index_is_stale, load_index
from chatbot.errors import IndexCorruptError, IndexLockedError, IndexMismatchError, IndexMissingError
from chatbot.settings import Settings

from .conftest import OPEN, FakeEmbedder


def test_build_then_load(settings: Settings, embedder: FakeEmbedder) -> None:
    report = build_index(settings, embedder)
    assert (report.articles, report.embedded_articles, report.written) == (3, 3, True)
    index = load_index(settings)
    assert len(index.chunks) == report.chunks == index.vectors.ntotal
    assert report.index_chunks == index.chunks  # what `chatbot index` labels, without loading the index again
    # Nothing changed: nothing is written, and the report still holds every chunk.
    again = build_index(settings, embedder)
    assert not again.written and again.index_chunks == index.chunks
    manifest = index.manifest
    assert manifest["format_version"] == 3
    assert manifest["embedder"] == {"name": "fake", "dim": FakeEmbedder().dim}
    assert manifest["settings"] == {
        "model": "fake",
        "chunk_size": 120,
        "chunk_overlap": 20,
        "title_in_keywords": True,
        "title_in_embedding": False,
        "sentence_vectors": True,
    }
    assert set(manifest["articles"]) == {"linkedin", "chine", "twitter"}
    assert {"chunks.jsonl", "vectors.faiss", "sentences.npy"} <= set(manifest["files"])
    assert any(name.startswith("bm25/") for name in manifest["files"])


def test_every_sentence_of_every_chunk_has_its_own_stored_vector(settings: Settings, embedder: FakeEmbedder) -> None:
    build_index(settings, embedder)
    index = load_index(settings)
    assert index.manifest["sentences"] == len(index.sentence_vectors) > len(index.chunks)
    for row, chunk in enumerate(index.chunks):
        stored = index.sentence_rows(row)
        assert stored.shape == (len(chunk.sentences()), FakeEmbedder().dim)
        assert np.allclose(stored, FakeEmbedder().encode_documents(chunk.sentences()), atol=1e-6)


def test_chunk_metadata_is_readable_jsonl_with_accents(settings: Settings, embedder: FakeEmbedder) -> None:
    build_index(settings, embedder)
    lines = (current_generation(settings.index_dir) / "chunks.jsonl").read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    assert set(first) == {"id", "article_id", "article_title", "position", "start", "end", "text", "article_url"}
    assert "L’entrepreneuriat" in lines[0]  # ensure_ascii=False


def test_no_change_rebuild_does_not_touch_the_model_or_the_files(settings: Settings) -> None:
    build_index(settings, FakeEmbedder())
    before = current_generation(settings.index_dir)
    untouched = FakeEmbedder()
    report = build_index(settings, untouched)
    assert untouched.calls == 0
    assert (report.written, report.embedded_articles) == (False, 0)
    assert current_generation(settings.index_dir) == before


def test_only_the_changed_article_is_embedded_again(settings: Settings) -> None:
    build_index(settings, FakeEmbedder())
    old = {c.id: c for c in load_index(settings).chunks}
    path = settings.corpus_dir / "twitter.txt"
    path.write_text(path.read_text(encoding="utf-8") + " Citez vos sources.", encoding="utf-8")
    second = FakeEmbedder()
    report = build_index(settings, second)
    assert report.embedded_articles == 1
    new_chunks = load_index(settings).chunks
    twitter_chunks = [c for c in new_chunks if c.article_id == "twitter"]
    assert len(twitter_chunks) == report.embedded_chunks
    assert second.documents == len(twitter_chunks) + sum(len(c.sentences()) for c in twitter_chunks)
    kept = [c for c in new_chunks if c.article_id != "twitter"]
    assert [c.id for c in kept] == [i for i in old if not i.startswith("twitter:")]  # none dropped, none added
    assert all(old[c.id] == c for c in kept)  # same ids, same text, same offsets


def test_reused_vectors_equal_freshly_embedded_ones(settings: Settings) -> None:
    build_index(settings, FakeEmbedder())
    (settings.corpus_dir / "new.md").write_text("# Nouveau\n\nUn article de plus sur Shenzhen.", encoding="utf-8")
    build_index(settings, FakeEmbedder())
    incremental = load_index(settings)
    build_index(settings, FakeEmbedder(), rebuild=True)
    full = load_index(settings)
    assert [c.id for c in incremental.chunks] == [c.id for c in full.chunks]
    n = full.vectors.ntotal
    assert (incremental.vectors.reconstruct_n(0, n) == full.vectors.reconstruct_n(0, n)).all()
    assert np.array_equal(incremental.sentence_vectors, full.sentence_vectors)


def test_deleted_articles_are_dropped(settings: Settings) -> None:
    build_index(settings, FakeEmbedder())
    (settings.corpus_dir / "chine.md").unlink()
    report = build_index(settings, FakeEmbedder())
    assert report.removed_articles == 1
    assert report.removed == (str(settings.corpus_dir / "chine.md"),)
    assert {c.article_id for c in load_index(settings).chunks} == {"linkedin", "twitter"}


def test_rebuild_embeds_everything(settings: Settings) -> None:
    build_index(settings, FakeEmbedder())
    report = build_index(settings, FakeEmbedder(), rebuild=True)
    assert report.embedded_articles == 3


def test_a_build_that_crashes_half_way_leaves_the_old_index_whole(settings: Settings) -> None:
    build_index(settings, FakeEmbedder())
    before = load_index(settings)
    (settings.corpus_dir / "new.md").write_text("# Nouveau\n\n" + "Une phrase sur Hong Kong. " * 30, encoding="utf-8")
    with pytest.raises(RuntimeError, match="simulated crash"):
        build_index(settings, FakeEmbedder(fail_after=1), rebuild=True)
    after = load_index(settings)
    assert after.path == before.path
    assert [c.id for c in after.chunks] == [c.id for c in before.chunks]
    assert not [p for p in settings.index_dir.iterdir() if p.name.startswith(".tmp-")]


def test_missing_index_names_the_command(settings: Settings) -> None:
    with pytest.raises(IndexMissingError, match="chatbot index"):
        load_index(settings)


def test_other_embedder_is_refused_with_the_fix(settings: Settings, embedder: FakeEmbedder) -> None:
    build_index(settings, embedder)
    with pytest.raises(IndexMismatchError, match=r"model='fake' \(configured: 'e5-small'\).*chatbot index --rebuild"):
        load_index(replace(settings, model="e5-small"))


def test_other_chunking_is_refused(settings: Settings, embedder: FakeEmbedder) -> None:
    build_index(settings, embedder)
    with pytest.raises(IndexMismatchError, match="chunk_size=120"):
        load_index(replace(settings, chunk_size=300))


def test_other_format_version_is_refused(settings: Settings, embedder: FakeEmbedder) -> None:
    build_index(settings, embedder)
    path = current_generation(settings.index_dir) / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["format_version"] = 99
    path.write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(IndexCorruptError, match="format version 99.*--rebuild"):
        load_index(settings)


@pytest.mark.parametrize("name", ["vectors.faiss", "chunks.jsonl", "sentences.npy", "bm25/params.index.json"])
def test_truncated_or_corrupt_files_are_detected(settings: Settings, embedder: FakeEmbedder, name: str) -> None:
    build_index(settings, embedder)
    path = current_generation(settings.index_dir) / name
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(IndexCorruptError, match="truncated or corrupt.*--rebuild"):
        load_index(settings)
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(IndexCorruptError, match="truncated or corrupt"):
        load_index(settings)


def test_missing_file_and_corrupt_manifest_are_detected(settings: Settings, embedder: FakeEmbedder) -> None:
    build_index(settings, embedder)
    generation = current_generation(settings.index_dir)
    (generation / "vectors.faiss").unlink()
    with pytest.raises(IndexCorruptError, match="missing"):
        load_index(settings)
    (generation / "manifest.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(IndexCorruptError, match="manifest .* corrupt"):
        load_index(settings)


def test_a_corrupt_index_is_rebuilt_in_full_by_the_index_command(settings: Settings) -> None:
    build_index(settings, FakeEmbedder())
    (current_generation(settings.index_dir) / "vectors.faiss").write_bytes(b"junk")
    report = build_index(settings, FakeEmbedder())
    assert report.embedded_articles == 3
    assert load_index(settings).vectors.ntotal == report.chunks


def test_staleness_follows_the_corpus(settings: Settings, embedder: FakeEmbedder) -> None:
    assert index_is_stale(settings)
    build_index(settings, embedder)
    assert not index_is_stale(settings)
    (settings.corpus_dir / "new.md").write_text("# Nouveau\n\nTexte.", encoding="utf-8")
    assert index_is_stale(settings)


def test_a_second_indexer_is_refused_while_one_writes(settings: Settings, embedder: FakeEmbedder) -> None:
    import fcntl

    settings.index_dir.mkdir(parents=True)
    with open(settings.index_dir / ".lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(IndexLockedError, match="wait for it"):
            build_index(settings, embedder)
    assert not (settings.index_dir / CURRENT).exists()


def test_several_indexes_live_side_by_side(settings: Settings, tmp_path: Path) -> None:
    other = replace(settings, index_dir=tmp_path / "other", chunk_size=300)
    build_index(settings, FakeEmbedder())
    build_index(other, FakeEmbedder())
    assert len(load_index(settings).chunks) > len(load_index(other).chunks)


def test_hnsw_is_chosen_past_the_exact_limit_recorded_and_searched(settings: Settings, tmp_path: Path) -> None:
    from chatbot.retrieval import Retriever

    exact = replace(settings, index_dir=tmp_path / "exact")
    build_index(exact, FakeEmbedder())
    build_index(settings, FakeEmbedder())
    assert load_index(settings).manifest["vector_index"]["type"] == "flat"
    small_limit = replace(settings, exact_up_to=2)
    report = build_index(small_limit, FakeEmbedder())  # only the kind changed: rewritten, nothing embedded
    assert report.written and report.embedded_chunks == 0
    index = load_index(small_limit)
    assert index.manifest["vector_index"] == {"type": "hnsw", "metric": "inner_product", "M": 32, "efConstruction": 64}
    assert type(index.vectors).__name__ == "IndexHNSWFlat" and index.vectors.hnsw.efSearch == 256
    approximate = Retriever(small_limit, embedder=FakeEmbedder())
    reference = Retriever(exact, embedder=FakeEmbedder())
    for question in ("Hong Kong impôts", "LinkedIn salariés", "Twitter sources"):
        for mode in ("dense", "hybrid"):
            got = [h.chunk.id for h in approximate.search(question, k=3, mode=mode)]  # type: ignore[arg-type]
            assert got == [h.chunk.id for h in reference.search(question, k=3, mode=mode)]  # type: ignore[arg-type]
    assert not build_index(small_limit, FakeEmbedder()).written


def test_without_sentence_vectors_answers_embed_sentences_at_question_time(settings: Settings) -> None:
    from chatbot.answer import answer
    from chatbot.retrieval import Retriever

    lean = replace(settings, sentence_vectors=False)
    counting = FakeEmbedder()
    build_index(lean, counting)
    index = load_index(lean)
    assert counting.documents == len(index.chunks)  # chunks only
    assert index.sentence_vectors.shape == (0, FakeEmbedder().dim) and index.manifest["sentences"] == 0
    with pytest.raises(IndexMismatchError, match="sentence_vectors"):
        load_index(settings)
    question = "Que consacre Shenzhen à la recherche ?"
    embedder = FakeEmbedder()
    lean_answer = answer(Retriever(lean, embedder=embedder), question, settings=OPEN)
    assert embedder.documents > 0  # the sentences, embedded now
    full = replace(settings, index_dir=settings.index_dir.parent / "full")
    build_index(full, FakeEmbedder())
    assert lean_answer.text == answer(Retriever(full, embedder=FakeEmbedder()), question, settings=OPEN).text


@pytest.mark.parametrize(
    "change",
    [
        {"embedder": "fake"},
        {"embedder": {"name": "fake"}},
        {"settings": ["chunk_size", 120]},
        {"articles": ["chine"]},
        {"articles": {"chine": {"title": "sans hash"}}},
        {"files": {"chunks.jsonl": 3}},
        {"files": {"chunks.jsonl": {"size": "12", "sha256": "x"}}},
        {"vector_index": "flat"},
    ],
)
def test_a_manifest_of_the_wrong_shape_is_a_corrupt_index(
    settings: Settings, embedder: FakeEmbedder, change: dict[str, object]
) -> None:
    build_index(settings, embedder)
    path = current_generation(settings.index_dir) / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text(encoding="utf-8")), **change}), encoding="utf-8")
    with pytest.raises(IndexCorruptError, match="manifest .* malformed.*--rebuild"):
        load_index(settings)
    assert index_is_stale(settings)
    report = build_index(settings, FakeEmbedder())  # the index command rebuilds it in full
    assert report.embedded_articles == 3 and load_index(settings).vectors.ntotal == report.chunks


def test_an_articles_text_is_rebuilt_from_its_chunks_at_their_offsets(settings: Settings) -> None:
    from chatbot.chunking import article_text_from_chunks
    from chatbot.corpus import load_corpus

    build_index(settings, FakeEmbedder())
    chunks = load_index(settings).chunks
    for article in load_corpus(settings.corpus_dir).articles:
        own = [c for c in chunks if c.article_id == article.id]
        rebuilt = article_text_from_chunks(own)
        assert len(rebuilt) == len(article.text) and rebuilt.split() == article.text.split()
        assert all(rebuilt[c.start : c.end] == c.text for c in own)
    assert len([c for c in chunks if c.article_id == "chine"]) > 1  # the overlaps and gaps are exercised


def test_a_version_2_index_is_read_and_takes_new_urls_without_embedding(
    settings: Settings, embedder: FakeEmbedder
) -> None:
    import hashlib

    build_index(settings, embedder)
    generation = current_generation(settings.index_dir)
    chunks = generation / "chunks.jsonl"
    rows = [json.loads(line) for line in chunks.read_text(encoding="utf-8").splitlines()]
    for row in rows:
        del row["article_url"]  # as version 2 wrote them
    chunks.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    manifest_path = generation / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["format_version"] = 2
    for facts in manifest["articles"].values():
        del facts["url"]
    manifest["files"]["chunks.jsonl"] = {
        "size": chunks.stat().st_size,
        "sha256": hashlib.sha256(chunks.read_bytes()).hexdigest(),
    }
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    assert {c.article_url for c in load_index(settings).chunks} == {""}
    assert not index_is_stale(settings)
    article = settings.corpus_dir / "linkedin.md"
    article.write_text(
        article.read_text(encoding="utf-8").replace("---\n\n", "url: https://blog.example/linkedin/\n---\n\n", 1),
        encoding="utf-8",
    )
    assert index_is_stale(settings)  # a new address is a change the chat must see
    none = FakeEmbedder()
    report = build_index(settings, none)
    assert (report.written, report.embedded_articles, none.documents) == (True, 0, 0)
    index = load_index(settings)
    assert index.manifest["format_version"] == 3
    assert {c.article_url for c in index.chunks if c.article_id == "linkedin"} == {"https://blog.example/linkedin/"}
    assert {c.article_url for c in index.chunks if c.article_id != "linkedin"} == {""}
    assert not index_is_stale(settings)


LISBONNE = "# Lisbonne\n\nLisbonne accueille le Web Summit chaque novembre depuis 2016."


def _swap_after_reading_current(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The next read of CURRENT is followed at once by a whole build (a new article, the
    generation it named deleted), as when ``chatbot index`` finishes while a server loads."""
    from chatbot.backends import local

    read = local.current_generation
    raced: list[Path] = []

    def racing(index_dir: Path) -> Path:
        path = read(index_dir)
        if not raced:
            raced.append(path)
            (settings.corpus_dir / "lisbonne.md").write_text(LISBONNE, encoding="utf-8")
            build_index(settings, FakeEmbedder())
        return path

    monkeypatch.setattr(local, "current_generation", racing)
    return raced


def test_a_load_racing_a_swap_reads_the_new_build_and_never_calls_it_corrupt(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_index(settings, FakeEmbedder())
    raced = _swap_after_reading_current(settings, monkeypatch)
    index = load_index(settings)  # used to raise «Index file … is missing. Rebuild it»
    assert raced and not raced[0].exists()
    assert index.generation == (settings.index_dir / CURRENT).read_text(encoding="utf-8").strip() != raced[0].name
    assert "lisbonne" in {c.article_id for c in index.chunks}


def test_a_staleness_check_racing_a_swap_reads_the_new_build(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_index(settings, FakeEmbedder())
    raced = _swap_after_reading_current(settings, monkeypatch)
    assert not index_is_stale(settings)  # used to say stale (the manifest it named was gone): a needless build
    assert raced


def test_loads_during_rebuilds_never_fail(settings: Settings) -> None:
    """One thread rebuilds again and again while another loads: every load gives a whole index."""
    import threading

    build_index(settings, FakeEmbedder())
    done = threading.Event()
    builds: list[int] = []

    def rebuild() -> None:
        try:
            for _ in range(8):
                build_index(settings, FakeEmbedder(), rebuild=True)
                builds.append(1)
        finally:
            done.set()

    thread = threading.Thread(target=rebuild)
    thread.start()
    failures: list[Exception] = []
    loads = 0
    while not done.is_set():
        try:
            assert len(load_index(settings).chunks) > 0
        except IndexCorruptError as exc:
            failures.append(exc)
        loads += 1
    thread.join()
    assert len(builds) == 8 and loads > 8
    assert failures == []
