"""The index on disk: FAISS vectors, a BM25 keyword index, chunk metadata and a manifest.

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

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from filelock import FileLock, Timeout

from chatbot import __version__, analysis
from chatbot.backends import Ranking, best_sentence_scores, top_rows
from chatbot.chunking import SENTENCE_VERSION, Chunk, chunk_article
from chatbot.corpus import Corpus, Notice, Skipped, load_corpus
from chatbot.errors import IndexCorruptError, IndexLockedError, IndexMismatchError, IndexMissingError
from chatbot.settings import Settings

if TYPE_CHECKING:
    import bm25s
    import faiss

    from chatbot.backends import SearchBackend
    from chatbot.embedding import Embedder

logger = logging.getLogger(__name__)

FORMAT_VERSION = 3
"""3: chunks carry their article's URL (``Chunk.article_url``), the manifest each article's."""
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
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class BuildReport:
    """What a call to :func:`build_index` did."""

    articles: int
    chunks: int
    embedded_articles: int
    embedded_chunks: int
    removed: tuple[str, ...]
    seconds: float
    written: bool
    skipped: tuple[Skipped, ...] = ()
    notices: tuple[Notice, ...] = ()
    # Every chunk of the index after the build, in row order: what comes next (entity labels,
    # enrichment) reads them here instead of loading the index again.
    index_chunks: tuple[Chunk, ...] = field(default=(), compare=False, repr=False)

    @property
    def removed_articles(self) -> int:
        """How many articles left the index because their file is gone (``removed`` names them)."""
        return len(self.removed)


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


@dataclass(frozen=True, eq=False)
class BuildPlan:
    """What a build will write, worked out from the corpus and the previous index (any backend):
    every chunk in order, which rows reuse a previous row's vectors and which are embedded."""

    corpus: Corpus
    old_articles: dict[str, Any]
    removed: frozenset[str]
    up_to_date: bool
    chunks: list[Chunk]
    reused: dict[int, int]  # new row -> old row, for chunks of unchanged articles
    to_embed: list[int]
    new_sentences: dict[int, list[str]]
    offsets: np.ndarray  # row of each chunk's first sentence vector, plus the total

    def report(self, started: float, *, written: bool) -> BuildReport:
        return BuildReport(
            articles=len(self.corpus.articles),
            chunks=len(self.chunks),
            embedded_articles=len({self.chunks[i].article_id for i in self.to_embed}),
            embedded_chunks=len(self.to_embed),
            removed=tuple(sorted(self.old_articles[aid].get("path", aid) for aid in self.removed)),
            seconds=time.perf_counter() - started,
            written=written,
            skipped=self.corpus.skipped,
            notices=self.corpus.notices,
            index_chunks=tuple(self.chunks),
        )

    def manifest(self, settings: Settings, embedder_name: str, dim: int) -> dict[str, Any]:
        """The build's facts as every backend stores them (the local one adds its files)."""
        per_article = Counter(c.article_id for c in self.chunks)
        return {
            "format_version": FORMAT_VERSION,
            "package_version": __version__,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "embedder": {"name": embedder_name, "dim": dim},
            "settings": settings.index_settings(),
            "analyzer_version": analysis.VERSION,
            "sentence_version": SENTENCE_VERSION,
            "sentences": int(self.offsets[-1]),
            "articles": {
                a.id: {
                    "title": a.title,
                    "hash": a.content_hash,
                    "path": str(a.path),
                    "chunks": per_article[a.id],
                    "url": a.meta.get("url", ""),
                }
                for a in self.corpus.articles
            },
        }


def plan_build(settings: Settings, corpus: Corpus, previous: SearchBackend | None) -> BuildPlan:
    """The chunks of a build: those of unchanged articles taken from ``previous``, the others
    chunked again (and their sentences split) to be embedded."""
    old_articles: dict[str, Any] = previous.manifest["articles"] if previous else {}
    new_hashes = {a.id: a.content_hash for a in corpus.articles}
    urls = {a.id: a.meta.get("url", "") for a in corpus.articles}
    unchanged = {aid for aid, h in new_hashes.items() if old_articles.get(aid, {}).get("hash") == h}
    removed = frozenset(set(old_articles) - set(new_hashes))
    # A new address alone rewrites the chunks' metadata, never their vectors.
    moved = {aid for aid in unchanged if old_articles[aid].get("url", "") != urls[aid]}
    old_rows: dict[str, list[int]] = {}
    if previous is not None:
        for row, chunk in enumerate(previous.chunks):
            old_rows.setdefault(chunk.article_id, []).append(row)
    chunks: list[Chunk] = []
    reused: dict[int, int] = {}
    to_embed: list[int] = []
    for article in corpus.articles:
        if article.id in unchanged and previous is not None:
            for row in old_rows.get(article.id, []):
                reused[len(chunks)] = row
                chunk = previous.chunks[row]
                chunks.append(replace(chunk, article_url=urls[article.id]) if article.id in moved else chunk)
        else:
            for chunk in chunk_article(article, settings.chunk_size, settings.chunk_overlap):
                to_embed.append(len(chunks))
                chunks.append(chunk)
    # Sentence rows: chunk after chunk, each chunk's sentences in order. New chunks are split
    # once here; reused ones keep their count from the previous index.
    new_sentences = {i: chunks[i].sentences() if settings.sentence_vectors else [] for i in to_embed}
    old_counts = np.diff(previous.sentence_offsets) if previous is not None else np.zeros(0, dtype=np.int64)
    counts = [len(new_sentences[r]) if r in new_sentences else int(old_counts[reused[r]]) for r in range(len(chunks))]
    return BuildPlan(
        corpus=corpus,
        old_articles=old_articles,
        removed=removed,
        up_to_date=previous is not None and unchanged == set(new_hashes) and not removed and not moved,
        chunks=chunks,
        reused=reused,
        to_embed=to_embed,
        new_sentences=new_sentences,
        offsets=np.cumsum([0, *counts]),
    )


def embed_plan(
    settings: Settings,
    plan: BuildPlan,
    embedder: Embedder,
    previous: SearchBackend | None,
    allocate: Callable[[int, int, int], np.ndarray],
    progress: Progress | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The chunk and sentence matrices of ``plan`` (``allocate(job, rows, dim)`` makes them):
    new texts embedded, reused rows copied from ``previous``."""
    chunks, to_embed, offsets = plan.chunks, plan.to_embed, plan.offsets
    chunk_texts = [chunks[i].indexed_text(settings.title_in_embedding) for i in to_embed]
    sentence_texts = [sentence for i in to_embed for sentence in plan.new_sentences[i]]
    sentence_rows = [int(offsets[i]) + j for i in to_embed for j in range(len(plan.new_sentences[i]))]
    matrix, sentence_matrix = _embed_into(
        embedder,
        [(chunk_texts, to_embed), (sentence_texts, sentence_rows)],
        (len(chunks), int(offsets[-1])),
        int(previous.manifest["embedder"]["dim"]) if previous is not None else None,
        allocate,
        settings.batch_size,
        progress,
    )
    if previous is not None and plan.reused:
        new_rows = np.fromiter(plan.reused, dtype=np.int64)
        matrix[new_rows] = previous.chunk_vectors(np.fromiter(plan.reused.values(), dtype=np.int64))
        reused = previous.sentence_rows_of(list(plan.reused.values()))
        for row, vectors in zip(plan.reused, reused, strict=True):
            sentence_matrix[offsets[row] : offsets[row + 1]] = vectors
    return matrix, sentence_matrix


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


def _embed_into(
    embedder: Embedder,
    jobs: Sequence[tuple[Sequence[str], Sequence[int]]],
    shapes: tuple[int, ...],
    dim: int | None,
    allocate: Callable[[int, int, int], np.ndarray],
    batch_size: int,
    progress: Progress | None,
) -> list[np.ndarray]:
    """Embed each job's texts in batches, L2-normalised, straight into the rows given of one
    matrix per job: ``allocate(job, shapes[job], dim)``, called once the dimension is known
    (from ``dim`` or the first batch). No copy of the vectors is ever made."""
    outputs = [] if dim is None else [allocate(job, n, dim) for job, n in enumerate(shapes)]
    total, done = sum(len(texts) for texts, _ in jobs), 0
    for job, (texts, rows) in enumerate(jobs):
        for start in range(0, len(texts), batch_size):
            vectors = np.asarray(embedder.encode_documents(texts[start : start + batch_size]), dtype=np.float32)
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            if not outputs:
                outputs = [allocate(j, n, vectors.shape[1]) for j, n in enumerate(shapes)]
            outputs[job][rows[start : start + batch_size]] = vectors
            done += len(vectors)
            if progress:
                progress(done, total)
    if not outputs:
        raise ValueError("nothing to embed and no previous index to take vectors from")
    return outputs


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
    _write_text(tmp / MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=2))
    _fsync_tree(tmp)


def _swap(root: Path, name: str, tmp: Path) -> None:
    """Make the complete generation in ``tmp`` the one in use, then drop the others."""
    os.rename(tmp, root / name)
    _write_text(root / CURRENT, name + "\n")
    for old in root.iterdir():
        if old.name != name and (old.name.startswith("gen-") or old.name.startswith(".tmp-gen-")):
            shutil.rmtree(old, ignore_errors=True)


HNSW_M = 32
HNSW_EF_CONSTRUCTION = 64


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
    import bm25s
    import faiss

    path = current_generation(settings.index_dir)
    manifest = _read_manifest(path)
    check_compatible(manifest, settings)
    for rel, facts in manifest.get("files", {}).items():
        actual = path / rel
        if not actual.is_file():
            raise IndexCorruptError(f"Index file {actual} is missing. {_FIX_REBUILD}")
        if actual.stat().st_size != facts["size"] or _sha256(actual) != facts["sha256"]:
            raise IndexCorruptError(f"Index file {actual} is truncated or corrupt. {_FIX_REBUILD}")
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


def article_text_from_chunks(chunks: Sequence[Chunk]) -> str:
    """An article's text as the index holds it, rebuilt from its chunks: every chunk's text at
    its offsets, so that offsets into the article fall on the same words. The spaces between
    two chunks, which the chunks do not keep, come back as a line break (two or more) or a
    space (one)."""
    out: list[str] = []
    end = 0
    for chunk in sorted(chunks, key=lambda c: c.start):
        if chunk.start > end:
            gap = chunk.start - end
            out.append("\n" * gap if gap > 1 else " ")
            end = chunk.start
        if chunk.end > end:
            out.append(chunk.text[end - chunk.start :])
            end = chunk.end
    return "".join(out)


def index_is_stale(settings: Settings) -> bool:
    """True when the index is missing, unusable, or does not match the corpus any more.

    Reads the corpus and the manifest only; never loads a model.
    """
    try:
        manifest = _read_manifest(current_generation(settings.index_dir))
        check_compatible(manifest, settings)
    except (IndexMissingError, IndexCorruptError, IndexMismatchError):
        return True
    return corpus_changed(manifest, load_corpus(settings.corpus_dir))


def corpus_changed(manifest: dict[str, Any], corpus: Corpus) -> bool:
    """The corpus no longer matches the build ``manifest`` describes: an article added, removed,
    edited, or given another address (any backend's manifest)."""
    stored = {aid: (facts["hash"], facts.get("url", "")) for aid, facts in manifest["articles"].items()}
    return stored != {a.id: (a.content_hash, a.meta.get("url", "")) for a in corpus.articles}


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


def check_compatible(
    manifest: dict[str, Any], settings: Settings, where: str | None = None, command: str = "chatbot index"
) -> None:
    """Refuse an index built with other settings, another analyzer or sentence splitting
    (``where`` names the index, ``command`` the one that rebuilds it).

    Raises:
        IndexMismatchError: naming what differs and the fix.
    """
    stored = manifest["settings"]
    wanted = settings.index_settings()
    diffs = [
        f"{key}={stored.get(key)!r} (configured: {wanted[key]!r})" for key in wanted if stored.get(key) != wanted[key]
    ]
    if diffs:
        raise IndexMismatchError(
            f"The index in {where or settings.index_dir} was built with other settings: {', '.join(diffs)}. "
            f"Run `{command} --rebuild` to rebuild it with the configured settings, "
            "or configure the settings it was built with."
        )
    if manifest.get("analyzer_version") != analysis.VERSION:
        raise IndexMismatchError(
            f"The keyword index uses an older French analyzer. Rebuild it with `{command} --rebuild`."
        )
    if manifest.get("sentence_version") != SENTENCE_VERSION:
        raise IndexMismatchError(
            f"The index splits passages into sentences another way. Rebuild it with `{command} --rebuild`."
        )


def _reusable(settings: Settings) -> LoadedIndex | None:
    """The stored index if it can seed an incremental build, else ``None`` (full build)."""
    try:
        return load_index(settings)
    except (IndexMissingError, IndexCorruptError, IndexMismatchError) as exc:
        if not isinstance(exc, IndexMissingError):
            logger.warning("Full rebuild: %s", exc)
        return None


@contextlib.contextmanager
def writer_lock(index_dir: Path) -> Iterator[None]:
    """Hold ``index_dir/.lock`` (an OS lock: released when the process dies) or refuse at once."""
    lock = FileLock(index_dir / ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout as exc:
        raise IndexLockedError(
            f"Another `chatbot index` is writing to {index_dir}; wait for it to finish and run it again."
        ) from exc
    try:
        yield
    finally:
        lock.release()


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


def write_cache(path: Path, data: bytes) -> None:
    """Keep a file derived from the index (entity labels, enrichment vectors) in the index
    folder, atomically (a crash leaves none, it is computed again); a folder that cannot be
    written only logs: the data then serves this process alone."""
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        logger.warning("Could not keep %s: %s", path, exc)
        tmp.unlink(missing_ok=True)


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _fsync_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
