"""The ``milvus`` search backend: the same hybrid search, its data in Milvus.

One build is a *generation* of three collections, ``<prefix>_g<stamp>_chunks`` (text with
Milvus's French BM25, dense vector, the chunk as JSON), ``..._sentences`` (one vector per
sentence, primary key the sentence row, with its chunk id and position) and ``..._manifest``
(the build's settings and one row per article with its content hash). The collection
``<prefix>_current`` names the generation in use: a build writes and flushes a whole new
generation, then inserts one row there, then drops the older generations. A run killed at any
point leaves the previous generation answering (Milvus Lite 2.5.1 has no aliases:
``create_alias`` is unimplemented there, so a pointer row does what ``alter_alias`` would).

Milvus does BM25 (from the raw text, with the analyzer of :mod:`chatbot.backends.milvus_store`,
where the collections are written) and the dense search; the
z-score fusion, follow-ups and English weighting stay in :class:`chatbot.retrieval.Retriever`.
Works with Milvus Lite (a ``.db`` file, FLAT vectors) and a Milvus 2.5 server or cluster
(``http://host:19530``, HNSW vectors). docs/milvus.md has the measurements.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from chatbot import analysis
from chatbot.backends.base import Ranking
from chatbot.backends.build import (
    FORMAT_VERSION,
    BuildReport,
    Progress,
    check_compatible,
    corpus_changed,
    embed_plan,
    plan_build,
    writer_lock,
)
from chatbot.backends.milvus_store import (
    ANALYZER,
    ANALYZER_VERSION,
    FIX,
    Connection,
    Names,
    dense_index,
    drop,
    drop_others,
    read_pointer,
    scan,
    switch,
    write_generation,
)
from chatbot.chunking import Chunk
from chatbot.corpus import load_corpus
from chatbot.errors import BackendError, IndexCorruptError, IndexMismatchError, IndexMissingError
from chatbot.settings import Settings

if TYPE_CHECKING:
    from chatbot.embedding import Embedder

logger = logging.getLogger(__name__)


class MilvusIndex:
    """A verified generation in Milvus, ready to search (the :class:`SearchBackend` protocol).

    The chunks (text and offsets, not vectors) are read once into memory, as the local index
    does: the reader, the chat's article view and the follow-up logic use them. Vectors stay
    in Milvus; sentence vectors are fetched for the retrieved passages only.
    """

    def __init__(
        self,
        conn: Connection,
        settings: Settings,
        names: Names,
        manifest: dict[str, Any],
        chunks: tuple[Chunk, ...],
        counts: np.ndarray,
    ) -> None:
        self._conn = conn
        self.settings = settings
        self.names = names
        self.manifest = manifest
        self.chunks = chunks
        self.sentence_offsets = np.cumsum([0, *counts]).astype(np.int64)
        self.dim = int(manifest["embedder"]["dim"])
        self.uri = conn.uri

    @property
    def generation(self) -> str:
        """The ``g…`` generation whose collections this index reads."""
        return self.names.generation

    def latest(self) -> str:
        """The generation the pointer collection names now (one query). A build drops the
        collections of the generation it replaces: this index's calls then fail.

        Raises:
            IndexMissingError: the pointer is gone.
            BackendError: Milvus cannot be reached.
        """
        return read_pointer(self._conn, self.names.prefix)

    def keyword(self, text: str, depth: int) -> Ranking:
        """Milvus's BM25 over its French analysis of the raw question."""
        if not analysis.analyze(text):  # only stop words: Milvus would score nothing either
            return []
        client = self._conn.client
        found = self._conn.call(
            "search the keyword index",
            lambda: client.search(
                self.names.chunks,
                data=[text],
                anns_field="sparse",
                limit=min(depth, len(self.chunks)),
                search_params={"metric_type": "BM25"},
            ),
        )
        return [(int(hit["id"]), float(hit["distance"])) for hit in found[0] if hit["distance"] > 0]

    def nearest(self, query: np.ndarray, depth: int) -> Ranking:
        """Inner product search over the chunks' vectors (exact on Milvus Lite, HNSW on a server)."""
        params = self._dense_params(depth)
        client = self._conn.client
        found = self._conn.call(
            "search the vectors",
            lambda: client.search(
                self.names.chunks,
                data=[np.asarray(query[0], dtype=np.float32).tolist()],
                anns_field="dense",
                limit=min(depth, len(self.chunks)),
                search_params=params,
            ),
        )
        return [(int(hit["id"]), float(hit["distance"])) for hit in found[0]]

    def chunk_vectors(self, rows: np.ndarray) -> np.ndarray:
        """The stored vectors of ``rows``, in that order."""
        ids = [int(r) for r in rows]
        if not ids:
            return np.zeros((0, self.dim), dtype=np.float32)
        got = self._get(self.names.chunks, ids, "row", "dense")
        return np.array([got[i] for i in ids], dtype=np.float32)

    def chunk_scores(self, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
        """Inner products computed by Milvus (a search restricted to ``rows``): measured on
        Milvus Lite, fetching 100 vectors costs about twice as much as this."""
        ids = [int(r) for r in rows]
        found = self._among(self.names.chunks, "dense", "row", ids, len(ids), query, self._dense_params(len(ids)))
        scores = {int(hit["id"]): float(hit["distance"]) for hit in found}
        missing = [i for i in ids if i not in scores]  # an approximate (HNSW) search may skip some
        if missing:
            scores |= dict(zip(missing, (self.chunk_vectors(np.array(missing)) @ query).tolist(), strict=True))
        return np.array([scores[i] for i in ids], dtype=np.float32)

    def sentence_rows_of(self, rows: Sequence[int]) -> list[np.ndarray]:
        """The sentence vectors of each of ``rows``, fetched by their primary keys in one read."""
        return self._sentences([int(row) for row in rows])

    def best_sentence_scores(self, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
        """For each of ``rows``, the best cosine of one of its sentences (-1 without any):
        every sentence of those chunks scored by Milvus (exact: FLAT) and the best kept per
        chunk. Measured on Milvus Lite, 545 sentences of 99 chunks: 15 ms this way, 134 ms
        fetching the vectors."""
        ids = [int(r) for r in rows]
        total = int(sum(self.sentence_offsets[r + 1] - self.sentence_offsets[r] for r in ids))
        best: dict[int, float] = {}
        found = self._among(self.names.sentences, "vector", "chunk_row", ids, total, query, {"metric_type": "IP"})
        for hit in found:
            row = int(hit["entity"]["chunk_row"])
            best[row] = max(best.get(row, -1.0), float(hit["distance"]))
        return np.array([best.get(i, -1.0) for i in ids], dtype=np.float32)

    def _among(
        self,
        collection: str,
        field: str,
        key: str,
        ids: list[int],
        limit: int,
        query: np.ndarray,
        params: dict[str, Any],
    ) -> list[dict[str, Any]]:
        """The hits of a search of ``query`` restricted to the rows whose ``key`` is in ``ids``
        (scored by Milvus rather than fetching their vectors), with ``key`` among their fields."""
        if not ids or not limit:
            return []
        client = self._conn.client
        found = self._conn.call(
            "score the candidates",
            lambda: client.search(
                collection,
                data=[np.asarray(query, dtype=np.float32).tolist()],
                anns_field=field,
                filter=f"{key} in {ids}",
                limit=limit,
                search_params=params,
                output_fields=[key],
            ),
        )
        return list(found[0])

    def _dense_params(self, depth: int) -> dict[str, Any]:
        params: dict[str, Any] = {"metric_type": "IP"}
        if not self._conn.lite_engine:
            params["params"] = {"ef": max(self.settings.hnsw_ef_search, depth)}
        return params

    def _sentences(self, rows: list[int]) -> list[np.ndarray]:
        ranges = [range(int(self.sentence_offsets[r]), int(self.sentence_offsets[r + 1])) for r in rows]
        ids = [i for span in ranges for i in span]
        got = self._get(self.names.sentences, ids, "id", "vector") if ids else {}
        return [np.array([got[i] for i in span], dtype=np.float32).reshape(len(span), self.dim) for span in ranges]

    def _get(self, collection: str, ids: list[int], key: str, field: str) -> dict[int, list[float]]:
        client = self._conn.client
        rows = self._conn.call("read vectors", lambda: client.get(collection, ids=ids, output_fields=[field]))
        got = {int(r[key]): r[field] for r in rows}
        if len(got) != len(set(ids)):
            raise IndexCorruptError(
                f"The Milvus collection {collection} at {self.uri} lacks rows. Rebuild it with `{FIX} --rebuild`."
            )
        return got

    def close(self) -> None:
        self._conn.close()


def load_milvus(settings: Settings) -> MilvusIndex:
    """The generation in use at ``settings.milvus_uri``, checked against the settings.

    Raises:
        BackendError: the client is not installed or Milvus cannot be reached.
        IndexMissingError: nothing was built there yet.
        IndexCorruptError: the collections are incomplete or of another format.
        IndexMismatchError: they were built with another embedder or other settings.
    """
    conn = Connection(settings)
    try:
        while True:
            before = read_pointer(conn, settings.milvus_collection)
            try:
                return _load(conn, settings)
            except (IndexCorruptError, BackendError):
                # A build that finished meanwhile dropped the generation being read: read the
                # new one (each move of the pointer is a whole build); else it is broken.
                if _pointer_or_none(conn, settings) in (None, before):
                    raise
                logger.info("The index in Milvus at %s was replaced while being read; reading the new one.", conn.uri)
    except BaseException:
        conn.close()
        raise


def _pointer_or_none(conn: Connection, settings: Settings) -> str | None:
    try:
        return read_pointer(conn, settings.milvus_collection)
    except (IndexMissingError, BackendError):
        return None


def _load(conn: Connection, settings: Settings) -> MilvusIndex:
    names, manifest = _current(conn, settings)
    check_compatible(manifest, settings, where=f"Milvus at {conn.uri}", command=FIX)
    client = conn.client
    for name in (names.chunks, names.sentences):
        conn.call("load the collections", lambda name=name: client.load_collection(name))  # type: ignore[misc]
    rows = scan(conn, names.chunks, ["row", "chunk", "sentences"])
    rows.sort(key=lambda r: int(r["row"]))
    try:
        chunks = tuple(Chunk(**json.loads(r["chunk"])) for r in rows)
    except (ValueError, TypeError) as exc:
        raise IndexCorruptError(f"A chunk in Milvus at {conn.uri} cannot be read ({exc}). {_rebuild()}") from exc
    counts = np.array([int(r["sentences"]) for r in rows], dtype=np.int64)
    if [int(r["row"]) for r in rows] != list(range(len(rows))) or len(rows) != manifest.get("chunks"):
        raise IndexCorruptError(f"The chunks in Milvus at {conn.uri} are incomplete. {_rebuild()}")
    if int(counts.sum()) != manifest.get("sentences"):
        raise IndexCorruptError(f"The sentence vectors in Milvus at {conn.uri} are incomplete. {_rebuild()}")
    return MilvusIndex(conn, settings, names, manifest, chunks, counts)


def _rebuild() -> str:
    return f"Rebuild it with `{FIX} --rebuild`."


def _current(conn: Connection, settings: Settings) -> tuple[Names, dict[str, Any]]:
    """The generation the pointer names and its manifest."""
    client = conn.client
    names = Names(settings.milvus_collection, read_pointer(conn, settings.milvus_collection))
    existing = set(conn.call("list the collections", client.list_collections))
    missing = [name for name in names.all() if name not in existing]
    if missing:
        raise IndexCorruptError(
            f"Milvus at {conn.uri}: the collection {missing[0]} of the index in use is missing. {_rebuild()}"
        )
    facts = scan(conn, names.manifest, ["key", "value"])
    values = {r["key"]: json.loads(r["value"]) for r in facts}
    manifest = values.get("build")
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        raise IndexCorruptError(f"The index in Milvus at {conn.uri} is of another format. {_rebuild()}")
    if manifest.get("milvus_analyzer_version") != ANALYZER_VERSION:
        raise IndexMismatchError(f"The Milvus keyword index uses an older French analyzer. {_rebuild()}")
    manifest["articles"] = {k.removeprefix("article:"): v for k, v in values.items() if k.startswith("article:")}
    return names, manifest


def milvus_is_stale(settings: Settings) -> bool:
    """True when nothing usable is in Milvus or it does not match the corpus.

    Raises:
        BackendError: Milvus cannot be reached (building would fail the same way).
    """
    try:
        conn = Connection(settings)
    except IndexMissingError:
        return True
    try:
        _, manifest = _current(conn, settings)
        check_compatible(manifest, settings, where=f"Milvus at {conn.uri}", command=FIX)
    except (IndexMissingError, IndexCorruptError, IndexMismatchError):
        return True
    finally:
        conn.close()
    return corpus_changed(manifest, load_corpus(settings.corpus_dir))


def build_milvus(
    settings: Settings, embedder: Embedder, *, rebuild: bool = False, progress: Progress | None = None
) -> BuildReport:
    """Bring the collections at ``settings.milvus_uri`` up to date with the corpus.

    As :func:`chatbot.backends.local.build_index`: only new or changed articles are embedded, deleted
    ones leave, nothing is written when nothing changed. The new generation becomes the one
    in use only once complete; the older ones (and any a killed run left) are dropped after.

    Raises:
        CorpusError: the corpus folder is missing or holds no readable article.
        IndexLockedError: another indexer is writing (the lock is in ``settings.index_dir``).
        BackendError: Milvus cannot be reached or refuses a write.
    """
    started = time.perf_counter()
    corpus = load_corpus(settings.corpus_dir)
    settings.index_dir.mkdir(parents=True, exist_ok=True)
    with writer_lock(settings.index_dir):
        conn = Connection(settings, create=True)
        previous: MilvusIndex | None = None
        try:
            if not rebuild:
                previous = _reusable(conn, settings)
            plan = plan_build(settings, corpus, previous)
            if plan.up_to_date and previous is not None:
                drop_others(conn, settings, previous.names.generation)
                return plan.report(started, written=False)
            names = Names(settings.milvus_collection, f"g{time.time_ns()}")
            try:
                with _sentence_file(settings.index_dir) as path:

                    def allocate(job: int, rows: int, dim: int) -> np.ndarray:
                        if job == 0:
                            return np.zeros((rows, dim), dtype=np.float32)
                        return np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, dim))

                    matrix, sentences = embed_plan(settings, plan, embedder, previous, allocate, progress)
                    manifest = plan.manifest(settings, embedder.name, matrix.shape[1])
                    manifest |= {
                        "backend": "milvus",
                        "chunks": len(plan.chunks),
                        "milvus_analyzer_version": ANALYZER_VERSION,
                        "milvus_analyzer": ANALYZER,
                        "vector_index": dense_index(conn),
                    }
                    write_generation(conn, settings, names, plan.chunks, matrix, sentences, plan.offsets, manifest)
            except BaseException:
                with contextlib.suppress(Exception):  # best effort: the next build drops them anyway
                    drop(conn, names)
                raise
            switch(conn, settings, names)
            return plan.report(started, written=True)
        finally:
            conn.close()


@contextlib.contextmanager
def _sentence_file(folder: Path) -> Iterator[Path]:
    """A temporary file for the sentence matrix (it outweighs everything else in memory)."""
    with tempfile.TemporaryDirectory(prefix=".milvus-build-", dir=folder) as tmp:
        yield Path(tmp) / "sentences.npy"


def _reusable(conn: Connection, settings: Settings) -> MilvusIndex | None:
    """The generation in use if it can seed an incremental build, else ``None``."""
    try:
        return _load(conn, settings)
    except (IndexMissingError, IndexCorruptError, IndexMismatchError) as exc:
        if not isinstance(exc, IndexMissingError):
            logger.warning("Full rebuild: %s", exc)
        return None
