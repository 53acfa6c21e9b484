"""Fitting the extractive reader's decline model for one embedder (``chatbot reader-fit``).

Every question of the given sets is retrieved and read as the chat reads it. The embedder's
cosines are first calibrated onto the reference scale
(:class:`~chatbot.reader.extractive.Calibration`: the nearest-passage cosines of the questions
get the reference's mean and spread), then a logistic regression learns from the question-level
features whether the articles answer the question. The threshold is chosen **leave one set
out**: each set's probabilities come from a model fitted on the other sets only, and go through
the reader's own decision. Among the thresholds that decline at most 3 points more answerable
questions than the least any threshold does (the stated rules decline some whatever the model
says), the one that quotes the most evidence and declines the most unanswerable questions wins.
The model fitted on every set is returned with it.

Needs scikit-learn (``pip install '.[train]'``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chatbot.errors import UsageError
from chatbot.evaluation import Question, answer_metrics
from chatbot.jsonl import replace_file
from chatbot.reader.extractive import (
    FEATURES,
    IDENTITY,
    MODEL_FILE,
    REFERENCE_EMBEDDER,
    Calibration,
    ReaderModel,
    Reading,
    decide,
    read_models,
    read_passages,
    write_models,
)
from chatbot.reader.values import DEFAULT_ANSWER_SETTINGS
from chatbot.retrieval import Hit, Retriever, search_with_history

# The reference scale: mean and standard deviation of the nearest-passage cosine under
# multilingual-e5-small over the 431 questions of the nine fit sets (measured 2026-12-07).
REFERENCE_SUPPORT = (0.8606, 0.0303)
THRESHOLDS = tuple(round(float(t), 2) for t in np.arange(0.1, 0.81, 0.05))
# The stated rules alone decline some answerable questions (5 % of the fit sets under e5): the
# model may add at most this much to the least it can reach.
MAX_EXTRA_FALSE_DECLINES = 0.03


@dataclass(frozen=True)
class FitReport:
    """The fitted model, the threshold's table (leave-one-set-out) and each set's figures at it."""

    model: ReaderModel
    by_threshold: dict[float, dict[str, float]]
    by_set: dict[str, dict[str, float]]
    support: tuple[float, float]  # raw mean and standard deviation of the nearest-passage cosine


def fit_reader(retriever: Retriever, sets: Mapping[str, Sequence[Question]], c: float = 1.0) -> FitReport:
    """Calibrate, choose the threshold leaving one set out, and fit on every set.

    Raises:
        UsageError: fewer than two sets, or no answerable / unanswerable question among them.
    """
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError as exc:
        raise UsageError("Fitting the reader needs scikit-learn: pip install '.[train]'.") from exc
    if len(sets) < 2:
        raise UsageError("Fitting the reader leaves one set out at a time: give at least two question sets.")
    names = [name for name, questions in sets.items() for _ in questions]
    questions = [q for group in sets.values() for q in group]
    y = np.array([q.answerable for q in questions])
    if y.all() or not y.any():
        raise UsageError("Fitting the reader needs answerable and unanswerable questions.")
    hits = [search_with_history(retriever, q.question, q.history) for q in questions]
    embedder = retriever.settings.model
    raw = [_read(q, h, retriever, IDENTITY).support for q, h in zip(questions, hits, strict=True)]
    calibration = IDENTITY if embedder == REFERENCE_EMBEDDER else Calibration.matching(raw, *REFERENCE_SUPPORT)
    readings = [_read(q, h, retriever, calibration) for q, h in zip(questions, hits, strict=True)]
    x = np.vstack([r.features for r in readings])

    def fitted(rows: np.ndarray):  # type: ignore[no-untyped-def]
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000)).fit(x[rows], y[rows])

    p = np.zeros(len(y))
    groups = np.array(names)
    for name in sets:
        held = groups == name
        train = ~held
        if y[train].any() and not y[train].all():
            p[held] = fitted(np.flatnonzero(train)).predict_proba(x[held])[:, 1]
        else:  # the other sets hold one class only: nothing to learn, nothing declined by the model
            p[held] = 1.0

    def measure(rows: Sequence[int], threshold: float) -> dict[str, float]:
        answers = [decide(readings[i], float(p[i]), DEFAULT_ANSWER_SETTINGS, threshold) for i in rows]
        return answer_metrics([questions[i] for i in rows], answers)

    everything = range(len(questions))
    by_threshold = {t: measure(everything, t) for t in THRESHOLDS}
    least = min(m["abstain_false"] for m in by_threshold.values())
    allowed = [t for t, m in by_threshold.items() if m["abstain_false"] <= least + MAX_EXTRA_FALSE_DECLINES]
    threshold = max(allowed, key=lambda t: (_gain(by_threshold[t]), t))
    by_set = {name: measure(np.flatnonzero(groups == name).tolist(), threshold) for name in sets}
    final = fitted(np.arange(len(y)))
    scaler, logistic = final.steps[0][1], final.steps[1][1]
    model = ReaderModel(
        features=FEATURES,
        mean=tuple(round(float(v), 6) for v in scaler.mean_),
        scale=tuple(round(float(v), 6) for v in scaler.scale_),
        coef=tuple(round(float(v), 6) for v in logistic.coef_[0]),
        intercept=round(float(logistic.intercept_[0]), 6),
        threshold=threshold,
        trained_on=tuple(sets),
        embedder=embedder,
        calibration=calibration,
    )
    return FitReport(model, by_threshold, by_set, (float(np.mean(raw)), float(np.std(raw))))


def _gain(metrics: dict[str, float]) -> float:
    return metrics["answer_evidence_rate"] + metrics["abstain_correct"]


def save_model(model: ReaderModel, path: Path) -> None:
    """Write ``model`` into the models file at ``path``, keeping the other embedders' models.

    Raises:
        UsageError: ``path`` exists and is not a models file.
    """
    models = {}
    if path.is_file():
        try:
            models = read_models(path.read_text("utf-8"))
        except ValueError as exc:
            raise UsageError(f"{path} is not a reader models file ({exc}); choose another --out.") from exc
    models[model.embedder] = model
    replace_file(path, write_models(models.values()).encode("utf-8"))


def _read(question: Question, hits: list[Hit], retriever: Retriever, calibration: Calibration) -> Reading:
    return read_passages(question.question, question.history, hits, retriever, DEFAULT_ANSWER_SETTINGS, calibration)


__all__ = ["MODEL_FILE", "FitReport", "fit_reader", "save_model"]
