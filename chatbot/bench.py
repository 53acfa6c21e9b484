"""The benchmark behind ``chatbot bench``: medians of repeated runs on the real corpus.

Query figures are warm (model loaded) but never served from the retriever's query cache:
each run clears it, so the embedder is really called.
"""

from __future__ import annotations

import collections
import contextlib
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from chatbot.answer import Answer, answer, stream
from chatbot.backends import build_index
from chatbot.embedding import SentenceTransformerEmbedder
from chatbot.errors import BenchError
from chatbot.reader import ExtractiveReader, Reader
from chatbot.reader.writer import ModelReader
from chatbot.retrieval import Retriever
from chatbot.settings import MODES, Mode, Settings

SERVE_TIMEOUT_S = 300.0
"""How long the cold start waits for ``chatbot serve`` to listen (it loads the model and
checks the index first; a few seconds here)."""


def rss_mb() -> float:
    """This process's resident memory now, in MB (Linux; 0 elsewhere)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _median_ms(run: Callable[[str], object], questions: Sequence[str], before: Callable[[], None]) -> float:
    return round(statistics.median(_timings_ms(run, questions, before)), 2)


def _timings_ms(run: Callable[[str], object], questions: Sequence[str], before: Callable[[], None]) -> list[float]:
    times = []
    for question in questions:
        before()
        started = time.perf_counter()
        run(question)
        times.append((time.perf_counter() - started) * 1000)
    return times


def run_bench(
    settings: Settings, questions: Sequence[str], *, cold_start: bool = True, reader: Reader | None = None
) -> dict[str, Any]:
    """Every figure of the bench table; builds throw-away indexes in a temporary folder (and,
    for ``--backend milvus``, collections prefixed ``<milvus_collection>_bench``). With a
    backend other than local, the local backend's build and search times are measured in the
    same run, under ``"local"``."""
    results: dict[str, Any] = {"backend": settings.backend}
    with tempfile.TemporaryDirectory(prefix="chatbot-bench-") as tmp:
        local = replace(settings, index_dir=Path(tmp) / "index")
        if settings.backend == "milvus":
            from chatbot.backends.milvus_store import is_lite

            uri = settings.milvus_uri
            local = replace(
                local,
                milvus_uri=None if uri is None or is_lite(uri) else uri,
                milvus_collection=f"{settings.milvus_collection}_bench",
            )
        embedder = SentenceTransformerEmbedder(settings.model, batch_size=settings.batch_size)
        embedder.encode_queries(["échauffement"])  # load the model: build and encode are measured warm
        started = time.perf_counter()
        build_index(local, embedder, rebuild=True)
        results["build_s"] = round(time.perf_counter() - started, 3)
        retriever = Retriever(local, embedder=embedder)
        # What a build embeds: every chunk, then every sentence when they are stored.
        texts = [c.indexed_text(settings.title_in_embedding) for c in retriever.chunks]
        if settings.sentence_vectors:
            texts += [s for c in retriever.chunks for s in c.sentences()]
        started = time.perf_counter()
        for start in range(0, len(texts), settings.batch_size):
            embedder.encode_documents(texts[start : start + settings.batch_size])
        results["encode_corpus_s"] = round(time.perf_counter() - started, 3)

        forget = retriever.clear_query_cache
        results["encode_query_ms"] = _median_ms(lambda q: embedder.encode_queries([q]), questions, lambda: None)
        results["search_ms"] = {}
        for mode in MODES:

            def search(question: str, mode: Mode = mode) -> object:
                return retriever.search(question, mode=mode)

            results["search_ms"][mode] = _median_ms(search, questions, forget)
        chosen = reader or ExtractiveReader()
        if isinstance(chosen, ModelReader):
            results.update(_model_figures(retriever, chosen, questions, forget))
        else:
            times = _timings_ms(lambda q: answer(retriever, q, reader=chosen), questions, forget)
            results["answer_ms"] = round(statistics.median(times), 2)
            results["answer_p90_ms"] = round(float(np.percentile(times, 90)), 2)
        results["reader"] = chosen.name
        results["sentences"] = int(retriever.index.sentence_offsets[-1])
        retriever.index.close()  # Milvus Lite lets one process at a time open its file
        results["noop_reindex_s"] = _timed_process(
            ["index", "--corpus", str(local.corpus_dir), "--index", str(local.index_dir), *_backend_args(local)], local
        )
        if cold_start:
            results["cold_start_s"] = _cold_start(local, questions[0])
        if settings.backend != "local":
            results["local"] = _search_figures(replace(local, backend="local"), embedder, questions)
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    results["chunks"] = len(retriever.chunks)
    results["questions"] = len(questions)
    return results


def _search_figures(
    settings: Settings, embedder: SentenceTransformerEmbedder, questions: Sequence[str]
) -> dict[str, Any]:
    """Build time and search medians of one more backend, for the comparison."""
    started = time.perf_counter()
    build_index(settings, embedder, rebuild=True)
    figures: dict[str, Any] = {"backend": settings.backend, "build_s": round(time.perf_counter() - started, 3)}
    retriever = Retriever(settings, embedder=embedder)
    figures["search_ms"] = {}
    for mode in MODES:

        def search(question: str, mode: Mode = mode) -> object:
            return retriever.search(question, mode=mode)

        figures["search_ms"][mode] = _median_ms(search, questions, retriever.clear_query_cache)
    retriever.index.close()
    return figures


def _backend_args(settings: Settings) -> list[str]:
    """The options that point a ``chatbot`` subprocess at the same index, built by the same
    model (the token goes through the environment, not the command line)."""
    model = ["--model", settings.model]
    if settings.backend == "local":
        return model
    return [
        *model,
        "--backend",
        settings.backend,
        *(["--milvus-uri", settings.milvus_uri] if settings.milvus_uri else []),
    ]


def _environment(settings: Settings) -> dict[str, str]:
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    if settings.milvus_token:
        env["CHATBOT_MILVUS_TOKEN"] = settings.milvus_token
    if settings.backend != "local":  # the collections' prefix has no option
        env["CHATBOT_MILVUS_COLLECTION"] = settings.milvus_collection
    return env


def _model_figures(
    retriever: Retriever, reader: ModelReader, questions: Sequence[str], forget: Callable[[], None]
) -> dict[str, Any]:
    """A writing reader: the whole answer (retrieval, reading, queue, model, check), the first
    written text, and the model alone on the same prompts (``reader_bare_ms``)."""
    from chatbot.reader.prompt import build_messages, excerpts

    started = time.perf_counter()
    reader.warm()
    figures: dict[str, Any] = {"model_warm_s": round(time.perf_counter() - started, 2)}
    model = getattr(reader.writer, "model", None)
    if model is not None:
        figures["model_load_s"] = round(model.load_s, 2)
    total: list[float] = []
    first: list[float] = []
    prompts: list[list[dict[str, str]]] = []
    written = 0
    for question in questions:
        forget()
        started = time.perf_counter()
        first_ms = None
        for item in stream(retriever, question, reader=reader):
            if isinstance(item, str) and first_ms is None:
                first_ms = (time.perf_counter() - started) * 1000
        total.append((time.perf_counter() - started) * 1000)
        assert isinstance(item, Answer)
        written += item.mode == "llm"
        if first_ms is not None:
            first.append(first_ms)
        if not item.abstained and item.evidence:
            prompts.append(build_messages(question, excerpts(item.evidence), item.lang))
    # The model alone on the same prompts, in a second pass: as in the first, the model's cache
    # holds the previous question's prompt, not this one's.
    bare = []
    for messages in prompts:
        started = time.perf_counter()
        collections.deque(reader.writer.write(messages, reader.max_tokens), maxlen=0)
        bare.append((time.perf_counter() - started) * 1000)
    tokens = [model.tokens(m) for m in prompts] if model is not None else []
    figures |= {
        "answer_ms": round(statistics.median(total), 1),
        "answer_p90_ms": round(float(np.percentile(total, 90)), 1),
        "first_text_ms": round(statistics.median(first), 1) if first else None,
        "first_text_p90_ms": round(float(np.percentile(first, 90)), 1) if first else None,
        "reader_bare_ms": round(statistics.median(bare), 1) if bare else None,
        "prompt_tokens": round(statistics.median(tokens)) if tokens else None,
        "written_share": round(written / len(questions), 3),
    }
    return figures


def _chatbot_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "chatbot", *args]


def _timed_process(args: list[str], settings: Settings) -> float:
    started = time.perf_counter()
    subprocess.run(_chatbot_command(*args), check=True, capture_output=True, timeout=600, env=_environment(settings))
    return round(time.perf_counter() - started, 3)


def _cold_start(settings: Settings, question: str, timeout_s: float = SERVE_TIMEOUT_S) -> float:
    """From launching ``chatbot serve`` to the first answer received over HTTP.

    Raises:
        BenchError: the server exited, or did not listen within ``timeout_s`` seconds.
    """
    from gradio_client import Client

    port = free_port()
    started = time.perf_counter()
    with serving(settings, port, timeout_s=timeout_s):
        Client(f"http://127.0.0.1:{port}/", verbose=False).predict(question, [], 5, settings.mode, api_name="/ask")
        return round(time.perf_counter() - started, 3)


def free_port() -> int:
    """A TCP port of 127.0.0.1 free now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def serving(
    settings: Settings,
    port: int,
    *options: str,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
    timeout_s: float = SERVE_TIMEOUT_S,
) -> Iterator[subprocess.Popen[bytes]]:
    """``chatbot serve`` on ``settings``' corpus and index and 127.0.0.1:``port`` (with
    ``options``, and ``env`` over this process's environment) in its own process, once it
    listens; stopped on exit. Its output goes to ``log`` (else nowhere).

    Raises:
        BenchError: the server exited, or did not listen within ``timeout_s`` seconds.
    """
    command = _chatbot_command(
        "serve", "--corpus", str(settings.corpus_dir), "--index", str(settings.index_dir), "--port", str(port),
        *_backend_args(settings), *options,
    )  # fmt: skip
    environment = {**_environment(settings), **(env or {})}
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(log.open("wb")) if log is not None else subprocess.DEVNULL
        server = subprocess.Popen(command, env=environment, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_until_listening(server, port, timeout_s)
            yield server
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def wait_until_listening(server: subprocess.Popen[bytes], port: int, timeout_s: float) -> None:
    """Return once something listens on ``port`` of 127.0.0.1.

    Raises:
        BenchError: ``server`` exited first, or nothing listened within ``timeout_s`` seconds.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        if server.poll() is not None:
            raise BenchError(f"chatbot serve exited (code {server.returncode}) before listening on port {port}.")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() >= deadline:
                raise BenchError(
                    f"chatbot serve did not listen on port {port} within {timeout_s:.0f} s; run it by hand "
                    "to see why, or time the rest with --no-cold-start."
                ) from None
            time.sleep(0.1)


def format_bench(results: dict[str, Any]) -> str:
    rows = [
        ("encode_query_ms", results["encode_query_ms"]),
        *((f"search_ms {mode}", ms) for mode, ms in results["search_ms"].items()),
        (f"answer_ms ({results['reader']} reader, median)", results["answer_ms"]),
        ("answer_p90_ms", results["answer_p90_ms"]),
        ("build_s", results["build_s"]),
        ("encode_corpus_s", results["encode_corpus_s"]),
        ("noop_reindex_s", results["noop_reindex_s"]),
        ("cold_start_s", results.get("cold_start_s", "skipped")),
        ("peak_rss_mb", results["peak_rss_mb"]),
    ]
    model_rows = ("model_load_s", "model_warm_s", "first_text_ms", "first_text_p90_ms", "reader_bare_ms",
                  "prompt_tokens", "written_share")  # fmt: skip
    rows += [(name, results[name]) for name in model_rows if name in results]
    if "local" in results:  # the other backend, same run
        backend = results["backend"]
        rows = [(f"{name} ({backend})" if name.startswith(("search_ms", "build_s")) else name, v) for name, v in rows]
        rows += [(f"search_ms {mode} (local)", ms) for mode, ms in results["local"]["search_ms"].items()]
        rows.append(("build_s (local)", results["local"]["build_s"]))
    hybrid = results["search_ms"]["hybrid"] / results["encode_query_ms"]
    build = results["build_s"] - 1.2 * results["encode_corpus_s"]
    lines = [f"{name:<22}{value}" for name, value in rows]
    lines.append(f"{'hybrid / encode_query':<22}{hybrid:.2f}  (target <= 1.3)")
    lines.append(f"{'build - 1.2 x encode':<22}{build:.2f} s  (target <= 2)")
    return "\n".join(lines)
