import json
from dataclasses import replace
from pathlib import Path

import pytest

from chatbot.answer import Answer, Citation, split_sentences, with_citations
from chatbot.chunking import Chunk, chunk_article
from chatbot.corpus import Article, load_corpus
from chatbot.errors import ChatbotError
from chatbot.evaluation import (
    Question,
    answer_metrics,
    citation_article_rate,
    citation_matches_article,
    evaluate,
    load_questions,
    mrr_at,
    ndcg_at,
    normalize,
    recall_at,
    relevance,
)
from chatbot.retrieval import Hit

from .conftest import REPO


def _chunk(text: str, n: int = 0) -> Chunk:
    return Chunk(id=f"a:{n}", article_id="a", article_title="T", position=n, start=0, end=len(text), text=text)


def test_normalize_folds_case_quotes_spaces_and_compatibility_forms() -> None:
    assert normalize("L’Entreprise  «\u00a0ok\u00a0»\n ﬁn") == normalize('l\'entreprise " ok " fin')


def test_relevance_is_decided_by_text() -> None:
    chunks = [_chunk("Rien ici."), _chunk("88 % des entreprises ne sont pas sur LinkedIn.")]
    assert relevance(chunks, ["88 % des entreprises ne sont pas sur Linkedin"]) == [False, True]


def test_metrics_match_hand_computed_values() -> None:
    ranked = [False, True, False, True]
    assert recall_at(ranked, 1) == 0.0
    assert recall_at(ranked, 3) == 1.0
    assert mrr_at(ranked, 10) == 0.5
    assert mrr_at(ranked, 1) == 0.0
    # dcg = 1/log2(3) + 1/log2(5) = 0.6309 + 0.4307; ideal with 2 relevant = 1 + 0.6309
    assert ndcg_at(ranked, 10, 2) == pytest.approx((0.63093 + 0.43068) / 1.63093, abs=1e-4)
    assert ndcg_at([True, False], 10, 1) == 1.0
    assert ndcg_at([False], 10, 0) == 0.0


def test_evaluate_averages_by_kind_and_language_and_skips_unanswerable() -> None:
    chunks = [_chunk("alpha beta", 0), _chunk("gamma delta", 1)]
    questions = [
        Question("q1", "a?", ("alpha",), "fr", "paraphrase"),
        Question("q2", "g?", ("gamma",), "en", "keyword"),
        Question("q3", "none?", (), "fr", "unanswerable"),
    ]
    report = evaluate(questions, lambda q: chunks, chunks)
    assert report["n"] == 2
    assert report["recall@1"] == 0.5 and report["mrr@10"] == 0.75
    assert report["by_lang"]["en"]["mrr@10"] == 0.5
    assert report["by_kind"]["paraphrase"]["recall@1"] == 1.0
    assert report["unreachable"] == []


def test_a_bad_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"id": "q1", "question": "x", "evidence": []}\n{"id": "q2"}\n', encoding="utf-8")
    with pytest.raises(ChatbotError, match=r"q.jsonl:2"):
        load_questions(path)


def test_the_held_out_set_is_well_formed_and_distinct() -> None:
    held_out = load_questions(REPO / "evaluation" / "holdout.jsonl")
    project = load_questions(REPO / "evaluation" / "questions.jsonl")
    assert len(held_out) >= 40 and len({q.id for q in held_out}) == len(held_out)
    assert not {q.id for q in held_out} & {q.id for q in project}
    assert not {normalize(q.question) for q in held_out} & {normalize(q.question) for q in project}
    assert {q.lang for q in held_out} == {"fr", "en"} and sum(not q.answerable for q in held_out) >= 4
    corpus = " ".join(normalize(a.text) for a in load_corpus(REPO / "corpus").articles)
    for q in held_out:
        for span in q.evidence:
            assert normalize(span) in corpus, f"{q.id}: evidence not verbatim in any article: {span!r}"


def test_the_project_question_set_is_well_formed() -> None:
    questions = load_questions(REPO / "evaluation" / "questions.jsonl")
    assert len(questions) >= 60
    assert len({q.id for q in questions}) == len(questions)
    assert sum(not q.answerable for q in questions) >= 5
    assert sum(bool(q.history) for q in questions) >= 8
    assert {q.lang for q in questions} == {"fr", "en"}
    corpus = load_corpus(REPO / "corpus")
    texts = {a.id: normalize(a.text) for a in corpus.articles}
    covered = set()
    for q in questions:
        for span in q.evidence:
            found = [aid for aid, text in texts.items() if normalize(span) in text]
            assert found, f"{q.id}: evidence not verbatim in any article: {span!r}"
            covered.update(found)
    assert covered == set(texts), "every article has questions"
    for line in (REPO / "evaluation" / "questions.jsonl").read_text(encoding="utf-8").splitlines():
        assert set(json.loads(line)) <= {"id", "question", "evidence", "lang", "kind", "history"}


ARTICLE = Article(
    id="chine",
    title="L’entrepreneuriat en Chine",
    text=(
        "Hong Kong plafonne l’imposition à 16,5% sur les profits. Il n’existe pas de TVA.\n\n"
        "Shenzhen consacre 4,3% de son PIB à la recherche et au développement. "
        "Un mois à Shenzhen équivaut à trois mois ailleurs."
    ),
    path=Path("chine.md"),
)


def _cited(article: Article = ARTICLE) -> Citation:
    """A citation built the way answers build theirs: a sentence of a passage that does not start
    the article (so the passage's offset in the article counts)."""
    chunk = next(c for c in chunk_article(article, 80, 0) if "4,3%" in c.text)
    assert chunk.start > 0
    hit = Hit(chunk, 1.0, 1)
    sentence = next(s for s in split_sentences(hit, 10) if "4,3%" in s.text)
    (citation,) = with_citations("Que consacre Shenzhen à la recherche ?", [sentence], (), 1.0, "fr", [hit]).citations
    return citation


def test_a_citation_matches_the_article_at_its_offsets_and_a_shifted_one_does_not() -> None:
    citation = _cited()
    assert citation_matches_article(citation, ARTICLE.text)
    assert ARTICLE.text[citation.chunk_start + citation.quote_start :].startswith("Shenzhen consacre 4,3%")
    # The passage placed one character later in the article: the quote and the passage text it
    # carries still agree (so is_valid cannot see it), but the article view would mark other words.
    shifted = replace(citation, chunk_start=citation.chunk_start + 1, chunk_end=citation.chunk_end + 1)
    assert shifted.is_valid()
    assert not citation_matches_article(shifted, ARTICLE.text)
    earlier = replace(citation, chunk_start=citation.chunk_start - 1, chunk_end=citation.chunk_end - 1)
    assert not citation_matches_article(earlier, ARTICLE.text)


def test_a_citation_of_an_index_built_from_another_text_does_not_match_the_article() -> None:
    citation = _cited()
    edited = "Un paragraphe ajouté.\n\n" + ARTICLE.text  # the article edited, the index not rebuilt
    assert citation.is_valid() and not citation_matches_article(citation, edited)
    assert not citation_matches_article(citation, ARTICLE.text[: citation.chunk_end - 1])  # cut short
    outside = replace(citation, quote_end=citation.chunk_end - citation.chunk_start + 1)  # past its passage
    assert not citation_matches_article(outside, ARTICLE.text)


def test_citation_article_rate_matches_a_hand_count() -> None:
    good = _cited()
    shifted = replace(good, chunk_start=good.chunk_start + 1, chunk_end=good.chunk_end + 1)
    elsewhere = replace(good, article_id="absent")
    answers = [
        Answer("q1", "…", False, (good, shifted)),
        Answer("q2", "…", True),
        Answer("q3", "…", False, (good, elsewhere)),
    ]
    # 4 citations: good, good match; shifted does not; an article not in the corpus does not.
    assert citation_article_rate(answers, {"chine": ARTICLE}) == 0.5
    assert citation_article_rate(answers[:1], {"chine": ARTICLE}) == 0.5
    assert citation_article_rate([Answer("q", "…", False, (good,))], {"chine": ARTICLE}) == 1.0
    assert citation_article_rate([answers[1]], {"chine": ARTICLE}) == 1.0  # no citation, nothing wrong


def test_the_first_quote_rate_reads_only_the_first_quote_and_quotes_are_counted_per_answer() -> None:
    chunk = next(c for c in chunk_article(ARTICLE, 400, 0))
    hit = Hit(chunk, 1.0, 1)
    tax, shenzhen = (next(s for s in split_sentences(hit, 10) if key in s.text) for key in ("16,5%", "4,3%"))
    asked = Question(id="q", question="Quel impôt à Hong Kong ?", evidence=("16,5% sur les profits",))
    first = with_citations(asked.question, [tax, shenzhen], (), 1.0, "fr", [hit])
    second = with_citations(asked.question, [shenzhen, tax], (), 1.0, "fr", [hit])
    unanswerable = Question(id="u", question="Quel temps fait-il ?", evidence=())
    declined = Answer(unanswerable.question, "Je ne trouve pas.", True)
    metrics = answer_metrics([asked, asked, unanswerable], [first, second, declined])
    assert metrics["answer_evidence_rate"] == 1.0  # both quote the evidence somewhere
    assert metrics["answer_first_rate"] == 0.5  # only one puts it first
    assert metrics["quotes_per_answer"] == 2.0  # the declined answer is not counted
