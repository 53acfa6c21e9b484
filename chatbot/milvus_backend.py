"""The ``milvus`` search backend: the same hybrid search, its data in Milvus.

One build is a *generation* of three collections, ``<prefix>_g<stamp>_chunks`` (text with
Milvus's French BM25, dense vector, the chunk as JSON), ``..._sentences`` (one vector per
sentence, primary key the sentence row, with its chunk id and position) and ``..._manifest``
(the build's settings and one row per article with its content hash). The collection
``<prefix>_current`` names the generation in use: a build writes and flushes a whole new
generation, then inserts one row there, then drops the older generations. A run killed at any
point leaves the previous generation answering (Milvus Lite 2.5.1 has no aliases:
``create_alias`` is unimplemented there, so a pointer row does what ``alter_alias`` would).

Milvus does BM25 (from the raw text, with the analyzer below) and the dense search; the
z-score fusion, follow-ups and English weighting stay in :class:`chatbot.retrieval.Retriever`.
Works with Milvus Lite (a ``.db`` file, FLAT vectors) and a Milvus 2.5 server or cluster
(``http://host:19530``, HNSW vectors). docs/milvus.md has the measurements.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from chatbot import analysis
from chatbot.backends import Ranking
from chatbot.chunking import Chunk
from chatbot.corpus import load_corpus
from chatbot.errors import BackendError, IndexCorruptError, IndexMismatchError, IndexMissingError
from chatbot.index import (
    FORMAT_VERSION,
    HNSW_EF_CONSTRUCTION,
    HNSW_M,
    BuildReport,
    Progress,
    check_compatible,
    corpus_changed,
    embed_plan,
    plan_build,
    writer_lock,
)
from chatbot.settings import Settings

if TYPE_CHECKING:
    from pymilvus import MilvusClient

    from chatbot.embedding import Embedder

logger = logging.getLogger(__name__)

# Bump when ANALYZER changes: stored collections then need a rebuild.
ANALYZER_VERSION = 1
# Milvus's own analysis of the text, as close to chatbot.analysis as Milvus 2.5 allows: lower
# case, accents folded, our stop list (folded), Snowball French. Measured on Milvus Lite 2.5.1:
# «_french_» is silently ignored (so the list is given), the «elision» filter is refused and
# then hangs the local server (never send it; the standard tokenizer splits on ’ and ' and the
# stop list drops l, d, qu...). tests/test_milvus.py proves the folding and stemming happen.
ANALYZER: dict[str, Any] = {
    "tokenizer": "standard",
    "filter": [
        "lowercase",
        "asciifolding",
        {"type": "stop", "stop_words": sorted(analysis.STOP_WORDS)},
        {"type": "stemmer", "language": "french"},
    ],
}
BM25_K1 = 1.5  # bm25s' defaults, as the local index
BM25_B = 0.75
_MAX_TEXT = 65_535  # Milvus's VARCHAR limit
_BATCH = 500
_GENERATION = re.compile(r"^g\d+$")
_FIX = "chatbot index --backend milvus"
_LITE_RELEASE_WAIT = 5.0  # seconds a killed owner's Lite server may take to let the file go
T = TypeVar("T")


def default_uri(settings: Settings) -> str:
    """``settings.milvus_uri``, or a Milvus Lite file in the index folder."""
    return settings.milvus_uri or str(settings.index_dir / "milvus.db")


def is_lite(uri: str) -> bool:
    """A Milvus Lite file (pymilvus's own rule: the URI ends in .db) rather than a server."""
    return uri.endswith(".db")


class _Connection:
    """One client. Milvus Lite runs one server per file and lets one process at a time open
    it: the server is stopped when the last connection of this process closes, so another
    process (``chatbot index`` while the chat is down, a test's child) can open the file."""

    _open: dict[str, int] = {}  # noqa: RUF012  (per process, guarded by _guard)
    _guard = threading.Lock()

    def __init__(self, settings: Settings, *, create: bool = False) -> None:
        self.uri = default_uri(settings)
        self.lite = is_lite(self.uri)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # milvus_lite imports pkg_resources, deprecated
                from pymilvus import MilvusClient
                from pymilvus.exceptions import MilvusException

                if self.lite:
                    import milvus_lite  # noqa: F401
        except ImportError as exc:
            raise BackendError(
                f"The milvus backend needs its client ({exc.name} is missing): pip install -e '.[milvus]'."
            ) from exc
        logging.getLogger("pymilvus").setLevel(logging.CRITICAL)  # its errors become ours, below
        self.errors: type[Exception] = MilvusException
        if self.lite:
            path = Path(self.uri).resolve()
            if create:
                path.parent.mkdir(parents=True, exist_ok=True)
            elif not path.is_file():
                raise IndexMissingError(
                    f"No Milvus index in {self.uri}. Build it with `{_FIX} --milvus-uri {self.uri}`."
                )
            self.key = str(path)
        # A Lite file whose last owner was just killed stays held by that owner's server process until it
        # notices its lock is gone (about a second): retry for a while before calling the file taken.
        deadline = time.monotonic() + (_LITE_RELEASE_WAIT if self.lite else 0.0)
        while True:
            try:
                self.client: MilvusClient = MilvusClient(uri=self.uri, token=settings.milvus_token or "", timeout=10)
                break
            except MilvusException as exc:
                if time.monotonic() >= deadline:
                    raise BackendError(self._unreachable(exc)) from exc
                time.sleep(0.25)
        self.closed = False
        if self.lite:
            with self._guard:
                self._open[self.key] = self._open.get(self.key, 0) + 1

    def _unreachable(self, exc: Exception) -> str:
        if self.lite:
            return (
                f"Cannot open the Milvus Lite file {self.uri} ({_reason(exc)}). Milvus Lite lets one process at a "
                "time open a file: stop the other `chatbot` using it, or point --milvus-uri at a Milvus server."
            )
        return (
            f"Cannot reach Milvus at {self.uri} ({_reason(exc)}). Check --milvus-uri / CHATBOT_MILVUS_URI "
            "(http://host:19530, or a Milvus Lite file ending in .db), --milvus-token / CHATBOT_MILVUS_TOKEN, "
            "and that the server is running."
        )

    def call(self, what: str, run: Callable[[], T]) -> T:
        """``run()``, a Milvus failure turned into a :class:`BackendError` naming ``what``."""
        try:
            return run()
        except self.errors as exc:
            raise BackendError(
                f"Milvus at {self.uri} failed to {what} ({_reason(exc)}). Check that it is running; "
                f"if the collections were damaged, rebuild them with `{_FIX} --rebuild`."
            ) from exc

    def close(self) -> None:
        """Close the client (again: nothing); the last one of a Lite file stops its server."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):  # closing a connection that already broke
            self.client.close()
        if not self.lite:
            return
        with self._guard:
            self._open[self.key] -= 1
            if self._open[self.key] > 0:
                return
            del self._open[self.key]
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(self.key)


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "message", "") or exc)


class _Names:
    """The collections of one generation, and the pointer."""

    def __init__(self, prefix: str, generation: str = "") -> None:
        self.prefix = prefix
        self.generation = generation
        self.current = f"{prefix}_current"
        self.chunks = f"{prefix}_{generation}_chunks"
        self.sentences = f"{prefix}_{generation}_sentences"
        self.manifest = f"{prefix}_{generation}_manifest"

    def all(self) -> tuple[str, str, str]:
        return self.chunks, self.sentences, self.manifest

    def generations(self, collections: Iterable[str]) -> set[str]:
        """The generations that have at least one collection among ``collections``."""
        found = set()
        for name in collections:
            head, _, rest = name.partition(f"{self.prefix}_") if name.startswith(f"{self.prefix}_") else ("", "", "")
            generation, _, kind = rest.partition("_")
            if not head and _GENERATION.match(generation) and kind in ("chunks", "sentences", "manifest"):
                found.add(generation)
        return found


class MilvusIndex:
    """A verified generation in Milvus, ready to search (the :class:`SearchBackend` protocol).

    The chunks (text and offsets, not vectors) are read once into memory, as the local index
    does: the reader, the chat's article view and the follow-up logic use them. Vectors stay
    in Milvus; sentence vectors are fetched for the retrieved passages only.
    """

    def __init__(
        self,
        conn: _Connection,
        settings: Settings,
        names: _Names,
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
        if not self._conn.lite:
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
                f"The Milvus collection {collection} at {self.uri} lacks rows. Rebuild it with `{_FIX} --rebuild`."
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
    conn = _Connection(settings)
    try:
        return _load(conn, settings)
    except BaseException:
        conn.close()
        raise


def _load(conn: _Connection, settings: Settings) -> MilvusIndex:
    names, manifest = _current(conn, settings)
    check_compatible(manifest, settings, where=f"Milvus at {conn.uri}", command=_FIX)
    client = conn.client
    for name in (names.chunks, names.sentences):
        conn.call("load the collections", lambda name=name: client.load_collection(name))  # type: ignore[misc]
    rows = _scan(conn, names.chunks, ["row", "chunk", "sentences"])
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
    return f"Rebuild it with `{_FIX} --rebuild`."


def _current(conn: _Connection, settings: Settings) -> tuple[_Names, dict[str, Any]]:
    """The generation the pointer names and its manifest."""
    client = conn.client
    pointer = _Names(settings.milvus_collection).current
    if not conn.call("list the collections", lambda: client.has_collection(pointer)):
        raise IndexMissingError(f"No index in Milvus at {conn.uri}. Build it with `{_FIX} --milvus-uri {conn.uri}`.")
    rows = conn.call(
        "read the current generation",
        lambda: client.query(pointer, filter="seq >= 0", output_fields=["seq", "generation"]),
    )
    if not rows:
        raise IndexMissingError(f"No index in Milvus at {conn.uri}. Build it with `{_FIX} --milvus-uri {conn.uri}`.")
    generation = max(rows, key=lambda r: int(r["seq"]))["generation"]
    names = _Names(settings.milvus_collection, generation)
    existing = set(conn.call("list the collections", client.list_collections))
    missing = [name for name in names.all() if name not in existing]
    if missing:
        raise IndexCorruptError(
            f"Milvus at {conn.uri}: the collection {missing[0]} of the index in use is missing. {_rebuild()}"
        )
    facts = _scan(conn, names.manifest, ["key", "value"])
    values = {r["key"]: json.loads(r["value"]) for r in facts}
    manifest = values.get("build")
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        raise IndexCorruptError(f"The index in Milvus at {conn.uri} is of another format. {_rebuild()}")
    if manifest.get("milvus_analyzer_version") != ANALYZER_VERSION:
        raise IndexMismatchError(f"The Milvus keyword index uses an older French analyzer. {_rebuild()}")
    manifest["articles"] = {k.removeprefix("article:"): v for k, v in values.items() if k.startswith("article:")}
    return names, manifest


def _scan(conn: _Connection, collection: str, fields: list[str]) -> list[dict[str, Any]]:
    """Every row of ``collection`` (an iterator: a query returns at most 16,384 rows)."""
    client = conn.client

    def run() -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        iterator = client.query_iterator(collection, batch_size=4096, filter="", output_fields=fields)
        try:
            while batch := iterator.next():
                out.extend(batch)
        finally:
            iterator.close()
        return out

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return conn.call(f"read {collection}", run)


def milvus_is_stale(settings: Settings) -> bool:
    """True when nothing usable is in Milvus or it does not match the corpus.

    Raises:
        BackendError: Milvus cannot be reached (building would fail the same way).
    """
    try:
        conn = _Connection(settings)
    except IndexMissingError:
        return True
    try:
        _, manifest = _current(conn, settings)
        check_compatible(manifest, settings, where=f"Milvus at {conn.uri}", command=_FIX)
    except (IndexMissingError, IndexCorruptError, IndexMismatchError):
        return True
    finally:
        conn.close()
    return corpus_changed(manifest, load_corpus(settings.corpus_dir))


def build_milvus(
    settings: Settings, embedder: Embedder, *, rebuild: bool = False, progress: Progress | None = None
) -> BuildReport:
    """Bring the collections at ``settings.milvus_uri`` up to date with the corpus.

    As :func:`chatbot.index.build_index`: only new or changed articles are embedded, deleted
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
        conn = _Connection(settings, create=True)
        previous: MilvusIndex | None = None
        try:
            if not rebuild:
                previous = _reusable(conn, settings)
            plan = plan_build(settings, corpus, previous)
            if plan.up_to_date and previous is not None:
                _drop_others(conn, settings, previous.names.generation)
                return plan.report(started, written=False)
            names = _Names(settings.milvus_collection, f"g{time.time_ns()}")
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
                        "vector_index": _dense_index(conn),
                    }
                    _write(conn, settings, names, plan.chunks, matrix, sentences, plan.offsets, manifest)
            except BaseException:
                with contextlib.suppress(Exception):  # best effort: the next build drops them anyway
                    _drop(conn, names)
                raise
            _switch(conn, settings, names)
            return plan.report(started, written=True)
        finally:
            conn.close()


@contextlib.contextmanager
def _sentence_file(folder: Path) -> Iterator[Path]:
    """A temporary file for the sentence matrix (it outweighs everything else in memory)."""
    with tempfile.TemporaryDirectory(prefix=".milvus-build-", dir=folder) as tmp:
        yield Path(tmp) / "sentences.npy"


def _reusable(conn: _Connection, settings: Settings) -> MilvusIndex | None:
    """The generation in use if it can seed an incremental build, else ``None``."""
    try:
        return _load(conn, settings)
    except (IndexMissingError, IndexCorruptError, IndexMismatchError) as exc:
        if not isinstance(exc, IndexMissingError):
            logger.warning("Full rebuild: %s", exc)
        return None


def _dense_index(conn: _Connection) -> dict[str, Any]:
    """FLAT on Milvus Lite (its only exact choice; it has no HNSW), HNSW on a server."""
    if conn.lite:
        return {"type": "flat", "metric": "inner_product"}
    return {"type": "hnsw", "metric": "inner_product", "M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION}


def _write(
    conn: _Connection,
    settings: Settings,
    names: _Names,
    chunks: list[Chunk],
    matrix: np.ndarray,
    sentences: np.ndarray,
    offsets: np.ndarray,
    manifest: dict[str, Any],
) -> None:
    """Create and fill the three collections of ``names``, manifest last, all flushed."""
    from pymilvus import DataType, Function, FunctionType

    client = conn.client
    dim = int(matrix.shape[1])
    dense = _dense_index(conn)

    schema = client.create_schema(auto_id=False, description="chatbot chunks")
    schema.add_field("row", DataType.INT64, is_primary=True)
    schema.add_field("text", DataType.VARCHAR, max_length=_MAX_TEXT, enable_analyzer=True, analyzer_params=ANALYZER)
    schema.add_field("chunk", DataType.VARCHAR, max_length=_MAX_TEXT)
    schema.add_field("sentences", DataType.INT64)
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_field("dense", DataType.FLOAT_VECTOR, dim=dim)
    schema.add_function(
        Function(
            name="bm25", function_type=FunctionType.BM25, input_field_names=["text"], output_field_names=["sparse"]
        )
    )
    index = client.prepare_index_params()
    index.add_index(
        "sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25", params={"bm25_k1": BM25_K1, "bm25_b": BM25_B}
    )
    if dense["type"] == "hnsw":
        index.add_index(
            "dense", index_type="HNSW", metric_type="IP", params={"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION}
        )
    else:
        index.add_index("dense", index_type="FLAT", metric_type="IP")
    conn.call(
        "create a collection",
        lambda: client.create_collection(names.chunks, schema=schema, index_params=index, consistency_level="Strong"),
    )
    counts = np.diff(offsets)
    rows = (
        {
            "row": row,
            "text": _fit(chunk.indexed_text(settings.title_in_keywords)),
            "chunk": json.dumps(asdict(chunk), ensure_ascii=False),
            "sentences": int(counts[row]),
            "dense": matrix[row].tolist(),
        }
        for row, chunk in enumerate(chunks)
    )
    _insert(conn, names.chunks, rows)

    schema = client.create_schema(auto_id=False, description="chatbot sentence vectors")
    schema.add_field("id", DataType.INT64, is_primary=True)  # the sentence row, as sentences.npy
    schema.add_field("chunk_id", DataType.VARCHAR, max_length=1024)
    schema.add_field("position", DataType.INT64)
    schema.add_field("chunk_row", DataType.INT64)  # what searches filter on
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    index = client.prepare_index_params()
    index.add_index("vector", index_type="FLAT", metric_type="IP")  # fetched by key, never searched
    conn.call(
        "create a collection",
        lambda: client.create_collection(
            names.sentences, schema=schema, index_params=index, consistency_level="Strong"
        ),
    )
    sentence_rows = (
        {
            "id": int(offsets[row]) + j,
            "chunk_id": chunk.id,
            "position": j,
            "chunk_row": row,
            "vector": sentences[int(offsets[row]) + j].tolist(),
        }
        for row, chunk in enumerate(chunks)
        for j in range(int(counts[row]))
    )
    _insert(conn, names.sentences, sentence_rows)

    _create_keyed(conn, names.manifest, "chatbot build manifest")
    articles = manifest.pop("articles")
    facts = [{"key": f"article:{aid}", "value": json.dumps(f, ensure_ascii=False)} for aid, f in articles.items()]
    _insert(conn, names.manifest, iter([*facts, {"key": "build", "value": json.dumps(manifest, ensure_ascii=False)}]))
    for name in names.all():
        conn.call("flush a collection", lambda name=name: client.flush(name))  # type: ignore[misc]


def _fit(text: str) -> str:
    """``text`` cut to what a VARCHAR holds (bytes); chunks are far shorter in practice."""
    data = text.encode("utf-8")
    return text if len(data) <= _MAX_TEXT else data[:_MAX_TEXT].decode("utf-8", errors="ignore")


def _create_keyed(conn: _Connection, name: str, description: str) -> None:
    """A small collection of (key, value) rows (Milvus wants a vector field in each: a dummy)."""
    from pymilvus import DataType

    client = conn.client
    schema = client.create_schema(auto_id=False, description=description)
    key = "seq" if name.endswith("_current") else "key"
    if key == "seq":
        schema.add_field("seq", DataType.INT64, is_primary=True)
        schema.add_field("generation", DataType.VARCHAR, max_length=64)
    else:
        schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=2048)
        schema.add_field("value", DataType.VARCHAR, max_length=_MAX_TEXT)
    schema.add_field("unused", DataType.FLOAT_VECTOR, dim=2)
    index = client.prepare_index_params()
    index.add_index("unused", index_type="FLAT", metric_type="L2")
    conn.call(
        "create a collection",
        lambda: client.create_collection(name, schema=schema, index_params=index, consistency_level="Strong"),
    )


def _insert(conn: _Connection, collection: str, rows: Iterator[dict[str, Any]]) -> None:
    client = conn.client
    batch: list[dict[str, Any]] = []
    for row in rows:
        if collection.endswith("_manifest"):
            row["unused"] = [0.0, 0.0]
        batch.append(row)
        if len(batch) == _BATCH:
            conn.call(f"write to {collection}", lambda b=batch: client.insert(collection, b))  # type: ignore[misc]
            batch = []
    if batch:
        conn.call(f"write to {collection}", lambda: client.insert(collection, batch))


def _switch(conn: _Connection, settings: Settings, names: _Names) -> None:
    """Make the complete generation ``names`` the one in use (one row inserted, flushed),
    then drop the others."""
    client = conn.client
    if not conn.call("list the collections", lambda: client.has_collection(names.current)):
        _create_keyed(conn, names.current, "chatbot generation in use")
    seq = time.time_ns()
    row = {"seq": seq, "generation": names.generation, "unused": [0.0, 0.0]}
    conn.call("switch to the new index", lambda: client.insert(names.current, [row]))
    conn.call("switch to the new index", lambda: client.flush(names.current))
    conn.call("clean up", lambda: client.delete(names.current, filter=f"seq < {seq}"))
    _drop_others(conn, settings, names.generation)


def _drop_others(conn: _Connection, settings: Settings, keep: str) -> None:
    """Drop every generation but ``keep``: replaced ones and those a killed build left."""
    client = conn.client
    collections = conn.call("list the collections", client.list_collections)
    for generation in _Names(settings.milvus_collection).generations(collections) - {keep}:
        _drop(conn, _Names(settings.milvus_collection, generation))


def _drop(conn: _Connection, names: _Names) -> None:
    client = conn.client
    existing = set(conn.call("list the collections", client.list_collections))
    for name in names.all():
        if name in existing:
            conn.call("drop an old collection", lambda name=name: client.drop_collection(name))  # type: ignore[misc]
