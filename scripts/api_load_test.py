"""Load test of the OpenAI-compatible API of ``chatbot serve`` (started in its own process).

Two runs against one server: ``--users`` clients (one API key each, the official ``openai``
client) each asking ``--questions`` conversations of the evaluation set (a follow-up in the
same conversation after the question it follows), then the same with one more client, over
its limit, sending questions on 10 connections at once, each as fast as the server answers. Every answer (content and
structured citations) is compared with the one to the same conversation asked alone first.
The flooding client must get 429s, the others none, and their p95 must stay within
``--max-slowdown`` of the first run.

    python scripts/api_load_test.py --users 20 --questions 25     # the figure in docs/api.md

Prints a Markdown table and one JSON object; exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from load_test import Conversation, conversations  # noqa: E402

from chatbot.bench import free_port, serving  # noqa: E402
from chatbot.settings import Settings  # noqa: E402

MODEL = "extractive"
LIMIT = "60/minute"  # per key: above what a client of the run asks in a minute, far below a flood
FLOOD_CONNECTIONS = 10  # the flooding client asks on this many connections at once
FLOOD_MAX_REQUESTS = 20_000
FLOOD_MAX_SECONDS = 600.0


@dataclass(frozen=True)
class Reply:
    """What the API gave for a conversation's last question: content and citations."""

    content: str
    citations: str


def ask(client: openai.OpenAI, conversation: Conversation, latencies: list[float] | None = None) -> Reply:
    """Ask the questions in order in one conversation (answers sent back as the assistant's
    messages); the reply to the last one."""
    messages: list[dict[str, str]] = []
    reply = Reply("", "")
    for question in conversation:
        messages.append({"role": "user", "content": question})
        started = time.perf_counter()
        completion = client.chat.completions.create(model=MODEL, messages=messages)  # type: ignore[arg-type]
        if latencies is not None:
            latencies.append((time.perf_counter() - started) * 1000)
        text = completion.choices[0].message.content or ""
        extra = completion.model_extra or {}
        cited = [{k: v for k, v in c.items()} for c in extra["chatbot"]["citations"]]
        reply = Reply(text, json.dumps(cited, ensure_ascii=False, sort_keys=True))
        messages.append({"role": "assistant", "content": text})
    return reply


@dataclass
class Run:
    """One run: every normal client's latencies and failures, and the flood's counts."""

    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    seconds: float = 0.0
    flood: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        p50, p95 = np.percentile(self.latencies_ms, [50, 95]) if self.latencies_ms else (0.0, 0.0)
        return {
            "requests": len(self.latencies_ms) + len(self.errors),
            "errors": len(self.errors),
            "mismatches": len(self.mismatches),
            "p50_ms": round(float(p50), 1),
            "p95_ms": round(float(p95), 1),
            "seconds": round(self.seconds, 1),
            **({"flood": dict(self.flood)} if self.flood else {}),
        }


def flood(
    url: str, key: str, stop: threading.Event, over: threading.Event, counts: dict[str, int], lock: threading.Lock
) -> None:
    """Questions as fast as the server answers on one connection, until ``stop`` (bounded in
    count and time); ``over`` is set at the first 429."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Quelle part des PME a un site web ?"}]}
    deadline = time.monotonic() + FLOOD_MAX_SECONDS
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
            for _ in range(FLOOD_MAX_REQUESTS // FLOOD_CONNECTIONS):
                if stop.is_set() or time.monotonic() > deadline:
                    break
                response = http.post("/v1/chat/completions", json=body)
                with lock:
                    counts[str(response.status_code)] = counts.get(str(response.status_code), 0) + 1
                    if response.status_code == 429:
                        counts["with_retry_after"] = counts.get("with_retry_after", 0) + (
                            "retry-after" in response.headers
                        )
                if response.status_code == 429:
                    over.set()
    finally:
        over.set()  # never leave the others waiting


def run(
    url: str,
    keys: Sequence[str],
    plans: Sequence[Sequence[Conversation]],
    expected: dict[Conversation, Reply],
    flood_key: str | None = None,
) -> Run:
    """Each plan asked by its own client (key) at once; with ``flood_key``, once that client
    is over its limit, and while it goes on asking."""
    result = Run()
    lock = threading.Lock()
    start_together = threading.Barrier(len(plans))
    stop, over = threading.Event(), threading.Event()
    flooding = [
        threading.Thread(target=flood, args=(url, flood_key, stop, over, result.flood, lock))
        for _ in range(FLOOD_CONNECTIONS if flood_key else 0)
    ]
    for thread in flooding:
        thread.start()
    if flooding:
        over.wait()
        with lock:
            result.flood.clear()  # counted from the moment the others start
        if not any(thread.is_alive() for thread in flooding):
            result.errors.append("the flooding client stopped before the run")

    def user(key: str, plan: Sequence[Conversation]) -> None:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=120)
        own: list[float] = []
        start_together.wait()
        for item in plan:
            try:
                reply = ask(client, item, own)
            except Exception as exc:  # any failure is a load-test error, recorded
                with lock:
                    result.errors.append(f"{item[-1]!r}: {exc!r}")
                continue
            if reply != expected[item]:
                with lock:
                    result.mismatches.append(item[-1])
        with lock:
            result.latencies_ms.extend(own)

    threads = [threading.Thread(target=user, args=(key, plan)) for key, plan in zip(keys, plans, strict=True)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - started
    stop.set()
    for thread in flooding:
        thread.join()
    return result


def plans_for(items: Sequence[Conversation], users: int, per_user: int) -> list[list[Conversation]]:
    """User u asks items u·per_user… (wrapping around)."""
    return [[items[(u * per_user + i) % len(items)] for i in range(per_user)] for u in range(users)]


def load(settings: Settings, users: int, per_user: int, folder: Path, port: int | None = None) -> tuple[Run, Run]:
    """Start ``chatbot serve`` and make both runs (without, then with the flood)."""
    items = sorted(conversations(), key=len, reverse=True)  # follow-ups in every user's share
    plans = plans_for(items, users, per_user)
    distinct = list(dict.fromkeys(item for plan in plans for item in plan))
    warm = [f"warm-{i}" for i in range(len(distinct) // 20 + 1)]  # 20 conversations per key: under the limit
    first = [f"calm-{u}" for u in range(users)]
    second = [f"busy-{u}" for u in range(users)]
    keys = folder / "keys.txt"
    keys.write_text("\n".join([*warm, *first, *second, "flood"]) + "\n", encoding="utf-8")
    port = port or free_port()
    env = {"CHATBOT_API_KEYS": f"@{keys}", "CHATBOT_QUESTION_LIMIT": LIMIT,
           "CHATBOT_FEEDBACK": str(folder / "feedback.jsonl")}  # fmt: skip
    with serving(settings, port, env=env, log=folder / "serve.log"):
        url = f"http://127.0.0.1:{port}"
        expected = {}
        for i, item in enumerate(distinct):
            client = openai.OpenAI(base_url=f"{url}/v1", api_key=warm[i // 20], max_retries=0)
            expected[item] = ask(client, item)
        calm = run(url, first, plans, expected)
        busy = run(url, second, plans, expected, flood_key="flood")
    return calm, busy


def table(users: int, per_user: int, calm: Run, busy: Run) -> str:
    a, b = calm.summary(), busy.summary()
    flooded = b.get("flood", {})
    rows = [
        "| run | clients × conversations | questions | errors | mismatches | p50 ms | p95 ms | seconds |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| alone | {users} × {per_user} | {a['requests']} | {a['errors']} | {a['mismatches']} | {a['p50_ms']} | "
        f"{a['p95_ms']} | {a['seconds']} |",
        f"| beside a flood | {users} × {per_user} | {b['requests']} | {b['errors']} | {b['mismatches']} | "
        f"{b['p50_ms']} | {b['p95_ms']} | {b['seconds']} |",
        "",
        f"Flooding client: {sum(v for k, v in flooded.items() if k.isdigit())} requests, {flooded.get('200', 0)} "
        f"answered, {flooded.get('429', 0)} refused with 429 ({flooded.get('with_retry_after', 0)} with Retry-After); "
        f"others' p95 beside it / alone: {b['p95_ms'] / a['p95_ms']:.2f}"
        if a["p95_ms"]
        else "",
    ]
    return "\n".join(rows)


def checks(calm: Run, busy: Run, max_slowdown: float) -> list[str]:
    """What failed, if anything."""
    failed = []
    for name, result in (("alone", calm), ("beside the flood", busy)):
        if result.errors or result.mismatches:
            failed.append(f"{name}: {len(result.errors)} errors, {len(result.mismatches)} mismatches")
    if busy.flood.get("429", 0) == 0 or busy.flood.get("with_retry_after", 0) != busy.flood.get("429", 0):
        failed.append(f"the flood was not refused with 429 + Retry-After: {busy.flood}")
    p95_calm, p95_busy = calm.summary()["p95_ms"], busy.summary()["p95_ms"]
    if p95_busy > max_slowdown * p95_calm:
        failed.append(f"p95 beside the flood {p95_busy} ms > {max_slowdown} × {p95_calm} ms")
    return failed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--questions", type=int, default=25, help="conversations per user")
    parser.add_argument("--index", type=Path, default=Path("index"), help="the index to serve (built if missing)")
    parser.add_argument("--max-slowdown", type=float, default=1.5)
    args = parser.parse_args(argv)
    settings = Settings(corpus_dir=REPO / "corpus", index_dir=args.index)
    with tempfile.TemporaryDirectory(prefix="chatbot-api-load-") as tmp:
        calm, busy = load(settings, args.users, args.questions, Path(tmp))
    print(table(args.users, args.questions, calm, busy))
    print(json.dumps({"users": args.users, "conversations_per_user": args.questions, "limit": LIMIT,
                      "alone": calm.summary(), "beside_flood": busy.summary()}))  # fmt: skip
    failed = checks(calm, busy, args.max_slowdown)
    for failure in failed:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
