"""How the pipeline grows with the corpus: synthetic corpora of 1k, 10k, 100k articles.

For each size, a fresh process builds the whole index (chunking, French analysis, BM25, FAISS,
sentence vectors, checksums, atomic swap) and then searches it. The embedding model is
replaced by a stand-in (a hashing embedder, 384 dimensions, microseconds a text): with the
real model on this 2-core machine, 1k articles alone would take about an hour to embed. The
model's own cost is linear and measured apart (``--doc-ms``, ``--query-ms`` from
``chatbot bench``), and added as a projection.

    python scripts/scale_corpus.py --sizes 1000 10000 100000 --work /tmp/scale
    python scripts/scale_corpus.py --sizes 10000 --backend milvus   # into Milvus Lite

Prints one JSON line per size. With ``--backend milvus`` the index goes into a Milvus Lite file
(``<work>/index-<size>/milvus.db``); its disk is that file's, and the memory figures add the
Milvus Lite server process (``milvus_rss_mb``) to this one's.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from chatbot.backends import build_index, load_backend  # noqa: E402
from chatbot.evaluation import load_questions  # noqa: E402
from chatbot.retrieval import Retriever  # noqa: E402
from chatbot.settings import MODES, Settings  # noqa: E402


class HashEmbedder:
    """Stand-in for the model: words hashed into a unit vector. Same text, same vector."""

    name = "hash-384"

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim
        self.seconds = 0.0

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        started = time.perf_counter()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                out[row, zlib.crc32(word.encode()) % self.dim] += 1.0
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)
        self.seconds += time.perf_counter() - started
        return out

    encode_queries = _encode
    encode_documents = _encode


def _rss_mb(status: Path = Path("/proc/self/status")) -> float:
    for line in status.read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _milvus_rss_mb(index: Path) -> float:
    """Resident memory of the Milvus Lite server serving ``index`` (0 when none)."""
    for status in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            command = status.read_bytes().split(b"\0")
        except OSError:
            continue
        if command and command[0].endswith(b"milvus_lite/lib/milvus") and str(index).encode() in b" ".join(command):
            return _rss_mb(status.parent / "status")
    return 0.0


def measure(corpus: Path, index: Path, vector_index: str, backend: str = "local") -> dict[str, object]:
    """Build then search one corpus in this process; every figure for one size."""
    settings = Settings(
        corpus_dir=corpus,
        index_dir=index,
        model=HashEmbedder.name,
        vector_index=vector_index,  # type: ignore[arg-type]
        backend=backend,  # type: ignore[arg-type]
    )
    embedder = HashEmbedder()
    if backend == "milvus":  # a Lite file keeps dropped collections' space: measure a fresh one
        (index / "milvus.db").unlink(missing_ok=True)
    started = time.perf_counter()
    report = build_index(settings, embedder, rebuild=True)
    build_s = time.perf_counter() - started
    build_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    loaded = load_backend(settings)
    load_s = time.perf_counter() - started
    root = getattr(loaded, "path", index)
    files = {p.relative_to(root).parts[0]: p.stat().st_size for p in root.rglob("*") if p.is_file()}
    retriever = Retriever(settings, embedder=embedder, index=loaded)
    questions = [q.question for q in load_questions(REPO / "evaluation" / "questions.jsonl")][:50]
    search_ms = {}
    for mode in MODES:
        times = []
        for question in questions:
            retriever.clear_query_cache()
            t = time.perf_counter()
            retriever.search(question, mode=mode)
            times.append((time.perf_counter() - t) * 1000)
        search_ms[mode] = round(statistics.median(times), 2)
    figures: dict[str, object] = {
        "backend": backend,
        # Milvus Lite searches FLAT (exact): nothing to compare with.
        "dense_recall_at_10_vs_exact": _recall_vs_exact(retriever, questions) if backend == "local" else 1.0,
        "articles": report.articles,
        "chunks": report.chunks,
        "sentences": int(loaded.sentence_offsets[-1]),
        "vector_index": loaded.manifest["vector_index"]["type"],
        "build_s": round(build_s, 1),
        "stand_in_embed_s": round(embedder.seconds, 1),
        "disk_mb": {name: round(size / 2**20, 1) for name, size in sorted(_group(files).items())},
        "build_peak_rss_mb": round(build_rss),
        "load_s": round(load_s, 1),
        "loaded_rss_mb": round(_rss_mb()),
        "search_ms_without_model": search_ms,
    }
    if backend == "milvus":
        figures["milvus_rss_mb"] = round(_milvus_rss_mb(index))  # the server, after the searches
    loaded.close()
    return figures


def _recall_vs_exact(retriever: Retriever, questions: list[str]) -> float:
    """Share of the index's dense top 10 that belong in the exact top 10, ties included (a
    recombined corpus holds many identical passages: any of the tied ones is a right answer)."""
    matrix = retriever.index.chunk_vectors(np.arange(len(retriever.chunks)))
    shares = []
    for question in questions:
        query = retriever.query_vector(question)
        tenth = np.sort(matrix @ query[0])[-10]
        found = [row for row, _ in retriever.nearest(query, 10)]
        shares.append(sum(float(matrix[row] @ query[0]) >= tenth - 1e-6 for row in found) / 10)
    return round(float(np.mean(shares)), 4)


def _group(files: dict[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, size in files.items():
        out[name] = out.get(name, 0) + size
    out["total"] = sum(files.values())
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--work", type=Path, default=Path("/tmp/chatbot-scale"))
    parser.add_argument("--vector-index", default="auto")
    parser.add_argument("--backend", choices=["local", "milvus"], default="local")
    parser.add_argument("--doc-ms", type=float, default=48.0, help="the model's time per text (chatbot bench)")
    parser.add_argument("--query-ms", type=float, default=20.2, help="the model's time per question")
    parser.add_argument("--one", nargs=2, type=Path, metavar=("CORPUS", "INDEX"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one[0], args.one[1], args.vector_index, args.backend)))
        return 0
    from synth_corpus import generate

    for size in args.sizes:
        corpus = args.work / f"corpus-{size}"
        if not corpus.is_dir():
            generate(REPO / "corpus", corpus, size)
        child = subprocess.run(
            [sys.executable, __file__, "--one", str(corpus), str(args.work / f"index-{size}-{args.backend}"),
             "--vector-index", args.vector_index, "--backend", args.backend],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        row = json.loads(child.stdout.strip().splitlines()[-1])
        texts = row["chunks"] + row["sentences"]
        row["projected_model_encode_h"] = round(texts * args.doc_ms / 3.6e6, 2)
        row["projected_search_ms_with_model"] = {
            mode: round(ms + (0 if mode == "bm25" else args.query_ms), 1)
            for mode, ms in row["search_ms_without_model"].items()
        }
        print(json.dumps({"size": size, **row}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
