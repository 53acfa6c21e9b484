"""A conversation's turns, and follow-up questions: «Et en Finlande ?» is searched together
with the turn before it (:func:`chatbot.retrieval.search_with_history`). Text logic only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from chatbot import analysis

# A question with at most this many content words leans on the conversation for its subject.
SHORT_QUESTION = 4


@dataclass(frozen=True)
class Turn:
    """One question of a conversation and what was shown for it: the answer's text ([n]
    markers included) and its id for feedback, or ``refused`` (too long, empty...)."""

    question: str
    answer: str = ""
    answer_id: str | None = None
    refused: bool = False

    @property
    def answered(self) -> bool:
        """An answer was shown (not refused, not stopped half-way): the turn is context for
        the questions after it."""
        return not self.refused and self.answer_id is not None


def asked_before(turns: Sequence[Turn]) -> list[str]:
    """The earlier questions a new one is asked after (oldest first): refused or unfinished
    turns left out, so that one refused question never weighs on the next ones."""
    return [t.question for t in turns if t.answered]


def exchanges(turns: Sequence[Turn]) -> list[tuple[str, str]]:
    """(question, answer) pairs of the answered turns, for a language model."""
    return [(t.question, t.answer) for t in turns if t.answered and t.answer]


def is_short(question: str) -> bool:
    """«Et en Finlande ?», «Qui l'a cofondé ?»: too few words to stand on their own."""
    return len(analysis.analyze(question)) <= SHORT_QUESTION


def previous_question(history: Sequence[str]) -> str:
    """The last non-blank earlier question, else an empty string."""
    return next((h for h in reversed(history) if h.strip()), "")


def follow_up_context(question: str, history: Sequence[str]) -> str:
    """The earlier question a short follow-up leans on, else an empty string."""
    return previous_question(history) if is_short(question) else ""


def fitting_context(previous: str, question: str, limit: int) -> str:
    """``previous``, its spaces collapsed, cut to its last whole words so that
    ``f"{previous} {question}"`` holds at most ``limit`` characters; «» when nothing fits.
    The context only helps the search: a long earlier question is trimmed, never refused."""
    text = " ".join(previous.split())
    budget = limit - len(question) - 1
    if len(text) <= budget:
        return text
    if budget <= 0:
        return ""
    tail = text[-budget:]
    if text[-budget - 1] != " " and " " in tail:
        tail = tail.split(" ", 1)[1]  # no half word
    return tail.strip()
