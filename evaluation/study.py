"""Every question set × one embedder × the extractive reader, in one process: one table row per set.

Usage: python evaluation/study.py --model embeddinggemma [--index DIR] [--sets A.jsonl ...] [--json OUT]
       [--title-prompt]
Builds (or updates) the index for the model under --index (default /tmp/chatbot-study/<model>),
then measures, per set: retrieval (R@5, MRR@10, hybrid), the extractive answers (evidence held,
first quote holds it, declines of unanswerable / answerable questions) and the answer's latency
(retrieval included, median / p90). Without --sets: every set in evaluation/ but the newest
held-out one (read once, at the end: pass it by name). ``--title-prompt``: passages embedded
with EmbeddingGemma's document prompt naming their article («title: {title} | text: »; by
default «title: none | text: »), an experiment: the product does not do it unless it pays.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from chatbot.answer import answer
from chatbot.backends import build_index
from chatbot.corpus import load_corpus
from chatbot.embedding import SentenceTransformerEmbedder
from chatbot.evaluation import answer_metrics, answer_metrics_by_kind, evaluate_retriever, load_questions
from chatbot.reader import ExtractiveReader
from chatbot.retrieval import Retriever
from chatbot.settings import Settings

HERE = Path(__file__).resolve().parent
HELD_OUT = "session6_holdout.jsonl"  # the held-out set of the stronger-model work: read once, at the end
SETS = sorted(p.name for p in HERE.glob("*.jsonl") if p.name != HELD_OUT)
COLUMNS = ("n", "recall@5", "mrr@10", "bm25_mrr@10", "dense_mrr@10", "answer_evidence_rate", "answer_first_rate",
           "abstain_correct", "abstain_false", "median_ms", "p90_ms")  # fmt: skip


class TitlePrompt(SentenceTransformerEmbedder):
    """Passages (indexed as «title\n\ntext», ``title_in_embedding``) embedded with the model's
    document prompt naming their title; sentences and questions as usual."""

    def __init__(self, name: str, titles: set[str]) -> None:
        super().__init__(name)
        self.titles = titles

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for text in texts:
            title, sep, body = text.partition("\n\n")
            if sep and title in self.titles:
                prompt = f"title: {title} | text: "
                rows.append(self.model.encode([body], prompt=prompt, normalize_embeddings=True)[0])
            else:
                rows.append(super().encode_documents([text])[0])
        return np.asarray(rows, dtype=np.float32)


def measure(retriever: Retriever, path: Path, reader: ExtractiveReader) -> dict[str, object]:
    questions = load_questions(path)
    report = evaluate_retriever(questions, retriever, "hybrid")
    report.pop("per_question", None)
    for mode in ("bm25", "dense"):
        report[f"{mode}_mrr@10"] = evaluate_retriever(questions, retriever, mode)["mrr@10"]  # type: ignore[arg-type]
    answers, times = [], []
    for q in questions:
        started = time.perf_counter()
        answers.append(answer(retriever, q.question, q.history, reader=reader))
        times.append(1000 * (time.perf_counter() - started))
    report.update(answer_metrics(questions, answers))
    report["by_kind_answers"] = answer_metrics_by_kind(questions, answers)
    report["median_ms"] = round(statistics.median(times), 1)
    report["p90_ms"] = round(statistics.quantiles(times, n=10)[-1], 1)
    report["declines"] = {q.id: a.reason for q, a in zip(questions, answers, strict=True) if a.abstained}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=Settings().model)
    parser.add_argument("--index", type=Path)
    parser.add_argument("--sets", nargs="+", default=SETS)
    parser.add_argument("--json", type=Path, help="write every report here")
    parser.add_argument("--title-prompt", action="store_true", help="passages embedded with their title's prompt")
    args = parser.parse_args()
    folder = args.model + ("-title" if args.title_prompt else "")
    settings = Settings(model=args.model, index_dir=args.index or Path("/tmp/chatbot-study") / folder)
    embedder = SentenceTransformerEmbedder(settings.model)
    if args.title_prompt:
        settings = settings.with_(title_in_embedding=True)
        titles = {article.title for article in load_corpus(settings.corpus_dir).articles}
        embedder = TitlePrompt(settings.model, titles)
    started = time.perf_counter()
    build_index(settings, embedder)
    print(f"index ready in {time.perf_counter() - started:.1f} s")
    retriever = Retriever(settings, embedder=embedder)
    reader = ExtractiveReader()
    reports = {}
    print("set".ljust(26) + "".join(c[:8].rjust(9) for c in COLUMNS))
    for name in args.sets:
        report = reports[name] = measure(retriever, HERE / name, reader)
        print(name.ljust(26) + "".join(f"{report.get(c, float('nan')):9.3f}" for c in COLUMNS), flush=True)
    if args.json:
        args.json.write_text(json.dumps(reports, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
