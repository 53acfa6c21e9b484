"""Calibrate the abstention thresholds on a question set.

Usage: python evaluation/calibrate.py [--questions FILE ...]
Computes every question's support (see chatbot.answer) with abstention off, then, per
language, the lowest threshold that declines every unanswerable question of that language,
how many answerable questions it would wrongly decline, and what the thresholds in force
(AnswerSettings.min_support) do on the same questions. Paste chosen thresholds into
AnswerSettings.min_support.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from chatbot.answer import AnswerSettings, answer
from chatbot.evaluation import Question, load_questions
from chatbot.retrieval import Retriever
from chatbot.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=Path, nargs="+", default=[Path("evaluation/questions.jsonl")])
    args = parser.parse_args()
    retriever = Retriever(Settings())
    questions = [q for path in args.questions for q in load_questions(path)]
    in_force = dict(AnswerSettings().min_support)
    never = AnswerSettings(min_support=(("fr", float("-inf")), ("en", float("-inf"))))
    rows = [(q, answer(retriever, q.question, q.history, settings=never).score) for q in questions]
    for lang in sorted({q.lang for q in questions}):
        in_lang = [(q, s) for q, s in rows if q.lang == lang]
        unanswerable = [s for q, s in in_lang if not q.answerable]
        answerable = sorted(s for q, s in in_lang if q.answerable)
        if not unanswerable:
            print(f"{lang}: no unanswerable question to calibrate on")
            continue
        threshold = round(max(unanswerable) + 0.001, 3)
        _, wrong = _outcome(in_lang, threshold)
        print(
            f"{lang}: threshold {threshold} declines {len(unanswerable)}/{len(unanswerable)} unanswerable, "
            f"{len(wrong)}/{len(answerable)} answerable wrongly ({', '.join(wrong)}); "
            f"lowest answerable supports: {[round(s, 3) for s in answerable[:5]]}"
        )
        current = in_force.get(lang, 0.0)
        passed, declined = _outcome(in_lang, current)
        print(
            f"  in force {current}: declines {len(unanswerable) - len(passed)}/{len(unanswerable)} unanswerable "
            f"(answers {', '.join(passed) or 'none'}), {len(declined)}/{len(answerable)} answerable wrongly "
            f"({', '.join(declined) or 'none'})"
        )


def _outcome(rows: list[tuple[Question, float]], threshold: float) -> tuple[list[str], list[str]]:
    """Unanswerable questions a threshold lets through, and answerable ones it declines (lowest
    support first)."""
    passed = [q.id for q, s in rows if not q.answerable and s >= threshold]
    declined = [q.id for q, s in sorted(rows, key=lambda row: row[1]) if q.answerable and s < threshold]
    return passed, declined


if __name__ == "__main__":
    main()
