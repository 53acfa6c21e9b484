"""Links back to the blog: the quote as a text fragment (``#:~:text=``), in the chat's sources
and in ``chatbot ask --json``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from markupsafe import escape

from chatbot import cli
from chatbot.answer import answer
from chatbot.app import copy_text, render_answer
from chatbot.backends import build_index
from chatbot.feedback import FeedbackLog
from chatbot.links import encode_directive, text_fragment_url
from chatbot.reader import ExtractiveReader
from chatbot.retrieval import Retriever
from chatbot.service import ChatService
from chatbot.settings import Settings

from .conftest import OPEN, FakeEmbedder

URL = "https://blog.example/2018/hong-kong/"
QUESTION = "Quel est le plafond de l'imposition sur les profits à Hong Kong ?"


def test_the_directive_encodes_dash_comma_ampersand_and_every_reserved_character() -> None:
    assert encode_directive("co-working, 50 % & plus") == "co%2Dworking%2C%2050%20%25%20%26%20plus"
    assert encode_directive("c’est l’été") == "c%E2%80%99est%20l%E2%80%99%C3%A9t%C3%A9"


def test_a_short_quote_is_the_whole_text_start_and_the_page_s_own_fragment_is_replaced() -> None:
    link = text_fragment_url("https://blog.example/p/#comments", "Le co-working,\n c’est 50\t% & plus.")
    assert link == "https://blog.example/p/#:~:text=Le%20co%2Dworking%2C%20c%E2%80%99est%2050%20%25%20%26%20plus."


def test_a_long_quote_is_linked_by_its_first_and_last_words() -> None:
    quote = "Un deux trois quatre cinq six sept huit neuf dix onze douze."
    assert text_fragment_url(URL, quote) == f"{URL}#:~:text=Un%20deux%20trois%20quatre,neuf%20dix%20onze%20douze."


def test_a_non_breaking_space_is_matched_as_itself_and_no_url_gives_no_link() -> None:
    assert text_fragment_url(URL, "connectées\u00a0: un") == f"{URL}#:~:text=connect%C3%A9es%C2%A0%3A%20un"
    assert text_fragment_url("", "Une phrase.") == ""
    assert text_fragment_url(URL, " \n ") == URL


@pytest.fixture
def linked(tmp_path: Path) -> Retriever:
    """A corpus whose Hong Kong article is on the blog (a ``url``), the other is not."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "chine.md").write_text(
        f'---\ntitle: "L’entrepreneuriat en Chine"\nurl: "{URL}"\n---\n\n'
        "Hong Kong plafonne l’imposition à 16,5% sur les profits. Il n’existe pas de TVA.\n\n"
        "Shenzhen consacre 4,3% de son PIB à la recherche et au développement.",
        encoding="utf-8",
    )
    (corpus / "twitter.md").write_text("# Twitter\n\nNe pas citer ses sources est une erreur.", encoding="utf-8")
    settings = Settings(corpus_dir=corpus, index_dir=tmp_path / "index", model="fake", chunk_size=120, chunk_overlap=20)
    build_index(settings, FakeEmbedder())
    return Retriever(settings, embedder=FakeEmbedder())


def test_citations_of_an_article_on_the_blog_link_to_the_quote(linked: Retriever) -> None:
    result = answer(linked, QUESTION, settings=OPEN)
    first = result.citations[0]
    assert first.article_id == "chine" and first.article_url == URL
    assert first.url == text_fragment_url(URL, first.quote) and first.url.startswith(f"{URL}#:~:text=")
    cited = result.to_dict()["citations"]
    assert isinstance(cited, list) and cited[0]["url"] == first.url  # what `chatbot ask --json` prints
    others = [c for c in result.citations if c.article_id != "chine"]
    assert all(c.url == c.article_url == "" for c in others)


def test_the_chat_s_sources_link_to_the_blog_at_the_quote(linked: Retriever, tmp_path: Path) -> None:
    service = ChatService(linked.settings, linked, feedback=FeedbackLog(tmp_path / "feedback.jsonl"))
    result = answer(linked, QUESTION, settings=OPEN)
    shown = render_answer(service, result, "a1")
    first = result.citations[0]
    assert f'<a class="blog-link" href="{escape(first.url)}" target="_blank" rel="noopener noreferrer"' in shown
    assert "Lire sur le blog" in shown
    assert shown.count('class="blog-link"') == len({c.n for c in result.citations if c.url})
    assert first.url in copy_text(result)


def test_ask_json_carries_the_link(
    linked: Retriever, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "_settings", lambda args: linked.settings)
    monkeypatch.setattr("chatbot.service.Retriever", lambda settings: linked)  # the fake embedder's retriever
    monkeypatch.setattr(cli, "_reader", lambda args: ExtractiveReader(OPEN))  # no decline on fake cosines
    assert cli.main(["ask", QUESTION, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    first = printed["citations"][0]
    assert first["article_url"] == URL
    assert first["url"] == text_fragment_url(URL, first["quote"])
