"""Memory of one process over many answers written by the local model.

    python scripts/local_memory.py --answers 200 [--local-model qwen2.5-coder-0.5b]

Asks the evaluation questions in turn (numbered variants, so no cache helps) through the
local reader and prints one JSON object: resident memory after the first 20 answers, then
every 50, the written share and the median answer time. Memory is flat when it stops
growing once the model and the caches are warm.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from chatbot.answer import answer  # noqa: E402
from chatbot.bench import rss_mb  # noqa: E402
from chatbot.evaluation import load_questions  # noqa: E402
from chatbot.reader import make_reader  # noqa: E402
from chatbot.retrieval import Retriever  # noqa: E402
from chatbot.settings import Settings  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--answers", type=int, default=200)
    parser.add_argument("--local-model", help="default: CHATBOT_LOCAL_MODEL, else the 1.5B when installed")
    args = parser.parse_args(argv)
    questions = [q for q in load_questions(REPO / "evaluation" / "questions.jsonl") if q.answerable]
    reader = make_reader("local", local_model=args.local_model)
    retriever = Retriever(Settings())
    rss: dict[str, float] = {"start": rss_mb()}
    times, written = [], 0
    for i in range(1, args.answers + 1):
        q = questions[(i - 1) % len(questions)]
        started = time.perf_counter()
        result = answer(retriever, f"{q.question} (n° {i})", q.history, reader=reader)
        times.append(time.perf_counter() - started)
        written += result.mode == "llm"
        if i == 20 or i % 50 == 0:
            rss[str(i)] = rss_mb()
    print(json.dumps({"answers": args.answers, "rss_mb": rss, "written_share": round(written / args.answers, 3),
                      "median_s": round(statistics.median(times), 2)}))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
