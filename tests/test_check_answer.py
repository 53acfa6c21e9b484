"""The check of written answers (:func:`chatbot.llm.check_answer`): which claims keep which quote."""

from __future__ import annotations

from chatbot.answer import Citation
from chatbot.chunking import Chunk
from chatbot.llm import UNSUPPORTED, Excerpt, check_answer
from chatbot.retrieval import Hit, Retriever

QUESTION = "Quel est le plafond de l'imposition sur les profits à Hong Kong ?"


def _hits(retriever: Retriever) -> tuple[list[Hit], int, int]:
    """Three passages for the question, the number of the one holding the fact, and another."""
    hits = retriever.search(QUESTION, k=3)
    fact = next(i for i, h in enumerate(hits, start=1) if "16,5%" in h.chunk.text)
    return hits, fact, next(i for i in range(1, 4) if i != fact)


def _check(text: str, hits: list[Hit]) -> tuple[str, list[Citation], int]:
    return check_answer(text, [Excerpt.whole(hit) for hit in hits], 0.5)


def test_check_answer_renumbers_and_keeps_only_supported_citations(retriever: Retriever) -> None:
    hits, fact, other = _hits(retriever)
    text, citations, dropped = _check(
        f"L'imposition est plafonnée à 16,5% sur les profits [{fact}][{other}]. Rien à voir ici [7].", hits
    )
    assert text == f"L'imposition est plafonnée à 16,5% sur les profits [1]. Rien à voir ici{UNSUPPORTED}."
    assert dropped == 2 and [c.n for c in citations] == [1]
    assert citations[0].quote in citations[0].text


def test_check_answer_credits_uncited_claims_and_moves_late_markers(retriever: Retriever) -> None:
    hits, fact, wrong = _hits(retriever)
    text, citations, dropped = _check(
        f"L'imposition est plafonnée à 16,5% sur les profits. [{wrong}] Est-ce plafonné ? Les licornes volent.", hits
    )
    # Cited to a passage that does not hold it: credited to the one that does; the echoed
    # question is left out; the unsupported claim is marked.
    assert text == f"L'imposition est plafonnée à 16,5% sur les profits [1]. Les licornes volent{UNSUPPORTED}."
    assert dropped == 1 and citations[0].chunk_id == hits[fact - 1].chunk.id and citations[0].is_valid()
    assert "16,5%" in citations[0].quote  # the quote holds the claim's number
    wrong_number, kept, _ = _check(f"L'imposition est plafonnée à 99% sur les profits [{fact}].", hits)
    assert wrong_number == f"L'imposition est plafonnée à 99% sur les profits{UNSUPPORTED}." and kept == []


def test_a_claim_stitched_from_words_of_distant_sentences_is_not_supported() -> None:
    text = (
        "Roland Berger a publié une étude. La météo était clémente ce jour-là. "
        "Les chats dorment beaucoup. Seulement 30% des PME sont sur les réseaux sociaux."
    )
    hit = Hit(Chunk(id="a:0", article_id="a", article_title="T", position=0, start=0, end=len(text), text=text), 1.0, 1)
    invented, kept, _ = _check("Roland Berger utilise les réseaux sociaux [1].", [hit])
    assert kept == [] and invented.endswith(f"{UNSUPPORTED}.")
    # Two sentences in a row may support one claim together: the quote spans both.
    _joined, kept, _ = _check("Les chats dorment et 30% des PME sont sur les réseaux [1].", [hit])
    assert kept and kept[0].quote == "Les chats dorment beaucoup. Seulement 30% des PME sont sur les réseaux sociaux."
