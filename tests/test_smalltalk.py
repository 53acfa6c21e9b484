"""Small talk and off-topic messages get the help message, not quotes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from chatbot.answer import answer
from chatbot.retrieval import Retriever
from chatbot.smalltalk import EXAMPLES, SmallTalk, reply

from .conftest import OPEN, FakeEmbedder


@pytest.fixture
def small_talk() -> SmallTalk:
    embedder = FakeEmbedder()
    sentences = embedder.encode_documents(["Le plafond de l'impôt sur les profits à Hong Kong est de 16,5 %.",
                                           "Shenzhen compte des milliers de start-up."])  # fmt: skip
    return SmallTalk(embedder, sentences)


def test_a_greeting_and_thanks_are_recognised(small_talk: SmallTalk) -> None:
    embedder = FakeEmbedder()
    greeting = small_talk.classify(embedder.encode_queries(["Bonjour"]), nearest_passage=0.1)
    assert greeting is not None and greeting.kind == "greeting" and greeting.example > greeting.corpus
    thanks = small_talk.classify(embedder.encode_queries(["Merci"]), nearest_passage=0.1)
    assert thanks is not None and thanks.kind == "thanks"


def test_a_question_the_corpus_answers_is_not_small_talk(small_talk: SmallTalk) -> None:
    vector = FakeEmbedder().encode_queries(["Quel plafond pour l'impôt sur les profits ?"])
    assert small_talk.classify(vector, nearest_passage=0.1) is None
    # A passage nearer than every example, though no sentence is: not small talk either.
    assert small_talk.classify(FakeEmbedder().encode_queries(["Bonjour"]), nearest_passage=1.0) is None


def test_without_sentence_vectors_the_nearest_passage_decides() -> None:
    empty = SmallTalk(FakeEmbedder(), np.zeros((0, FakeEmbedder().dim), dtype=np.float32))
    found = empty.classify(FakeEmbedder().encode_queries(["Bonjour"]), nearest_passage=0.2)
    assert found is not None and found.corpus == 0.2


def test_the_help_message_names_the_topics_in_the_asker_s_language() -> None:
    topics = ["L'employee advocacy", "Twitter : la nétiquette"]
    french = reply("greeting", "fr", topics)
    assert french.startswith("Bonjour !") and "« L'employee advocacy »" in french and "Posez une question" in french
    english = reply("off_topic", "en", topics)
    assert english.startswith("I cannot answer that.") and "“Twitter : la nétiquette”" in english
    assert reply("thanks", "de", topics).startswith("Avec plaisir")  # French unless English
    assert reply("help", "fr", [f"t{i}" for i in range(9)]).count("« t") == 6  # six topics at most


def test_every_kind_has_its_opener() -> None:
    for kind in EXAMPLES:
        assert reply(kind, "fr", ["a"]) and reply(kind, "en", ["a"])


def test_the_reader_answers_a_greeting_with_help_and_no_quote(retriever: Retriever) -> None:
    result = answer(retriever, "Bonjour !", settings=replace(OPEN, small_talk=True))
    assert result.abstained and not result.citations and not result.evidence
    assert result.reason == "small talk: greeting"
    assert result.text.startswith("Bonjour !") and "Posez une question" in result.text
