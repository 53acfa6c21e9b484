"""What both backends share to build an index: the plan (which chunks are kept, which embedded),
the embedding into preallocated matrices, the manifest's facts, the compatibility check of a
stored build against the settings, the writer lock, and the atomic writer of files derived from
an index (entity labels, enrichment vectors). Where the rows go is each backend's own
(:mod:`chatbot.backends.local`, :mod:`chatbot.backends.milvus`)."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from filelock import FileLock, Timeout

from chatbot import __version__, analysis
from chatbot.chunking import SENTENCE_VERSION, Chunk, chunk_article
from chatbot.corpus import Corpus, Notice, Skipped
from chatbot.errors import IndexLockedError, IndexMismatchError
from chatbot.settings import Settings

if TYPE_CHECKING:
    from chatbot.backends.base import SearchBackend
    from chatbot.embedding import Embedder

logger = logging.getLogger(__name__)

FORMAT_VERSION = 3
"""3: chunks carry their article's URL (``Chunk.article_url``), the manifest each article's."""
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class BuildReport:
    """What a call to :func:`chatbot.backends.build_index` did."""

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


# The HNSW graph of a large index, the same in FAISS (local) and on a Milvus server.
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 64


def corpus_changed(manifest: dict[str, Any], corpus: Corpus) -> bool:
    """The corpus no longer matches the build ``manifest`` describes: an article added, removed,
    edited, or given another address (any backend's manifest)."""
    stored = {aid: (facts["hash"], facts.get("url", "")) for aid, facts in manifest["articles"].items()}
    return stored != {a.id: (a.content_hash, a.meta.get("url", "")) for a in corpus.articles}


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
