"""Train the extractive reader's decline model and choose its threshold.

Each question of the tuning sets is retrieved and read as the chat reads it
(``chatbot.reader.extractive.read_passages``); a logistic regression learns, from the question-level
features, whether the articles answer it (a question with evidence) or not. Repeated
stratified cross-validation gives every question a probability from models that never saw
it; those probabilities go through the reader's own decision (``chatbot.reader.extractive.decide``) to
measure answers and abstentions at each threshold. The model fitted on every question is
written to ``chatbot/reader_model.json`` with the chosen threshold.

Usage: python evaluation/train_reader.py [--questions A.jsonl B.jsonl ...] [--threshold T] [--dry-run]
Never pass the held-out set (evaluation/reader_holdout.jsonl): it is read once, at the end.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from chatbot.answer import DEFAULT_ANSWER_SETTINGS
from chatbot.conversation import search_with_history
from chatbot.evaluation import Question, answer_metrics, load_questions
from chatbot.reader.extractive import FEATURES, ReaderModel, Reading, decide, read_passages
from chatbot.retrieval import Retriever
from chatbot.settings import Settings

DEFAULT_SETS = ("evaluation/questions.jsonl", "evaluation/holdout.jsonl", "evaluation/reader_tuning.jsonl")
MODEL_PATH = Path(__file__).resolve().parent.parent / "chatbot" / "reader_model.json"
THRESHOLDS = tuple(round(float(t), 2) for t in np.arange(0.2, 0.81, 0.05))
MAX_FALSE_DECLINES = 0.05  # the bound on answerable questions declined


def out_of_fold(x: np.ndarray, y: np.ndarray, c: float, repeats: int = 5) -> np.ndarray:
    """Each question's probability, averaged over ``repeats`` 5-fold splits that leave it out."""
    p = np.zeros(len(y))
    for seed in range(repeats):
        for train, test in StratifiedKFold(5, shuffle=True, random_state=seed).split(x, y):
            p[test] += fit(x[train], y[train], c).predict_proba(x[test])[:, 1] / repeats
    return p


def fit(x: np.ndarray, y: np.ndarray, c: float) -> Pipeline:
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000)).fit(x, y)


def measure(questions: list[Question], readings: list[Reading], p: np.ndarray, threshold: float) -> dict[str, float]:
    answers = [decide(r, float(p[i]), DEFAULT_ANSWER_SETTINGS, threshold) for i, r in enumerate(readings)]
    report = answer_metrics(questions, answers)
    for kind in ("unanswerable_named", "keyword"):
        group = [a.abstained for q, a in zip(questions, answers, strict=True) if q.kind == kind]
        report[f"{kind}_declined"] = round(sum(group) / max(len(group), 1), 3)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", nargs="+", default=list(DEFAULT_SETS))
    parser.add_argument("--threshold", type=float, help="decline threshold to write (default: the chosen one)")
    parser.add_argument("--C", type=float, default=1.0, help="inverse regularisation strength")
    parser.add_argument("--dry-run", action="store_true", help="measure only; do not write the model")
    args = parser.parse_args()
    if any("reader_holdout" in p for p in args.questions):
        parser.error("the held-out set is not for training")

    retriever = Retriever(Settings())
    questions = [q for path in args.questions for q in load_questions(Path(path))]
    readings = [
        read_passages(q.question, q.history, search_with_history(retriever, q.question, q.history), retriever,
                      DEFAULT_ANSWER_SETTINGS)
        for q in questions
    ]  # fmt: skip
    x = np.vstack([r.features for r in readings])
    y = np.array([q.answerable for q in questions])
    print(f"{len(questions)} questions: {int(y.sum())} answerable, {int((~y).sum())} not")
    p = out_of_fold(x, y, args.C)
    print(f"{'threshold':>9} {'evidence':>9} {'declined':>9} {'named':>6} {'false':>6} {'keyword':>8}")
    results = {}
    for t in THRESHOLDS:
        m = results[t] = measure(questions, readings, p, t)
        print(
            f"{t:>9.2f} {m['answer_evidence_rate']:>9.3f} {m['abstain_correct']:>9.3f}"
            f" {m['unanswerable_named_declined']:>6.3f} {m['abstain_false']:>6.3f} {m['keyword_declined']:>8.3f}"
        )
    # Within the bound on wrong declines, evidence quoted and right declines count alike.
    allowed = [t for t, m in results.items() if m["abstain_false"] <= MAX_FALSE_DECLINES] or [min(THRESHOLDS)]
    threshold = args.threshold or max(
        allowed, key=lambda t: (results[t]["answer_evidence_rate"] + results[t]["abstain_correct"], t)
    )
    print(f"threshold: {threshold} (best evidence + declines with at most {MAX_FALSE_DECLINES:.0%} wrongly declined)")
    final = fit(x, y, args.C)
    scaler, logistic = final.steps[0][1], final.steps[1][1]
    for name, weight in sorted(zip(FEATURES, logistic.coef_[0], strict=True), key=lambda item: -abs(item[1])):
        print(f"  {name:<22} {weight:+.3f}")
    model = ReaderModel(
        features=FEATURES,
        mean=tuple(round(float(v), 6) for v in scaler.mean_),
        scale=tuple(round(float(v), 6) for v in scaler.scale_),
        coef=tuple(round(float(v), 6) for v in logistic.coef_[0]),
        intercept=round(float(logistic.intercept_[0]), 6),
        threshold=float(threshold),
        trained_on=tuple(Path(path).name for path in args.questions),
    )
    if not args.dry_run:
        MODEL_PATH.write_text(model.to_json() + "\n", encoding="utf-8")
        print(f"wrote {MODEL_PATH}")


if __name__ == "__main__":
    main()
