"""The ``local`` search backend: FAISS vectors, a BM25 keyword index, chunk metadata and a
manifest, on disk.

Layout of ``index/``::

    CURRENT               name of the generation in use (replaced atomically)
    gen-<stamp>/          one complete build
        manifest.json     format, embedder, settings, article hashes, file sizes and checksums
        chunks.jsonl      one chunk a line; line i is FAISS row i and BM25 document i
        vectors.faiss     inner product over L2-normalised vectors
        sentences.npy     one vector per sentence of each chunk, chunk after chunk (float32,
                          plain .npy): answers score sentences without calling the model
                          (no rows when ``Settings.sentence_vectors`` is off)
        sentence_offsets.npy  row of each chunk's first sentence vector, plus the total
                          (int64), so that loading does not split every chunk again
        bm25/             bm25s files (.npy without pickle, JSON)
    .lock                 held while an indexer writes

A build writes a new generation and then swaps ``CURRENT``; a crash at any point leaves the
previous generation whole and in use.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np

from chatbot import analysis
from chatbot.backends.base import Ranking, best_sentence_scores, top_rows
from chatbot.backends.build import (
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
from chatbot.chunking import Chunk
from chatbot.corpus import Corpus, load_corpus
from chatbot.errors import IndexCorruptError, IndexMismatchError, IndexMissingError
from chatbot.jsonl import replace_file
from chatbot.settings import Settings

if TYPE_CHECKING:
    import bm25s
    import faiss

    from chatbot.embedding import Embedder

logger = logging.getLogger(__name__)

READABLE_VERSIONS = (2, 3)
"""A version-2 index reads as one whose articles have no URL; the next build writes version 3,
re-embedding nothing that did not change."""
CURRENT = "CURRENT"
MANIFEST = "manifest.json"
CHUNKS = "chunks.jsonl"
VECTORS = "vectors.faiss"
SENTENCES = "sentences.npy"
SENTENCE_OFFSETS = "sentence_offsets.npy"
BM25_DIR = "bm25"
T = TypeVar("T")


@dataclass(frozen=True, eq=False)
class LoadedIndex:
    """A verified index, ready to search."""

    path: Path
    manifest: dict[str, Any]
    chunks: tuple[Chunk, ...]
    vectors: faiss.Index
    bm25: bm25s.BM25
    sentence_vectors: np.ndarray
    # Row of the first sentence vector of each chunk, and one past the last chunk's.
    sentence_offsets: np.ndarray

    @property
    def generation(self) -> str:
        """The ``gen-…`` folder this index was read from."""
        return self.path.name

    def latest(self) -> str:
        """The generation CURRENT names now (once a build swapped it, not this one any more;
        this one answers on: its files are in memory or mapped, deleted or not).

        Raises:
            IndexMissingError: CURRENT is gone.
        """
        name = _pointer(self.path.parent)
        if name is None:
            raise IndexMissingError(f"No index in {self.path.parent} any more. {_FIX_REBUILD}")
        return name

    def sentence_rows(self, row: int) -> np.ndarray:
        """The sentence vectors of chunk ``row``, in the order of :func:`sentence_spans` (none
        when the index was built without sentence vectors)."""
        return self.sentence_vectors[self.sentence_offsets[row] : self.sentence_offsets[row + 1]]

    def sentence_rows_of(self, rows: Sequence[int]) -> list[np.ndarray]:
        return [self.sentence_rows(int(row)) for row in rows]

    def best_sentence_scores(self, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
        """For each chunk of ``rows``, the best inner product between ``query`` (shape dim) and
        one of its sentence vectors; -1 (no match) for a chunk without any."""
        return best_sentence_scores([self.sentence_rows(int(row)) for row in rows], query)

    def keyword(self, text: str, depth: int) -> Ranking:
        """BM25 over the French analysis; chunks that share no term with ``text`` are left out."""
        vocab = self.bm25.vocab_dict
        tokens = [t for t in analysis.analyze(text) if t in vocab]
        if not tokens:
            return []
        scores = self.bm25.get_scores(tokens)
        return [(int(i), float(scores[i])) for i in top_rows(scores, depth) if scores[i] > 0]

    def nearest(self, query: np.ndarray, depth: int) -> Ranking:
        """The ``depth`` chunks nearest to ``query`` (shape 1 x dim), by inner product."""
        scores, rows = self.vectors.search(query, min(depth, len(self.chunks)))
        return [(int(r), float(s)) for r, s in zip(rows[0], scores[0], strict=True) if r >= 0]

    def chunk_vectors(self, rows: np.ndarray) -> np.ndarray:
        """The stored vectors of ``rows``, in that order."""
        return np.asarray(self.vectors.reconstruct_batch(np.asarray(rows, dtype=np.int64)))

    def chunk_scores(self, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
        """The inner product of ``query`` with each of ``rows``' vectors."""
        return self.chunk_vectors(rows) @ query

    def close(self) -> None:
        """Nothing to release: the files are memory-mapped or in memory."""


def build_index(
    settings: Settings,
    embedder: Embedder,
    *,
    rebuild: bool = False,
    progress: Progress | None = None,
) -> BuildReport:
    """Bring the index in ``settings.index_dir`` up to date with ``settings.corpus_dir``.

    Only articles whose content changed are chunked and embedded again; deleted articles are
    dropped; when nothing changed nothing is written and the model is not loaded. With
    ``rebuild=True`` (or when the stored index is unusable or built with other settings)
    every article is embedded again.

    Raises:
        CorpusError: the corpus folder is missing or holds no readable article.
        IndexLockedError: another indexer is writing to the same folder.
    """
    started = time.perf_counter()
    corpus = load_corpus(settings.corpus_dir)
    settings.index_dir.mkdir(parents=True, exist_ok=True)
    with writer_lock(settings.index_dir):
        previous = None if rebuild else _reusable(settings)
        report = _build(settings, embedder, corpus, previous, progress, started)
    return report


def _build(
    settings: Settings,
    embedder: Embedder,
    corpus: Corpus,
    previous: LoadedIndex | None,
    progress: Progress | None,
    started: float,
) -> BuildReport:
    plan = plan_build(settings, corpus, previous)
    same_kind = previous is not None and previous.manifest.get("vector_index", {}).get("type") == vector_index_kind(
        settings, len(previous.chunks)
    )
    if plan.up_to_date and same_kind:
        return plan.report(started, written=False)

    name, tmp = _new_generation(settings.index_dir)
    try:

        def allocate(job: int, rows: int, dim: int) -> np.ndarray:
            if job == 0:
                return np.zeros((rows, dim), dtype=np.float32)
            # Sentence vectors go straight to their file: on a large corpus they outweigh
            # everything else in memory (7.5 GB for 100k articles).
            return np.lib.format.open_memmap(tmp / SENTENCES, mode="w+", dtype=np.float32, shape=(rows, dim))

        matrix, sentence_matrix = embed_plan(settings, plan, embedder, previous, allocate, progress)
        manifest = plan.manifest(settings, embedder.name, matrix.shape[1])
        _write_generation(settings, plan.chunks, matrix, cast(np.memmap, sentence_matrix), plan.offsets, manifest, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _swap(settings.index_dir, name, tmp)
    return plan.report(started, written=True)


def _new_generation(root: Path) -> tuple[str, Path]:
    """A fresh generation name and its temporary folder (renamed when complete)."""
    name = f"gen-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{time.perf_counter_ns() % 10**6:06d}"
    tmp = root / f".tmp-{name}"
    tmp.mkdir()
    return name, tmp


def _write_generation(
    settings: Settings,
    chunks: list[Chunk],
    matrix: np.ndarray,
    sentences: np.memmap,
    offsets: np.ndarray,
    manifest: dict[str, Any],
    tmp: Path,
) -> None:
    """Write every file of a generation into ``tmp``, manifest last, all synced to disk."""
    import bm25s
    import faiss

    logging.getLogger("bm25s").setLevel(logging.WARNING)  # it sets itself to DEBUG on import

    with open(tmp / CHUNKS, "w", encoding="utf-8") as fh:
        for chunk in chunks:
            fh.write(json.dumps(asdict(chunk), ensure_ascii=False) + "\n")
    vectors, manifest["vector_index"] = _vector_index(matrix, settings)
    faiss.write_index(vectors, str(tmp / VECTORS))
    del vectors
    sentences.flush()  # written in place through its memory map by the build
    np.save(tmp / SENTENCE_OFFSETS, offsets.astype(np.int64), allow_pickle=False)
    retriever = bm25s.BM25()
    # Token ids rather than token strings: a document costs one pointer a token (the ids are
    # the vocabulary's own int objects), several times less memory on a large corpus.
    vocab: dict[str, int] = {}
    texts = (c.indexed_text(settings.title_in_keywords) for c in chunks)
    keywords = [[vocab.setdefault(token, len(vocab)) for token in analysis.analyze(text)] for text in texts]
    retriever.index((keywords, vocab), show_progress=False)
    retriever.save(str(tmp / BM25_DIR), allow_pickle=False, show_progress=False)
    manifest["files"] = {rel: _file_facts(tmp / rel) for rel in _data_files(tmp)}
    replace_file(tmp / MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=2).encode("utf-8"))
    _fsync_tree(tmp)


def _swap(root: Path, name: str, tmp: Path) -> None:
    """Make the complete generation in ``tmp`` the one in use, then drop the others."""
    os.rename(tmp, root / name)
    replace_file(root / CURRENT, f"{name}\n".encode())
    for old in root.iterdir():
        if old.name != name and (old.name.startswith("gen-") or old.name.startswith(".tmp-gen-")):
            shutil.rmtree(old, ignore_errors=True)


def vector_index_kind(settings: Settings, chunks: int) -> str:
    """«flat» (exact) or «hnsw», as ``settings.vector_index`` asks for ``chunks`` vectors."""
    if settings.vector_index == "auto":
        return "flat" if chunks <= settings.exact_up_to else "hnsw"
    return settings.vector_index


def _vector_index(matrix: np.ndarray, settings: Settings) -> tuple[faiss.Index, dict[str, Any]]:
    """The FAISS index the settings ask for, filled, and its description for the manifest."""
    import faiss

    index: faiss.Index
    facts: dict[str, Any] = {"type": vector_index_kind(settings, len(matrix)), "metric": "inner_product"}
    if facts["type"] == "flat":
        index = faiss.IndexFlatIP(matrix.shape[1])
    else:
        hnsw = faiss.IndexHNSWFlat(matrix.shape[1], HNSW_M, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        facts |= {"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION}
        index = hnsw
    index.add(matrix)
    return index, facts


def load_index(settings: Settings) -> LoadedIndex:
    """Load and verify the index in ``settings.index_dir``.

    Raises:
        IndexMissingError: no index was built there.
        IndexCorruptError: a file is missing, truncated or corrupt, or of another format.
        IndexMismatchError: it was built with another embedder or other chunking settings.
    """
    return _following_swaps(settings.index_dir, lambda path: _load_generation(path, settings))


def _following_swaps(index_dir: Path, read: Callable[[Path], T]) -> T:
    """``read`` of the generation CURRENT names. A build may swap CURRENT and delete that
    generation while it is read: what then looks missing or corrupt is read again from the
    generation CURRENT names now, for as long as it keeps moving (each move is a build that
    finished meanwhile). Only a generation that stayed in use throughout is called corrupt."""
    while True:
        before = _pointer(index_dir)
        try:
            return read(current_generation(index_dir))
        except IndexCorruptError:
            if _pointer(index_dir) in (None, before):
                raise
            logger.info("The index in %s was replaced while being read; reading the new one.", index_dir)


def _pointer(index_dir: Path) -> str | None:
    try:
        return (index_dir / CURRENT).read_text(encoding="utf-8").strip()
    except OSError:
        return None


def _load_generation(path: Path, settings: Settings) -> LoadedIndex:
    import bm25s
    import faiss

    manifest = _read_manifest(path)
    check_compatible(manifest, settings)
    try:
        for rel, facts in manifest.get("files", {}).items():
            actual = path / rel
            if not actual.is_file():
                raise IndexCorruptError(f"Index file {actual} is missing. {_FIX_REBUILD}")
            if actual.stat().st_size != facts["size"] or _sha256(actual) != facts["sha256"]:
                raise IndexCorruptError(f"Index file {actual} is truncated or corrupt. {_FIX_REBUILD}")
    except OSError as exc:  # deleted while it was checked
        raise IndexCorruptError(f"Index in {path} cannot be read ({exc}). {_FIX_REBUILD}") from exc
    try:
        with open(path / CHUNKS, encoding="utf-8") as fh:
            chunks = tuple(Chunk(**json.loads(line)) for line in fh if line.strip())
        vectors = faiss.read_index(str(path / VECTORS))
        # Memory-mapped: an answer reads the few rows of its passages, not the whole matrix.
        sentences = np.load(path / SENTENCES, allow_pickle=False, mmap_mode="r")
        offsets = np.load(path / SENTENCE_OFFSETS, allow_pickle=False)
        keyword = bm25s.BM25.load(str(path / BM25_DIR), allow_pickle=False, show_progress=False)
    except (OSError, ValueError, TypeError, RuntimeError, KeyError) as exc:
        raise IndexCorruptError(f"Index in {path} cannot be read ({exc}). {_FIX_REBUILD}") from exc
    if isinstance(vectors, faiss.IndexHNSW):
        vectors.hnsw.efSearch = settings.hnsw_ef_search
    dim = manifest["embedder"]["dim"]
    if vectors.ntotal != len(chunks) or vectors.d != dim:
        raise IndexCorruptError(f"Index in {path} is inconsistent (vectors vs chunks). {_FIX_REBUILD}")
    if (
        sentences.ndim != 2
        or offsets.shape != (len(chunks) + 1,)
        or sentences.shape != (offsets[-1], dim)
        or (np.diff(offsets) < 0).any()
    ):
        raise IndexCorruptError(f"Index in {path} is inconsistent (sentences vs chunks). {_FIX_REBUILD}")
    return LoadedIndex(
        path=path,
        manifest=manifest,
        chunks=chunks,
        vectors=vectors,
        bm25=keyword,
        sentence_vectors=sentences,
        sentence_offsets=offsets,
    )


def index_is_stale(settings: Settings) -> bool:
    """True when the index is missing, unusable, or does not match the corpus any more.

    Reads the corpus and the manifest only; never loads a model.
    """
    try:
        manifest = _following_swaps(settings.index_dir, _read_manifest)
        check_compatible(manifest, settings)
    except (IndexMissingError, IndexCorruptError, IndexMismatchError):
        return True
    return corpus_changed(manifest, load_corpus(settings.corpus_dir))


def current_generation(index_dir: Path) -> Path:
    pointer = index_dir / CURRENT
    if not pointer.is_file():
        raise IndexMissingError(f"No index in {index_dir}. Build it with `chatbot index --index {index_dir}`.")
    name = pointer.read_text(encoding="utf-8").strip()
    path = index_dir / name
    if not name.startswith("gen-") or not path.is_dir():
        raise IndexCorruptError(f"{pointer} points to a missing build ({name!r}). {_FIX_REBUILD}")
    return path


_FIX_REBUILD = "Rebuild it with `chatbot index --rebuild`."


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise IndexCorruptError(f"The manifest {path / MANIFEST} is missing. {_FIX_REBUILD}") from exc
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(f"The manifest {path / MANIFEST} is corrupt. {_FIX_REBUILD}") from exc
    if not isinstance(manifest, dict) or manifest.get("format_version") not in READABLE_VERSIONS:
        found = manifest.get("format_version") if isinstance(manifest, dict) else None
        raise IndexCorruptError(
            f"The index in {path} has format version {found!r}; this version of chatbot reads "
            f"version {' or '.join(map(str, READABLE_VERSIONS))}. {_FIX_REBUILD}"
        )
    problem = _manifest_problem(manifest)
    if problem:
        raise IndexCorruptError(f"The manifest {path / MANIFEST} is malformed: {problem}. {_FIX_REBUILD}")
    return manifest


def _manifest_problem(manifest: dict[str, Any]) -> str:
    """What is wrong with the shape of a manifest (valid JSON of the right version), or «»:
    every key the code reads later is checked here, so a bad one never becomes a traceback."""
    for key in ("embedder", "settings", "articles", "files"):
        if key not in manifest:
            return f"it lacks {key!r}"
        if not isinstance(manifest[key], dict):
            return f"{key!r} is not an object"
    embedder = manifest["embedder"]
    if not isinstance(embedder.get("name"), str) or not _is_count(embedder.get("dim")):
        return "'embedder' needs a name and a dimension"
    for article_id, facts in manifest["articles"].items():
        if not isinstance(facts, dict) or not isinstance(facts.get("hash"), str):
            return f"article {article_id!r} has no content hash"
    for rel, facts in manifest["files"].items():
        if not isinstance(facts, dict) or not _is_count(facts.get("size")) or not isinstance(facts.get("sha256"), str):
            return f"file {rel!r} has no size and checksum"
    if "vector_index" in manifest and not isinstance(manifest["vector_index"], dict):
        return "'vector_index' is not an object"
    return ""


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _reusable(settings: Settings) -> LoadedIndex | None:
    """The stored index if it can seed an incremental build, else ``None`` (full build)."""
    try:
        return load_index(settings)
    except (IndexMissingError, IndexCorruptError, IndexMismatchError) as exc:
        if not isinstance(exc, IndexMissingError):
            logger.warning("Full rebuild: %s", exc)
        return None


def _data_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name != MANIFEST)


def _file_facts(path: Path) -> dict[str, Any]:
    return {"size": path.stat().st_size, "sha256": _sha256(path)}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
