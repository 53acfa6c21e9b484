"""250 questions in one process: memory settles instead of growing with every question."""

from __future__ import annotations

import pytest

from chatbot.answer import answer
from chatbot.bench import rss_mb
from chatbot.evaluation import load_questions
from chatbot.retrieval import Retriever

from .conftest import REPO

pytestmark = pytest.mark.integration


def test_250_questions_do_not_grow_memory(real_retriever: Retriever) -> None:
    questions = load_questions(REPO / "evaluation" / "questions.jsonl")
    # Every question different (a numbered variant), so caches fill up and must stay bounded.
    picked = [questions[i % len(questions)] for i in range(250)]
    asked = [(f"{q.question} (n° {i})", list(q.history)) for i, q in enumerate(picked)]
    rss = {"start": rss_mb()}
    for i, (question, history) in enumerate(asked, start=1):
        assert answer(real_retriever, question, history).text
        if i in (100, 250):
            rss[str(i)] = rss_mb()
    print("\nRSS (MB) at the start, after 100 and after 250 questions:", {k: round(v) for k, v in rss.items()})
    # The first questions fill the bounded caches and the allocator's pools; after that, flat
    # (150 more questions: 10 MB allowed, where a leak of 70 KB a question would show).
    assert rss["250"] - rss["100"] < 10, rss
