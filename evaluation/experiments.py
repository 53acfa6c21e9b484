"""Compare retrieval configurations on a question set: models, chunk sizes, titles, fusion.

Usage: python evaluation/experiments.py [--questions FILE ...] [--out DIR] [--only LABEL,...]
Builds one index per configuration under --out (default /tmp/chatbot-experiments) and prints
one table row per (configuration, mode). Slow: it embeds the corpus once per configuration.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

from chatbot.backends import build_index
from chatbot.embedding import SentenceTransformerEmbedder
from chatbot.evaluation import Question, evaluate_retriever, format_table, load_questions
from chatbot.retrieval import Retriever
from chatbot.settings import Settings


def run(settings: Settings, questions: list[Question], label: str, modes: tuple[str, ...]) -> dict[str, dict]:
    embedder = SentenceTransformerEmbedder(settings.model)
    build_index(settings, embedder)
    retriever = Retriever(settings, embedder=embedder)
    reports = {}
    for mode in modes:
        started = time.perf_counter()
        report = evaluate_retriever(questions, retriever, mode)  # type: ignore[arg-type]
        report["ms_per_query"] = 1000 * (time.perf_counter() - started) / max(report["n"], 1)
        reports[f"{label} {mode}"] = report
    return reports


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=Path, nargs="+", default=[Path("evaluation/questions.jsonl")])
    parser.add_argument("--out", type=Path, default=Path("/tmp/chatbot-experiments"))
    parser.add_argument("--only", default="", help="comma-separated configuration labels")
    args = parser.parse_args()
    questions = [q for path in args.questions for q in load_questions(path)]
    base = Settings()
    configs = {
        "minilm-800": replace(base, model="minilm"),
        "use-800": replace(base, model="use-multilingual"),
        "e5-800": base,
        "e5-800-title-embedded": replace(base, title_in_embedding=True),
        "e5-800-rrf": replace(base, fusion="rrf", bm25_weight=1.0),
        "e5-800-no-sentence-signal": replace(base, sentence_weight=0.0),
        "e5-800-bm25-for-english": replace(base, bm25_weight_en=base.bm25_weight),
        "e5-800-two-signals-0.5": replace(base, sentence_weight=0.0, bm25_weight=0.5, bm25_weight_en=0.5),
        "e5-1200": replace(base, chunk_size=1200, chunk_overlap=200),
        "e5-500": replace(base, chunk_size=500, chunk_overlap=100),
        "e5-300": replace(base, chunk_size=300, chunk_overlap=60),
        "use-500": replace(base, model="use-multilingual", chunk_size=500, chunk_overlap=100),
    }
    wanted = [c for c in args.only.split(",") if c] or list(configs)
    results: dict[str, dict] = {}
    for label in wanted:
        settings = replace(configs[label], index_dir=args.out / label)
        results.update(run(settings, questions, label, ("bm25", "dense", "hybrid")))
        print(f"done {label}", file=sys.stderr)
    for report in results.values():
        report.pop("by_kind")
        report.pop("by_lang")
    print(format_table(results))
    print("\nms per query: " + ", ".join(f"{k}={v['ms_per_query']:.1f}" for k, v in results.items()))


if __name__ == "__main__":
    main()
