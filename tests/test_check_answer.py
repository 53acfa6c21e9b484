"""The check of written answers (:func:`chatbot.reader.check.check_answer`): which claims keep which quote."""

from __future__ import annotations

import pytest

from chatbot.answer import Citation
from chatbot.chunking import Chunk
from chatbot.reader.check import check_answer, copies_its_quotes, says_not_found
from chatbot.reader.prompt import Excerpt
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
    # The unsupported claim is removed, not shown marked: a wrong sentence never carries an [n].
    assert text == "L'imposition est plafonnée à 16,5% sur les profits [1]."
    assert dropped == 2 and [c.n for c in citations] == [1]
    assert citations[0].quote in citations[0].text


def test_check_answer_credits_uncited_claims_and_moves_late_markers(retriever: Retriever) -> None:
    hits, fact, wrong = _hits(retriever)
    text, citations, dropped = _check(
        f"L'imposition est plafonnée à 16,5% sur les profits. [{wrong}] Est-ce plafonné ? Les licornes volent.", hits
    )
    # Cited to a passage that does not hold it: credited to the one that does; the echoed
    # question is left out; the unsupported claim is removed.
    assert text == "L'imposition est plafonnée à 16,5% sur les profits [1]."
    assert dropped == 1 and citations[0].chunk_id == hits[fact - 1].chunk.id and citations[0].is_valid()
    assert "16,5%" in citations[0].quote  # the quote holds the claim's number
    wrong_number, kept, _ = _check(f"L'imposition est plafonnée à 99% sur les profits [{fact}].", hits)
    assert wrong_number == "" and kept == []


def test_a_claim_stitched_from_words_of_distant_sentences_is_not_supported() -> None:
    text = (
        "Roland Berger a publié une étude. La météo était clémente ce jour-là. "
        "Les chats dorment beaucoup. Seulement 30% des PME sont sur les réseaux sociaux."
    )
    hit = Hit(Chunk(id="a:0", article_id="a", article_title="T", position=0, start=0, end=len(text), text=text), 1.0, 1)
    invented, kept, _ = _check("Roland Berger utilise les réseaux sociaux [1].", [hit])
    assert kept == [] and invented == ""
    # Two sentences in a row may support one claim together: the quote spans both.
    _joined, kept, _ = _check("Les chats dorment et 30% des PME sont sur les réseaux [1].", [hit])
    assert kept and kept[0].quote == "Les chats dorment beaucoup. Seulement 30% des PME sont sur les réseaux sociaux."


def _one_passage(text: str, title: str = "T") -> list[Hit]:
    chunk = Chunk(id="a:0", article_id="a", article_title=title, position=0, start=0, end=len(text), text=text)
    return [Hit(chunk, 1.0, 1)]


def test_a_figure_given_to_another_named_thing_is_removed() -> None:
    hits = _one_passage("À Hong Kong, l'impôt sur les profits est plafonné à 16,5%. Le climat y est humide.")
    # The quote holds the figure and the words, but about Hong Kong, not Singapour.
    text, kept, _ = _check("À Singapour, l'impôt sur les profits est plafonné à 16,5% [1].", hits)
    assert kept == [] and text == ""
    text, kept, _ = _check("À Hong Kong, l'impôt sur les profits est plafonné à 16,5% [1].", hits)
    assert len(kept) == 1 and text.endswith("[1].")


def test_a_claim_must_stand_in_a_quote_about_the_question_subject() -> None:
    hits = _one_passage("À Hong Kong, l'impôt sur les profits est plafonné à 16,5%. Le climat y est humide.")
    about_macao = "Quel est le plafond de l'impôt sur les profits à Macao ?"
    text, kept, _ = check_answer("L'impôt sur les profits est plafonné à 16,5% [1].", [Excerpt.whole(hits[0])], 0.5,
                                 about_macao)  # fmt: skip
    assert kept == [] and text == ""
    about_hong_kong = "Quel est le plafond de l'impôt sur les profits à Hong Kong ?"
    text, kept, _ = check_answer("L'impôt sur les profits est plafonné à 16,5% [1].", [Excerpt.whole(hits[0])], 0.5,
                                 about_hong_kong)  # fmt: skip
    assert len(kept) == 1 and "16,5%" in kept[0].quote


def test_numbered_lists_keep_only_checked_items_without_tags() -> None:
    hits = _one_passage("Seulement 30% des PME sont sur les réseaux sociaux. La moitié des PME n'a pas de site web.")
    written = (
        "Voici les chiffres :\n1. Seulement 30% des PME sont sur les réseaux sociaux [1].\n"
        "2. 90% des PME vendent en ligne [1]."
    )
    text, kept, _ = _check(written, hits)
    assert text == "Seulement 30% des PME sont sur les réseaux sociaux [1]."
    assert [c.quote for c in kept] == ["Seulement 30% des PME sont sur les réseaux sociaux."]
    assert "non vérifié" not in text


@pytest.mark.parametrize(
    ("written", "declines"),
    [
        ("Les passages ne précisent pas qui a fondé Tencent.", True),
        ("Aucune information sur ce point dans les articles.", True),
        ("The passages do not mention the founder.", True),
        ("Tencent a été fondée en 1998 [1].", False),
        ("Les PME ne parlent pas assez de leur marque sur le web [1].", False),
    ],
)
def test_a_model_saying_the_passages_do_not_answer_is_read_as_a_decline(written: str, declines: bool) -> None:
    assert says_not_found(written) is declines


def test_a_name_half_given_by_the_quote_or_a_year_it_does_not_give_is_refused() -> None:
    hits = _one_passage(
        "Stéphane Pallez, CEO de La Française des Jeux, publie sur LinkedIn. Les fonds ont levé 230 milliards en 2015."
    )
    excerpt = [Excerpt.whole(hits[0])]
    # «CEO of Huawei»: the quote gives «CEO» but not Huawei.
    text, kept, _ = check_answer("The CEO of Huawei is Stéphane Pallez [1].", excerpt, 0.5, "Who is the CEO of Huawei?")
    assert kept == [] and text == ""
    # Asked for 2016, the quote is about 2015.
    asked = "Combien les fonds ont-ils levé en 2016 ?"
    text, kept, _ = check_answer("Les fonds ont levé 230 milliards [1].", excerpt, 0.5, asked)
    assert kept == [] and text == ""
    text, kept, _ = check_answer("Les fonds ont levé 230 milliards [1].", excerpt, 0.5, asked.replace("2016", "2015"))
    assert len(kept) == 1 and "2015" in kept[0].quote


def test_a_share_does_not_answer_a_count() -> None:
    hits = _one_passage("Plus de 79% des entreprises interrogées par Hinge déclarent avoir gagné en visibilité.")
    excerpt = [Excerpt.whole(hits[0])]
    text, kept, _ = check_answer("79% [1]", excerpt, 0.5, "Combien d'entreprises Hinge a-t-il interrogées ?")
    assert kept == [] and text == ""
    text, kept, _ = check_answer("79% [1]", excerpt, 0.5, "Quelle part des entreprises a gagné en visibilité ?")
    assert len(kept) == 1


def test_an_answer_that_only_copies_its_quotes_is_known() -> None:
    hits = _one_passage(
        "L’image de marque se trouve-t-elle rehaussée ? Bien au contraire, et le journaliste le premier d’en "
        "témoigner. DJI emploie maintenant 8000 personnes dans le monde."
    )
    excerpt = [Excerpt.whole(hits[0])]
    # A whole sentence of the passage, word for word: the quote says it as well.
    copied, kept, _ = check_answer("Bien au contraire, et le journaliste le premier d'en témoigner [1].", excerpt, 0.5)
    assert len(kept) == 1 and copies_its_quotes(copied, kept)
    most, kept, _ = check_answer("DJI emploie maintenant 8000 personnes dans le monde [1].", excerpt, 0.5)
    assert len(kept) == 1 and copies_its_quotes(most, kept)
    # A short piece of the quote is an answer; so is a sentence in the model's own words.
    piece, kept, _ = check_answer("8000 personnes [1].", excerpt, 0.5, "Combien de personnes DJI emploie-t-il ?")
    assert len(kept) == 1 and not copies_its_quotes(piece, kept)
    written, kept, _ = check_answer("DJI compte 8000 salariés [1].", excerpt, 0.5)
    assert len(kept) == 1 and not copies_its_quotes(written, kept)
    assert not copies_its_quotes(f"{most} {written}", kept)


def test_a_claim_without_the_asked_kind_of_fact_is_removed() -> None:
    hits = _one_passage(
        "BYD est né en 1995 et fabrique des voitures électriques. Le climat y est humide. "
        "Les fonds ont levé 230 milliards de dollars."
    )
    excerpt = [Excerpt.whole(hits[0])]
    # Asked a year, the claim gives none: it answers beside the question.
    text, kept, _ = check_answer("BYD fabrique des voitures électriques [1].", excerpt, 0.5, "Quand BYD est-il né ?")
    assert kept == [] and text == ""
    text, kept, _ = check_answer("BYD est né en 1995 [1].", excerpt, 0.5, "Quand BYD est-il né ?")
    assert len(kept) == 1
    # A count: the quote (or the claim) must say what is counted, not only hold a number.
    asked = "Combien de magasins BYD a-t-il ouverts ?"
    text, kept, _ = check_answer("230 milliards de dollars [1].", excerpt, 0.5, asked)
    assert kept == [] and text == ""
    text, kept, _ = check_answer("230 milliards [1].", excerpt, 0.5, "Combien de dollars les fonds ont-ils levés ?")
    assert len(kept) == 1


def test_a_claim_that_only_repeats_the_question_is_removed() -> None:
    hits = _one_passage("Je me focalise sur un événement déroulé récemment dans une ville de province.")
    question = "Dans quelle ville de province s'est tenu l'événement de l'association ?"
    text, kept, _ = check_answer("L'événement s'est tenu dans une ville de province [1].", [Excerpt.whole(hits[0])],
                                 0.5, question)  # fmt: skip
    assert kept == [] and text == ""
    # A word the question does not have is an answer (here, a month).
    hits = _one_passage("Laurent a lancé sa brosse cet été. Les ventes en ligne ont démarré dès juillet.")
    text, kept, _ = check_answer("Les ventes en ligne ont commencé en juillet [1].", [Excerpt.whole(hits[0])], 0.5,
                                 "En quel mois les ventes en ligne ont-elles commencé ?")  # fmt: skip
    assert len(kept) == 1 and "juillet" in text
