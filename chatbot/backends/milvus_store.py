"""The collections of the ``milvus`` backend: the connection (one Milvus Lite server per file
and process), the names of a generation's collections and of the pointer, their schemas, and
the writes of a build (a generation written and flushed, the pointer switched, the others
dropped). What is searched and how is :mod:`chatbot.backends.milvus`'s.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from chatbot import analysis
from chatbot.backends.build import HNSW_EF_CONSTRUCTION, HNSW_M
from chatbot.chunking import Chunk
from chatbot.errors import BackendError, IndexMissingError
from chatbot.settings import Settings

if TYPE_CHECKING:
    from pymilvus import MilvusClient

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
FIX = "chatbot index --backend milvus"
_LITE_RELEASE_WAIT = 5.0  # seconds a killed owner's Lite server may take to let the file go
T = TypeVar("T")


def default_uri(settings: Settings) -> str:
    """``settings.milvus_uri``, or a Milvus Lite file in the index folder."""
    return settings.milvus_uri or str(settings.index_dir / "milvus.db")


def is_lite(uri: str) -> bool:
    """A Milvus Lite file (pymilvus's own rule: the URI ends in .db) rather than a server."""
    return uri.endswith(".db")


class Connection:
    """One client. Milvus Lite runs one server per file and lets one process at a time open
    it: the server is stopped when the last connection of this process closes, so another
    process (``chatbot index`` while the chat is down, a test's child) can open the file."""

    _open: dict[str, int] = {}  # noqa: RUF012  (per process, guarded by _guard)
    _guard = threading.Lock()

    def __init__(self, settings: Settings, *, create: bool = False) -> None:
        self.uri = default_uri(settings)
        self.lite = is_lite(self.uri)
        # Milvus Lite's engine, in this process's file or served on its socket (``unix:``, what
        # milvus_lite serves a file on; another process may connect there): FLAT vectors only.
        self.lite_engine = self.lite or self.uri.startswith("unix:")
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
                    f"No Milvus index in {self.uri}. Build it with `{FIX} --milvus-uri {self.uri}`."
                )
            self.key = str(path)
        # A Lite file whose last owner was just killed stays held by that owner's server process until it
        # notices its lock is gone (about a second): retry for a while before calling the file taken.
        deadline = time.monotonic() + (_LITE_RELEASE_WAIT if self.lite else 0.0)
        with self._guard if self.lite else contextlib.nullcontext():
            first = self.lite and not self._open.get(self.key)
            while True:
                try:
                    if first and _held_elsewhere(Path(self.key)):
                        raise MilvusException(message="the file has been opened by another program")
                    # An alias of its own: pymilvus shares one connection among the clients of a
                    # URI, and closing any of them (a build's, a replaced index's) closed it for all.
                    self.client: MilvusClient = MilvusClient(
                        uri=self.uri, token=settings.milvus_token or "", timeout=10, alias=f"chatbot-{uuid.uuid4().hex}"
                    )
                    break
                except MilvusException as exc:
                    if time.monotonic() >= deadline:
                        raise BackendError(self._unreachable(exc)) from exc
                    time.sleep(0.25)
            if self.lite:
                self._open[self.key] = self._open.get(self.key, 0) + 1
        self.closed = False

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
                f"if the collections were damaged, rebuild them with `{FIX} --rebuild`."
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


def _held_elsewhere(path: Path) -> bool:
    """Another live process holds the Milvus Lite file ``path`` (the lock its server's owner
    keeps on ``.<name>.lock`` beside it: milvus-lite 2.5.1).

    Asked before pymilvus tries to open the file, never after: milvus-lite's failed attempt
    deletes the owner's lock file on its way out, and the next attempt, of any process, then
    opens the file a second time (two servers writing one file). Only asked by a process with
    no connection to the file: a POSIX lock belongs to the process, and closing this probe
    would release the lock of the process's own server.
    """
    try:
        fd = os.open(path.parent / f".{path.name}.lock", os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # EAGAIN or EACCES: locked by another process
        return True
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "message", "") or exc)


class Names:
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


def read_pointer(conn: Connection, prefix: str) -> str:
    """The generation the pointer collection ``<prefix>_current`` names (its newest row).

    Raises:
        IndexMissingError: nothing was built there.
        BackendError: Milvus cannot be reached.
    """
    client = conn.client
    pointer = Names(prefix).current
    missing = f"No index in Milvus at {conn.uri}. Build it with `{FIX} --milvus-uri {conn.uri}`."
    if not conn.call("list the collections", lambda: client.has_collection(pointer)):
        raise IndexMissingError(missing)
    rows = conn.call(
        "read the current generation",
        lambda: client.query(pointer, filter="seq >= 0", output_fields=["seq", "generation"]),
    )
    if not rows:
        raise IndexMissingError(missing)
    return str(max(rows, key=lambda r: int(r["seq"]))["generation"])


def scan(conn: Connection, collection: str, fields: list[str]) -> list[dict[str, Any]]:
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


def dense_index(conn: Connection) -> dict[str, Any]:
    """FLAT on Milvus Lite (its only exact choice; it has no HNSW), HNSW on a server."""
    if conn.lite_engine:
        return {"type": "flat", "metric": "inner_product"}
    return {"type": "hnsw", "metric": "inner_product", "M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION}


def write_generation(
    conn: Connection,
    settings: Settings,
    names: Names,
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
    dense = dense_index(conn)

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


def _create_keyed(conn: Connection, name: str, description: str) -> None:
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


def _insert(conn: Connection, collection: str, rows: Iterator[dict[str, Any]]) -> None:
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


def switch(conn: Connection, settings: Settings, names: Names) -> None:
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
    drop_others(conn, settings, names.generation)


def drop_others(conn: Connection, settings: Settings, keep: str) -> None:
    """Drop every generation but ``keep``: replaced ones and those a killed build left."""
    client = conn.client
    collections = conn.call("list the collections", client.list_collections)
    for generation in Names(settings.milvus_collection).generations(collections) - {keep}:
        drop(conn, Names(settings.milvus_collection, generation))


def drop(conn: Connection, names: Names) -> None:
    client = conn.client
    existing = set(conn.call("list the collections", client.list_collections))
    for name in names.all():
        if name in existing:
            conn.call("drop an old collection", lambda name=name: client.drop_collection(name))  # type: ignore[misc]
