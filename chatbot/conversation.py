"""Follow-up questions: «Et en Finlande ?» is searched together with the turn before it."""

from __future__ import annotations

from collections.abc import Sequence

from chatbot import analysis
from chatbot.retrieval import Hit, Retriever, rrf_fuse
from chatbot.settings import Mode

# A question with at most this many content words leans on the conversation for its subject.
SHORT_QUESTION = 4


def is_short(question: str) -> bool:
    """«Et en Finlande ?», «Qui l'a cofondé ?»: too few words to stand on their own."""
    return len(analysis.analyze(question)) <= SHORT_QUESTION


def previous_question(history: Sequence[str]) -> str:
    """The last non-blank earlier question, else an empty string."""
    return next((h for h in reversed(history) if h.strip()), "")


def follow_up_context(question: str, history: Sequence[str]) -> str:
    """The earlier question a short follow-up leans on, else an empty string."""
    return previous_question(history) if is_short(question) else ""


def search_with_history(
    retriever: Retriever,
    question: str,
    history: Sequence[str] = (),
    *,
    k: int | None = None,
    mode: Mode | None = None,
) -> list[Hit]:
    """Search for ``question`` asked after the earlier questions ``history`` (oldest first).

    The question is searched with the previous one prepended, so pronouns and ellipses get
    their subject, and on its own, so a new topic still wins; the two rankings are fused,
    the contextual one weighing more when the question is short.
    """
    previous = previous_question(history)
    if not previous:
        return retriever.search(question, k=k, mode=mode)
    k = k or retriever.settings.top_k
    depth = max(k, retriever.settings.candidates)
    contextual = retriever.search(f"{previous} {question}", k=depth, mode=mode)
    alone = retriever.search(question, k=depth, mode=mode)
    weights = (1.0, 0.5) if is_short(question) else (1.0, 1.0)
    by_id = {h.chunk.id: h.chunk for h in contextual + alone}
    fused = rrf_fuse(
        [
            ([(h.chunk.id, h.score) for h in contextual], weights[0]),
            ([(h.chunk.id, h.score) for h in alone], weights[1]),
        ],
        retriever.settings.rrf_k,
    )
    return [Hit(by_id[key], score, rank) for rank, (key, score) in enumerate(fused[:k], start=1)]
