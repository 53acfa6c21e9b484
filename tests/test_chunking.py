from pathlib import Path

import pytest

from chatbot.chunking import chunk_article, sentence_spans
from chatbot.corpus import Article, load_corpus
from chatbot.settings import Settings

from .conftest import REPO

TEXT = (
    "Le numérique est devenu une évidence. Les consommateurs sont connectés ! Et les marques ?\n\n"
    "Deuxième paragraphe, assez long pour être découpé en plusieurs morceaux ; il parle de LinkedIn, "
    "de Twitter et de Facebook.\nUne ligne seule.\n\n" + "Une phrase de remplissage. " * 20
)


def _article(text: str = TEXT) -> Article:
    return Article(id="a", title="Titre", text=text, path=Path("a.md"))


def test_offsets_reproduce_every_chunk_exactly() -> None:
    for article in load_corpus(REPO / "corpus").articles:
        chunks = chunk_article(article, 300, 60)
        assert chunks
        for chunk in chunks:
            assert article.text[chunk.start : chunk.end] == chunk.text


def test_chunks_respect_the_size_and_cover_the_article() -> None:
    article = _article()
    chunks = chunk_article(article, 120, 20)
    assert all(len(c.text) <= 120 for c in chunks)
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    non_space = {i for i, ch in enumerate(article.text) if not ch.isspace()}
    assert non_space <= covered


def test_chunks_break_at_sentence_ends_when_they_can() -> None:
    chunks = chunk_article(_article(), 120, 0)
    assert chunks[0].text == "Le numérique est devenu une évidence. Les consommateurs sont connectés ! Et les marques ?"
    assert [c.text[-1] for c in chunks] == ["?", ";", "."] + ["."] * (len(chunks) - 3)  # sentence or clause ends


def test_ids_positions_and_article_are_stable_across_runs() -> None:
    first = chunk_article(_article(), 120, 20)
    second = chunk_article(_article(), 120, 20)
    assert first == second
    assert [c.id for c in first] == [f"a:{i}" for i in range(len(first))]
    assert {(c.article_id, c.article_title) for c in first} == {("a", "Titre")}


def test_indexed_text_carries_the_title_when_asked() -> None:
    chunk = chunk_article(_article(), 120, 20)[0]
    assert chunk.indexed_text(True) == "Titre\n\n" + chunk.text
    assert chunk.indexed_text(False) == chunk.text


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("Selon M. Dupont, 88 % des PME n’ont pas de site. Le reste suit.",
         ["Selon M. Dupont, 88 % des PME n’ont pas de site.", "Le reste suit."]),
        ("Mme Martin et le Dr. Li l’ont dit. MM. Durand aussi.",
         ["Mme Martin et le Dr. Li l’ont dit.", "MM. Durand aussi."]),
        ("Il cite p. ex. Twitter. C’est tout.", ["Il cite p. ex. Twitter.", "C’est tout."]),
        ("Né en 52 av. J.-C. il régna. Puis vint un autre.", ["Né en 52 av. J.-C. il régna.", "Puis vint un autre."]),
        ("Kaporal Group S.A. emploie 300 salariés. Elle vend.",
         ["Kaporal Group S.A. emploie 300 salariés.", "Elle vend."]),
        ("Voir le plan B.\nPuis le C.", ["Voir le plan B.", "Puis le C."]),  # a line end still ends it
        ("Il vit à Paris etc. Puis à Lyon.", ["Il vit à Paris etc.", "Puis à Lyon."]),
    ],
)  # fmt: skip
def test_a_period_after_an_abbreviation_or_an_initial_does_not_end_the_sentence(
    text: str, sentences: list[str]
) -> None:
    assert [text[start:end] for start, end in sentence_spans(text)] == sentences


def test_a_quote_keeps_its_speaker(settings: Settings) -> None:
    from chatbot.answer import answer
    from chatbot.backends import build_index
    from chatbot.retrieval import Retriever

    from .conftest import OPEN, FakeEmbedder

    (settings.corpus_dir / "pme.md").write_text(
        "# Les PME en ligne\n\nSelon M. Dupont, 88 % des PME n’ont pas de site web. Elles perdent des clients.",
        encoding="utf-8",
    )
    build_index(settings, FakeEmbedder())
    result = answer(
        Retriever(settings, embedder=FakeEmbedder()), "Quelle part des PME n’a pas de site web ?", settings=OPEN
    )
    assert any(c.quote.startswith("Selon M. Dupont, 88 %") for c in result.citations)
