"""FAISS at scale: exact search against HNSW and IVF on up to 1M vectors of dimension 384.

Vectors are synthetic but not uniform noise (on which no approximate index works and no text
collection looks like): unit vectors drawn around 2,000 random topic centres, as embeddings of
many articles on fewer subjects are. Queries are held-out points drawn the same way. Recall@10
is measured against exact inner-product search on the same vectors.

    python scripts/scale_faiss.py --sizes 100000 1000000 > faiss_scale.json

Prints one JSON line per (size, index, search parameter).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence

import faiss
import numpy as np

DIM = 384


def synthetic(n: int, rng: np.random.Generator, centres: np.ndarray, spread: float = 0.9) -> np.ndarray:
    """``n`` unit vectors, each a random topic centre plus Gaussian noise of norm ≈ ``spread``."""
    out = np.empty((n, DIM), dtype=np.float32)
    step = 100_000
    for start in range(0, n, step):
        size = min(step, n - start)
        picks = centres[rng.integers(0, len(centres), size)]
        noise = rng.standard_normal((size, DIM), dtype=np.float32) * (spread / np.sqrt(DIM))
        block = picks + noise
        out[start : start + size] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def recall_at_10(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)]))


def per_query_ms(index: faiss.Index, queries: np.ndarray) -> tuple[float, np.ndarray]:
    """Median latency of single-question searches (the chat's case), and the results."""
    times, rows = [], []
    for q in queries:
        started = time.perf_counter()
        _, found = index.search(q[None, :], 10)
        times.append((time.perf_counter() - started) * 1000)
        rows.append(found[0])
    return statistics.median(times), np.array(rows)


def emit(**row: object) -> None:
    print(json.dumps(row), flush=True)


def run(size: int, queries_n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((2000, DIM), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    data = synthetic(size, rng, centres)
    queries = synthetic(queries_n, rng, centres)

    started = time.perf_counter()
    flat = faiss.IndexFlatIP(DIM)
    flat.add(data)
    build = time.perf_counter() - started
    latency, truth = per_query_ms(flat, queries)
    emit(size=size, index="flat", param="", build_s=round(build, 2), memory_mb=round(data.nbytes / 2**20),
         query_ms=round(latency, 2), recall_at_10=1.0)  # fmt: skip
    del flat

    started = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 64
    hnsw.add(data)
    build = time.perf_counter() - started
    graph_mb = (data.nbytes + size * 32 * 2 * 4) / 2**20  # vectors + ~2M links of 4 bytes per vector
    for ef in (32, 64, 128, 256):
        hnsw.hnsw.efSearch = ef
        latency, found = per_query_ms(hnsw, queries)
        emit(size=size, index="hnsw32", param=f"efSearch={ef}", build_s=round(build, 2), memory_mb=round(graph_mb),
             query_ms=round(latency, 3), recall_at_10=round(recall_at_10(found, truth), 4))  # fmt: skip
    del hnsw

    nlist = int(4 * np.sqrt(size))
    started = time.perf_counter()
    quantizer = faiss.IndexFlatIP(DIM)
    ivf = faiss.IndexIVFFlat(quantizer, DIM, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.train(data[rng.choice(size, min(size, 64 * nlist), replace=False)])
    ivf.add(data)
    build = time.perf_counter() - started
    for nprobe in (8, 32, 128):
        ivf.nprobe = nprobe
        latency, found = per_query_ms(ivf, queries)
        emit(size=size, index=f"ivf{nlist}", param=f"nprobe={nprobe}", build_s=round(build, 2),
             memory_mb=round(data.nbytes / 2**20), query_ms=round(latency, 3),
             recall_at_10=round(recall_at_10(found, truth), 4))  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    faiss.omp_set_num_threads(2)
    for size in args.sizes:
        run(size, args.queries, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
