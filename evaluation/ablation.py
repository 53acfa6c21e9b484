"""Does each hand rule of the extractive reader pay on questions it was not chosen on?

Usage: python evaluation/ablation.py [--model embeddinggemma] [--index DIR] [--sets A.jsonl ...] [--json OUT]

Every question of the sets is retrieved once; then the reader answers them with everything on
(«all») and with one rule, word list or weight switched off or changed at a time. A rule
pays **out of sample** when, leaving each set out in turn, the choice made on the other sets
(keep it or drop it, by their mean of evidence + first quote + right declines − wrong declines)
also scores at least as well on the set left out. The table prints, per variant, the mean over
the sets of each figure and how many left-out sets the variant wins / loses against «all».
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from study import HELD_OUT, HERE  # type: ignore[import-not-found]

from chatbot import retrieval
from chatbot.evaluation import Question, answer_metrics, load_questions
from chatbot.reader import extractive
from chatbot.reader.extractive import ExtractiveReader
from chatbot.reader.values import DEFAULT_ANSWER_SETTINGS, AnswerSettings
from chatbot.retrieval import Hit, Retriever, search_with_history
from chatbot.settings import Settings

KEYS = ("answer_evidence_rate", "answer_first_rate", "abstain_correct", "abstain_false")


def utility(m: dict[str, float]) -> float:
    return m["answer_evidence_rate"] + m["answer_first_rate"] + m["abstain_correct"] - m["abstain_false"]


@contextlib.contextmanager
def patched(target: object, name: str, value: object) -> Iterator[None]:
    old = getattr(target, name)
    setattr(target, name, value)
    try:
        yield
    finally:
        setattr(target, name, old)


def _no_reading_field(**changes: object) -> Callable[[], contextlib.AbstractContextManager[None]]:
    """A decline rule switched off by clearing what it reads in the Reading."""
    original = extractive.read_passages

    def read(*args: object, **kwargs: object) -> extractive.Reading:
        return replace(original(*args, **kwargs), **changes)  # type: ignore[arg-type]

    return lambda: patched(extractive, "read_passages", read)


def _settings(**changes: object) -> AnswerSettings:
    return replace(DEFAULT_ANSWER_SETTINGS, **changes)  # type: ignore[arg-type]


VARIANTS: dict[str, tuple[AnswerSettings, Callable[[], contextlib.AbstractContextManager[None]]]] = {
    "all": (DEFAULT_ANSWER_SETTINGS, contextlib.nullcontext),
    "no names/count rule": (DEFAULT_ANSWER_SETTINGS, _no_reading_field(names_missing=False)),
    "no year rule": (DEFAULT_ANSWER_SETTINGS, _no_reading_field(year_missing="")),
    "no decline model": (_settings(min_probability=0.0), contextlib.nullcontext),
    "no answers-alone rule": (
        DEFAULT_ANSWER_SETTINGS,
        lambda: patched(extractive, "_answers_alone", lambda reading, sentence: False),
    ),
    "no thread rule": (DEFAULT_ANSWER_SETTINGS, lambda: patched(extractive, "with_its_thread", lambda s: s)),
    "no enrichment bonus": (_settings(enrichment_weight=0.0), contextlib.nullcontext),
    "no lexical share": (_settings(lexical_weight=0.0), contextlib.nullcontext),
    "lexical share 0.05": (_settings(lexical_weight=0.05), contextlib.nullcontext),
    "lexical share 0.15": (_settings(lexical_weight=0.15), contextlib.nullcontext),
    "lexical share 0.25": (_settings(lexical_weight=0.25), contextlib.nullcontext),
    "lexical share 0.5": (_settings(lexical_weight=0.5), contextlib.nullcontext),
    "no passage rank": (_settings(rank_weight=0.0), contextlib.nullcontext),
    "passage rank 0.05": (_settings(rank_weight=0.05), contextlib.nullcontext),
    "margin 0.05": (_settings(margin=0.05), contextlib.nullcontext),
    "margin 0.3": (_settings(margin=0.3), contextlib.nullcontext),
    "one quote": (_settings(max_sentences=1), contextlib.nullcontext),
    "no interview carry": (_settings(question_carry=0.0), contextlib.nullcontext),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=Settings().model)
    parser.add_argument("--index", type=Path)
    fit_sets = [p.name for p in sorted(HERE.glob("*.jsonl")) if p.name not in (HELD_OUT, "smalltalk_tuning.jsonl")]
    parser.add_argument("--sets", nargs="+", default=fit_sets)
    parser.add_argument("--only", nargs="*", help="variants to run (default: all)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    retrieval._QUERY_CACHE = 100_000
    settings = Settings(model=args.model, index_dir=args.index or Path("/tmp/chatbot-study") / args.model)
    retriever = Retriever(settings)
    sets: dict[str, list[Question]] = {name: load_questions(HERE / name) for name in args.sets}
    hits: dict[str, list[list[Hit]]] = {
        name: [search_with_history(retriever, q.question, q.history) for q in questions]
        for name, questions in sets.items()
    }
    results: dict[str, dict[str, dict[str, float]]] = {}
    for label, (answer_settings, context) in VARIANTS.items():
        if args.only and label != "all" and label not in args.only:
            continue
        reader = ExtractiveReader(answer_settings)
        with context():
            results[label] = {
                name: answer_metrics(questions, [reader.read(q.question, q.history, h, retriever)
                                                 for q, h in zip(questions, hits[name], strict=True)])
                for name, questions in sets.items()
            }  # fmt: skip
        report(label, results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")


def report(label: str, results: dict[str, dict[str, dict[str, float]]]) -> None:
    """One row: the mean of each figure over the sets, and the leave-one-set-out verdict
    against «all»: for each set left out, the choice the other sets make, scored on it."""
    rows = results[label]
    means = {k: sum(m[k] for m in rows.values()) / len(rows) for k in KEYS}
    verdict = ""
    if label != "all":
        base = results["all"]
        gain = 0.0
        for held in rows:
            others = [s for s in rows if s != held]
            prefer = sum(utility(rows[s]) - utility(base[s]) for s in others) > 0
            chosen = rows if prefer else base
            gain += utility(chosen[held]) - utility(base[held])
        verdict = f"  out-of-sample gain of choosing it where the others prefer it: {gain / len(rows):+.4f}"
    print(f"{label:28}" + "".join(f"{k.replace('answer_', '')[:12]:>14} {means[k]:.3f}" for k in KEYS) + verdict,
          flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
