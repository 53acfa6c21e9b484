"""The milvus backend against a real Milvus Lite (pymilvus 2.5.18, milvus-lite 2.5.1) in tmp_path."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from chatbot import cli
from chatbot.backends import build_index, load_backend
from chatbot.errors import BackendError, IndexCorruptError, IndexMismatchError, IndexMissingError
from chatbot.retrieval import Retriever
from chatbot.settings import Settings

from .conftest import REPO, FakeEmbedder

pytest.importorskip("pymilvus", reason="pip install -e '.[milvus]'")
pytestmark = pytest.mark.milvus


@pytest.fixture
def milvus(settings: Settings) -> Settings:
    """The tiny corpus's settings on the milvus backend (a Milvus Lite file in the index folder)."""
    return replace(settings, backend="milvus")


def _collections(settings: Settings) -> list[str]:
    from pymilvus import MilvusClient

    from chatbot.backends.milvus_store import Connection

    conn = Connection(settings)
    try:
        client: MilvusClient = conn.client
        return sorted(client.list_collections())
    finally:
        conn.close()


def test_the_french_analysis_really_happens_in_milvus(milvus: Settings) -> None:
    """Folding and stemming are Milvus's own (its analyzer, not ours): «reseaux» must find
    «réseaux» and «développer» «développement». Milvus Lite 3.2 silently drops both; an
    upgrade that does so fails here."""
    (milvus.corpus_dir / "reseaux.md").write_text(
        "# Les réseaux\n\nLes réseaux sociaux changent la communication des marques.", encoding="utf-8"
    )
    build_index(milvus, FakeEmbedder())
    index = load_backend(milvus)
    try:
        by_id = {row: chunk for row, chunk in enumerate(index.chunks)}
        folded = [by_id[row].article_id for row, _ in index.keyword("reseaux", 5)]
        stemmed = [by_id[row].article_id for row, _ in index.keyword("développer", 5)]
        assert folded == ["reseaux"]
        assert stemmed == ["chine"]  # «recherche et au développement»
        assert index.keyword("le la les", 5) == []  # stop words only
    finally:
        index.close()


def test_milvus_holds_the_same_vectors_and_dense_ranking_as_the_local_index(milvus: Settings) -> None:
    build_index(milvus.with_(backend="local"), FakeEmbedder())
    report = build_index(milvus, FakeEmbedder())
    local = Retriever(milvus.with_(backend="local"), embedder=FakeEmbedder())
    remote = Retriever(milvus, embedder=FakeEmbedder())
    try:
        assert report.index_chunks == remote.chunks  # `chatbot index` labels these without reading them back
        assert [c.id for c in remote.chunks] == [c.id for c in local.chunks]
        assert remote.chunks == local.chunks  # every field of Chunk, through its JSON
        rows = np.arange(len(local.chunks))
        assert np.allclose(remote.index.chunk_vectors(rows), local.index.chunk_vectors(rows), atol=1e-6)
        for chunk in local.chunks:
            assert np.allclose(remote.sentence_vectors_of([chunk])[0], local.sentence_vectors_of([chunk])[0], atol=1e-6)
        together = remote.sentence_vectors_of(local.chunks)  # one read for every passage
        for chunk, vectors in zip(local.chunks, together, strict=True):
            assert np.allclose(vectors, local.sentence_vectors_of([chunk])[0], atol=1e-6)
        question = "Hong Kong plafonne l'imposition"
        assert [h.chunk.id for h in remote.search(question, mode="dense", k=5)] == [
            h.chunk.id for h in local.search(question, mode="dense", k=5)
        ]
        assert remote.search(question, mode="hybrid", k=1)[0].chunk.article_id == "chine"
        assert remote.index.manifest["articles"] == local.index.manifest["articles"]
    finally:
        remote.index.close()


def test_an_update_embeds_only_changed_articles_and_drops_deleted_ones(milvus: Settings) -> None:
    first = build_index(milvus, FakeEmbedder())
    assert first.written and first.embedded_articles == 3
    again = build_index(milvus, FakeEmbedder())
    assert not again.written and again.embedded_chunks == 0

    (milvus.corpus_dir / "chine.md").write_text(
        "# L’entrepreneuriat en Chine\n\nShenzhen attire les start-up du matériel électronique.", encoding="utf-8"
    )
    (milvus.corpus_dir / "twitter.txt").unlink()
    embedder = FakeEmbedder()
    report = build_index(milvus, embedder)
    assert report.written and report.embedded_articles == 1 and report.articles == 2
    assert report.removed == (str(milvus.corpus_dir / "twitter.txt"),)
    index = load_backend(milvus)
    try:
        assert {c.article_id for c in index.chunks} == {"linkedin", "chine"}
        chine = [c for c in index.chunks if c.article_id == "chine"]
        assert embedder.documents == len(chine) + sum(len(c.sentences()) for c in chine)
        hits = Retriever(milvus, embedder=FakeEmbedder(), index=index).search("start-up matériel", k=1)
        assert "Shenzhen attire" in hits[0].chunk.text
        assert index.keyword("netiquette", 5) == []  # the deleted article left the keyword index
        # The linkedin chunks kept their vectors, read back from the previous generation.
        linkedin = [row for row, c in enumerate(index.chunks) if c.article_id == "linkedin"]
        expected = FakeEmbedder().encode_documents([index.chunks[r].text for r in linkedin])
        assert np.allclose(index.chunk_vectors(np.array(linkedin)), expected, atol=1e-6)
    finally:
        index.close()
    kinds = _collections(milvus)
    assert len(kinds) == 4, kinds  # one generation (chunks, sentences, manifest) and the pointer


def test_a_failed_build_leaves_the_previous_collections_in_use_and_nothing_behind(milvus: Settings) -> None:
    build_index(milvus, FakeEmbedder())
    before = _collections(milvus)
    (milvus.corpus_dir / "chine.md").write_text("# Chine\n\n" + "Une phrase neuve. " * 40, encoding="utf-8")
    with pytest.raises(RuntimeError, match="simulated crash"):
        build_index(milvus, FakeEmbedder(fail_after=2))
    assert _collections(milvus) == before
    index = load_backend(milvus)
    try:
        assert any("Hong Kong" in c.text for c in index.chunks)
    finally:
        index.close()


CHILD = """
import sys, time
sys.path.insert(0, {repo!r})
from pathlib import Path
from chatbot.backends import build_index
from chatbot.settings import Settings
from tests.conftest import FakeEmbedder

class Slow(FakeEmbedder):
    def encode_documents(self, texts):
        Path({marker!r}).touch()  # the previous generation is read: the build proper starts
        time.sleep(0.01)
        return super().encode_documents(texts)

settings = Settings(corpus_dir=Path({corpus!r}), index_dir=Path({index!r}), model="fake", chunk_size=120,
                    chunk_overlap=20, backend="milvus")
build_index(settings, Slow(), rebuild=True)
"""


def test_killed_builds_leave_the_previous_collections_answering(milvus: Settings) -> None:
    for n in range(30):
        text = f"# Article {n}\n\n" + " ".join(f"Phrase {n}-{i} sur Hong Kong et LinkedIn." for i in range(30))
        (milvus.corpus_dir / f"a{n:02d}.md").write_text(text, encoding="utf-8")
    build_index(milvus, FakeEmbedder())
    chunks = len(_loaded_chunks(milvus))
    marker = milvus.index_dir.parent / "building"
    script = CHILD.format(
        repo=str(REPO), corpus=str(milvus.corpus_dir), index=str(milvus.index_dir), marker=str(marker)
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def start() -> subprocess.Popen[bytes]:
        """A child build, returned once it has started embedding (its start-up is not timed)."""
        marker.unlink(missing_ok=True)
        child = subprocess.Popen([sys.executable, "-c", script], env=env)
        deadline = time.monotonic() + 120
        while not marker.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        return child

    child = start()
    started = time.perf_counter()
    assert child.wait(timeout=300) == 0
    duration = time.perf_counter() - started  # embedding and writing the new generation

    rng = random.Random(20)
    kills = 0
    for _ in range(6):
        child = start()
        time.sleep(rng.uniform(0.0, 0.9 * duration))
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            kills += 1
        child.wait(timeout=60)
        index = load_backend(milvus)  # never raises: the pointer always names a whole generation
        try:
            assert len(index.chunks) == chunks
            hits = Retriever(milvus, embedder=FakeEmbedder(), index=index).search("Hong Kong LinkedIn", k=3)
            assert len(hits) == 3
        finally:
            index.close()
    assert kills >= 4, "most runs must be killed mid-build for the test to mean something"
    assert build_index(milvus, FakeEmbedder(), rebuild=True).written  # the next build drops the debris
    assert len(_collections(milvus)) == 4


def _loaded_chunks(settings: Settings) -> tuple[object, ...]:
    index = load_backend(settings)
    try:
        return index.chunks
    finally:
        index.close()


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = cli.main(list(args))
    return code, capsys.readouterr().err


def test_a_wrong_uri_is_one_clear_message_and_exit_code_2(milvus: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    common = ("--corpus", str(milvus.corpus_dir), "--index", str(milvus.index_dir), "--backend", "milvus")
    code, err = _main(capsys, "search", "Hong Kong", *common, "--milvus-uri", f"http://127.0.0.1:{port}")
    assert code == cli.EXIT_INDEX
    assert f"Cannot reach Milvus at http://127.0.0.1:{port}" in err and "--milvus-uri" in err
    assert "Traceback" not in err
    code, err = _main(capsys, "search", "Hong Kong", *common)  # nothing built in the Lite file yet
    assert code == cli.EXIT_INDEX and "chatbot index --backend milvus" in err


def test_a_missing_collection_and_another_embedder_are_refused_with_the_fix(
    milvus: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    build_index(milvus, FakeEmbedder())
    with pytest.raises(IndexMismatchError, match=r"model='fake' \(configured: 'e5-small'\).*--backend milvus"):
        load_backend(milvus.with_(model="e5-small"))
    common = ("--corpus", str(milvus.corpus_dir), "--index", str(milvus.index_dir), "--backend", "milvus")
    code, err = _main(capsys, "search", "Hong Kong", *common)  # the CLI's default model is e5-small
    assert code == cli.EXIT_INDEX and "model='fake'" in err and "--rebuild" in err

    from chatbot.backends.milvus_store import Connection

    conn = Connection(milvus)
    sentences = next(name for name in conn.client.list_collections() if name.endswith("_sentences"))
    conn.client.drop_collection(sentences)
    conn.close()
    with pytest.raises(IndexCorruptError, match=f"{sentences} of the index in use is missing.*--rebuild"):
        load_backend(milvus)
    assert build_index(milvus, FakeEmbedder()).written  # the fix the message names works
    assert len(_loaded_chunks(milvus)) > 0


def test_the_lite_file_is_open_to_one_process_at_a_time_and_says_so(milvus: Settings) -> None:
    """Every other process is refused, however many times it tries (milvus-lite's failed
    attempt deletes the owner's lock file: its next attempt used to open the file a second time)."""
    build_index(milvus, FakeEmbedder())
    index = load_backend(milvus)
    try:
        for _ in range(2):
            other = subprocess.run(
                [sys.executable, "-m", "chatbot", "search", "Hong Kong", "--corpus", str(milvus.corpus_dir),
                 "--index", str(milvus.index_dir), "--backend", "milvus", "--model", "fake"],
                env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert other.returncode == cli.EXIT_INDEX, other.stderr
            assert "one process at a time" in other.stderr
        assert (milvus.index_dir / ".milvus.db.lock").is_file()
    finally:
        index.close()


LISBONNE = "# Lisbonne\n\nLisbonne accueille le Web Summit chaque novembre depuis 2016."
LISBONNE_AGAIN = "# Lisbonne\n\nLisbonne accueille le Web Summit chaque novembre, au moins jusqu’en 2028."


def test_a_retriever_follows_a_rebuild_that_dropped_its_collections(milvus: Settings) -> None:
    """A rebuild in the serving process (the one way Milvus Lite lets a file be rebuilt while it
    is served) drops the collections the retriever reads: its next question fails once, then is
    answered from the new generation."""
    build_index(milvus, FakeEmbedder())
    retriever = Retriever(milvus, embedder=FakeEmbedder())
    first = retriever.generation
    try:
        (milvus.corpus_dir / "lisbonne.md").write_text(LISBONNE, encoding="utf-8")
        build_index(milvus, FakeEmbedder(), rebuild=True)
        with pytest.raises(BackendError, match="failed to"):  # what every question did until a restart
            retriever.index.keyword("Lisbonne", 3)
        hits = retriever.pinned(lambda: retriever.search("Lisbonne accueille le Web Summit", k=1))
        assert hits[0].chunk.article_id == "lisbonne"
        assert retriever.generation != first
    finally:
        retriever.index.close()


SOCKET_CHILD = """
import sys, time
sys.path.insert(0, {repo!r})
from pathlib import Path
from chatbot.backends import build_index
from chatbot.settings import Settings
from tests.conftest import FakeEmbedder

settings = Settings(corpus_dir=Path({corpus!r}), index_dir=Path({index!r}), model="fake", chunk_size=120,
                    chunk_overlap=20, backend="milvus", milvus_uri={uri!r})
Path({ready!r}).touch()
for text in ({first!r}, {second!r}):
    time.sleep(0.5)
    (settings.corpus_dir / "lisbonne.md").write_text(text, encoding="utf-8")
    build_index(settings, FakeEmbedder(), rebuild=True)
"""


def test_questions_while_another_process_rebuilds_through_the_served_lite_socket(
    milvus: Settings, tmp_path: Path
) -> None:
    """Two processes on one Milvus engine, as a server and a batch `chatbot index` share a
    Milvus server: this one serves the Lite file, the other rebuilds twice through the socket
    Milvus Lite serves it on. No question fails, every one is cited, the last build answers."""
    from milvus_lite.server_manager import server_manager_instance

    from chatbot.feedback import FeedbackLog
    from chatbot.reader import ExtractiveReader
    from chatbot.service import ChatService

    from .conftest import OPEN

    build_index(milvus, FakeEmbedder())
    retriever = Retriever(milvus, embedder=FakeEmbedder())
    service = ChatService(milvus, retriever, reader=ExtractiveReader(OPEN), feedback=FeedbackLog(tmp_path / "f.jsonl"))
    uri = server_manager_instance._servers[str((milvus.index_dir / "milvus.db").resolve())].uds_path
    ready = tmp_path / "ready"
    script = SOCKET_CHILD.format(
        repo=str(REPO), corpus=str(milvus.corpus_dir), index=str(milvus.index_dir), uri=uri, ready=str(ready),
        first=LISBONNE, second=LISBONNE_AGAIN,
    )  # fmt: skip
    child = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(REPO)})
    questions = ("Quel est le plafond d’imposition à Hong Kong ?", "Combien d’entreprises sont sur LinkedIn ?")
    try:
        while not ready.exists() and child.poll() is None:
            time.sleep(0.02)
        asked, uncited = 0, []
        while asked < 20 or child.poll() is None:
            result = service.ask(questions[asked % 2])  # raises on the first failure
            asked += 1
            if not result.citations:
                uncited.append(result)
            time.sleep(0.05)
        assert child.wait(timeout=300) == 0
        assert uncited == [] and asked >= 20
        time.sleep(Retriever.REFRESH_EVERY_S)
        result = service.ask("Jusqu’en quelle année Lisbonne accueille-t-elle le Web Summit ?")
        assert any(c.article_id == "lisbonne" and "2028" in c.quote for c in result.citations), result
        assert len(_collections_of(retriever)) == 4  # one generation and the pointer: the replaced ones dropped
    finally:
        child.kill()
        retriever.index.close()


def _collections_of(retriever: Retriever) -> list[str]:
    from chatbot.backends.milvus import MilvusIndex

    index = retriever.index
    assert isinstance(index, MilvusIndex)
    return sorted(index._conn.client.list_collections())


def test_a_missing_lite_file_is_a_missing_index(milvus: Settings) -> None:
    with pytest.raises(IndexMissingError, match="chatbot index --backend milvus"):
        load_backend(milvus)
    assert not milvus.index_dir.exists()  # loading creates nothing


class _StoredVectors:
    """The model's vectors as the local build computed them, looked up by text: the real
    corpus is embedded once per session, and Milvus receives exactly the local e5 vectors."""

    def __init__(self, retriever: Retriever) -> None:
        self.name = retriever.embedder.name
        self.model = retriever.embedder
        self.vectors: dict[str, np.ndarray] = {}
        index = retriever.index
        for row, chunk in enumerate(retriever.chunks):
            self.vectors[chunk.indexed_text(retriever.settings.title_in_embedding)] = index.chunk_vectors(
                np.array([row])
            )[0]
            for sentence, vector in zip(chunk.sentences(), index.sentence_rows(row), strict=True):
                self.vectors[sentence] = vector

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.vectors[text] for text in texts])

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.model.encode_queries(texts))


class _SameQueries:
    """The local retriever's question vectors, reused (each question is embedded once for both
    backends: the comparison is of the backends, and the model is the slow part)."""

    def __init__(self, retriever: Retriever) -> None:
        self.retriever = retriever
        self.name = retriever.embedder.name

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return np.vstack([self.retriever.query_vector(text) for text in texts])

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.retriever.embedder.encode_documents(texts))


QUESTION_SETS = sorted((REPO / "evaluation").glob("*.jsonl"))


@pytest.mark.integration
def test_milvus_matches_the_local_backend_on_every_question_set(real_retriever: Retriever, tmp_path: Path) -> None:
    """R@5 and MRR@10 of hybrid search within 0.02 (or one question of a small set) of the local
    backend on every set, and `chatbot eval --backend milvus` prints the same figures."""
    from chatbot.evaluation import evaluate_retriever, load_questions

    settings = replace(real_retriever.settings, index_dir=tmp_path / "index", backend="milvus")
    report = build_index(settings, _StoredVectors(real_retriever))  # type: ignore[arg-type]
    assert report.chunks == len(real_retriever.chunks)
    milvus = Retriever(settings, embedder=_SameQueries(real_retriever))  # type: ignore[arg-type]
    figures = {}
    try:
        for path in QUESTION_SETS:
            questions = load_questions(path)
            if not any(q.answerable for q in questions):
                continue  # small talk and off topic only: nothing to find
            local = evaluate_retriever(questions, real_retriever, "hybrid")
            remote = figures[path.name] = evaluate_retriever(questions, milvus, "hybrid")
            # Milvus and FAISS may order near-ties differently: one question of a 44-question set is 0.023.
            tolerance = max(0.02, 1 / remote["n"] + 0.001)  # the figures are rounded to 4 places
            for metric in ("recall@5", "mrr@10"):
                assert abs(remote[metric] - local[metric]) <= tolerance, (
                    path.name,
                    metric,
                    remote[metric],
                    local[metric],
                )
    finally:
        milvus.index.close()  # Milvus Lite: one process at a time
    # The CLI on Milvus prints what the library measures (ten questions: it embeds them again).
    few = tmp_path / "few.jsonl"
    few.write_text("\n".join(QUESTION_SETS[0].read_text(encoding="utf-8").splitlines()[:10]) + "\n", encoding="utf-8")
    milvus = Retriever(settings, embedder=_SameQueries(real_retriever))  # type: ignore[arg-type]
    try:
        expected = evaluate_retriever(load_questions(few), milvus, "hybrid")
    finally:
        milvus.index.close()
    command = [sys.executable, "-m", "chatbot", "eval", "--backend", "milvus", "--corpus", str(settings.corpus_dir),
               "--index", str(settings.index_dir), "--questions", str(few), "--mode", "hybrid", "--json"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    printed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert printed.returncode == 0, printed.stderr
    cli_figures = json.loads(printed.stdout)
    assert cli_figures["n"] == expected["n"] > 0
    assert cli_figures["recall@5"] == expected["recall@5"] and cli_figures["mrr@10"] == expected["mrr@10"]


def test_the_chat_says_in_french_that_milvus_does_not_answer() -> None:
    from chatbot.app import french_error
    from chatbot.errors import BackendError

    message = french_error(BackendError("Cannot reach Milvus at http://127.0.0.1:1"))
    assert "Milvus" in message and "ne répond pas" in message
