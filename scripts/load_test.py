"""Load test of the web chat through its public API (``/ask``), with ``gradio_client``.

Each simulated user opens its own client and asks its share of the evaluation questions in
turn; a follow-up question is asked in the same conversation right after the question it
follows, as a person would. Every answer (text and sources) is compared with the answer to the
same conversation asked alone, before the load starts.

    python scripts/load_test.py --users 20 --questions 25          # launches the chat in-process
    python scripts/load_test.py --url http://127.0.0.1:7860/ ...   # or hits a running one
    python scripts/load_test.py --reader local --users 10 --questions 10   # one slow local model

Prints one JSON object: requests, errors, mismatches, p50/p95/max latency, throughput. With a
writing reader (--reader local/server) replies are not compared with the ones asked alone (a
reply may be written or fall back): each is classified instead (written, declined, marked
fallback, or unmarked: an extractive answer without the fallback note, which must not happen),
with the fallback share and the chat process's memory before and after.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gradio_client import Client  # noqa: E402

from chatbot.app import answer_text, text_of  # noqa: E402
from chatbot.bench import rss_mb  # noqa: E402
from chatbot.evaluation import load_questions  # noqa: E402

Conversation = tuple[str, ...]
"""Questions asked in one conversation, in order; the answer to the last one is compared."""


@dataclass(frozen=True)
class Reply:
    """What the chat showed for one question: the answer and its sources panel, as text."""

    answer: str
    sources: str


@dataclass(frozen=True)
class LoadResult:
    requests: int
    errors: tuple[str, ...]
    mismatches: tuple[str, ...]
    latencies_ms: tuple[float, ...]
    seconds: float
    kinds: tuple[tuple[str, int], ...] = ()  # writing readers: replies per kind

    @property
    def unmarked(self) -> int:
        return dict(self.kinds).get("unmarked", 0)

    def summary(self) -> dict[str, Any]:
        p50, p95, top = np.percentile(self.latencies_ms, [50, 95, 100]) if self.latencies_ms else (0.0, 0.0, 0.0)
        return {
            "requests": self.requests,
            "errors": len(self.errors),
            "mismatches": len(self.mismatches),
            "p50_ms": round(float(p50), 1),
            "p95_ms": round(float(p95), 1),
            "max_ms": round(float(top), 1),
            "seconds": round(self.seconds, 1),
            "requests_per_s": round(self.requests / self.seconds, 2) if self.seconds else 0.0,
            **({"replies": dict(self.kinds)} if self.kinds else {}),
            **(
                {"fallback_share": round(dict(self.kinds).get("fallback", 0) / sum(dict(self.kinds).values()), 3)}
                if self.kinds
                else {}
            ),
        }


def kind_of(reply: Reply) -> str:
    """What a writing reader's reply is: written by the model, declined, the extractive answer
    with the fallback note, or unmarked."""
    if 'data-mode="llm"' in reply.sources:
        return "written"
    if 'data-abstained="true"' in reply.sources:
        return "declined"
    if "Réponse extraite des articles" in reply.sources or "Answer quoted from the articles" in reply.sources:
        return "fallback"
    return "unmarked"


def conversations(path: Path = REPO / "evaluation" / "questions.jsonl") -> list[Conversation]:
    """Every question of the evaluation set as a conversation: a follow-up after its history."""
    return [(*q.history, q.question) for q in load_questions(path)]


def ask(client: Client, question: str, history: list[dict[str, Any]]) -> tuple[Reply, list[dict[str, Any]]]:
    _, messages = client.predict(question, history, 5, "hybrid", api_name="/ask")
    messages = list(messages)
    shown = text_of(messages[-1]["content"]) if messages and messages[-1]["role"] == "assistant" else ""
    # The whole message minus its answer id (new at every ask): sources, quotes, notes.
    return Reply(answer_text(shown), re.sub(r'data-answer="[0-9a-f]+"', "", shown)), messages


def converse(client: Client, conversation: Conversation, latencies: list[float] | None = None) -> Reply:
    """Ask the questions in order in one conversation; the reply to the last one."""
    history: list[dict[str, Any]] = []
    reply = Reply("", "")
    for question in conversation:
        started = time.perf_counter()
        reply, history = ask(client, question, history)
        if latencies is not None:
            latencies.append((time.perf_counter() - started) * 1000)
    return reply


def expected_replies(url: str, items: Sequence[Conversation]) -> dict[Conversation, Reply]:
    """Each conversation asked alone, one after the other."""
    client = Client(url, verbose=False)
    return {item: converse(client, item) for item in dict.fromkeys(items)}


def run_load(url: str, items: Sequence[Conversation], users: int, per_user: int, compare: bool = True) -> LoadResult:
    """``users`` clients at once, each asking ``per_user`` conversations (user u starts at item
    u·per_user, wrapping around), every reply checked against the one asked alone (``compare``)
    or classified (:func:`kind_of`)."""
    plans = [[items[(u * per_user + i) % len(items)] for i in range(per_user)] for u in range(users)]
    expected = expected_replies(url, [item for plan in plans for item in plan]) if compare else {}
    kinds: collections.Counter[str] = collections.Counter()
    latencies: list[float] = []
    errors: list[str] = []
    mismatches: list[str] = []
    lock = threading.Lock()
    start_together = threading.Barrier(users)

    def user(plan: list[Conversation]) -> None:
        own: list[float] = []
        try:
            client = Client(url, verbose=False)
        except Exception as exc:  # any failure to connect is a load-test error
            with lock:
                errors.append(f"connect: {exc!r}")
            start_together.abort()
            return
        start_together.wait()
        for item in plan:
            try:
                reply = converse(client, item, own)
            except Exception as exc:  # recorded and reported; the run goes on
                with lock:
                    errors.append(f"{item[-1]!r}: {exc!r}")
                continue
            with lock:
                if not compare:
                    kinds[kind_of(reply)] += 1
                elif reply != expected[item]:
                    mismatches.append(item[-1])
        with lock:
            latencies.extend(own)

    threads = [threading.Thread(target=user, args=(plan,)) for plan in plans]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return LoadResult(
        requests=len(latencies) + len(errors),
        errors=tuple(errors),
        mismatches=tuple(mismatches),
        latencies_ms=tuple(latencies),
        seconds=time.perf_counter() - started,
        kinds=tuple(sorted(kinds.items())),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running chat; by default one is launched in-process on index/")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--questions", type=int, default=25, help="conversations per user")
    parser.add_argument("--reader", choices=["extractive", "server", "local"], help="launched chat's reader")
    args = parser.parse_args(argv)
    url = args.url
    demo = None
    memory: dict[str, float] = {}
    writing = args.reader in ("server", "local")
    if url is None:
        from chatbot.app import launch
        from chatbot.reader import make_reader
        from chatbot.reader.writer import LLMConfig, ModelReader
        from chatbot.retrieval import Retriever
        from chatbot.service import ChatService
        from chatbot.settings import Settings

        settings = Settings()
        retriever = Retriever(settings)
        retriever.search("échauffement")  # load the model before timing
        reader = make_reader(args.reader, LLMConfig.from_env())
        if isinstance(reader, ModelReader):
            reader.warm()
        demo, url = launch(ChatService(settings, retriever, reader=reader), block=False, quiet=True)
        memory["rss_start_mb"] = rss_mb()
    try:
        result = run_load(url, conversations(), args.users, args.questions, compare=not writing)
    finally:
        if demo is not None:
            memory["rss_end_mb"] = rss_mb()
            demo.close()
    summary = {"users": args.users, "conversations_per_user": args.questions, "reader": args.reader or "default"}
    print(json.dumps({**summary, **result.summary(), **memory}))
    return 0 if not result.errors and not result.mismatches and not result.unmarked else 1


if __name__ == "__main__":
    raise SystemExit(main())
