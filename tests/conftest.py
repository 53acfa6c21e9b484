"""Tiny fixtures built by the tests themselves, and a deterministic fake embedder."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import pytest

from chatbot.analysis import analyze
from chatbot.answer import AnswerSettings
from chatbot.settings import Settings

from .scripted_llm import server  # noqa: F401  (the scripted LLM server fixture)

if TYPE_CHECKING:
    from chatbot.answer import Citation
    from chatbot.retrieval import Retriever
    from chatbot.service import ChatService

REPO = Path(__file__).resolve().parent.parent
# The reader's decline model and floors are fitted on real cosines, not the fake embedder's: no
# abstention (nor small talk, which a bag of hashed words cannot tell) unless a test asks for it.
OPEN = AnswerSettings(min_probability=0.0, small_talk=False)


@pytest.fixture(autouse=True)
def fake_decline_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests that exercise declines on the fake embedder read with e5's decline model, as if
    fitted for it (``chatbot reader-fit`` cannot fit one on a handful of sentences)."""
    from dataclasses import replace

    from chatbot.reader import extractive

    models = dict(extractive.packaged_models())
    models["fake"] = replace(models["e5-small"], embedder="fake")
    monkeypatch.setattr(extractive, "packaged_models", lambda: models)


def assert_quotes_its_article(corpus_dir: Path, citation: Citation) -> None:
    """The citation's quote is the article file's own text at the citation's offsets (read from
    the corpus here, not from the chunk the citation was built from)."""
    from chatbot.corpus import load_corpus

    article = load_corpus(corpus_dir).by_id()[citation.article_id]
    start = citation.chunk_start + citation.quote_start
    assert article.text[start : start + len(citation.quote)] == citation.quote, citation
    assert citation.quote_end - citation.quote_start == len(citation.quote)
    assert citation.quote.strip() == citation.quote and citation.quote


def load_script(name: str) -> ModuleType:
    """Import ``scripts/<name>.py`` (scripts are not a package), registered under ``name``."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


class FakeEmbedder:
    """Hashes French-analysed tokens into a fixed-size bag of words: same text, same vector.

    Texts that share words get close vectors, so retrieval behaves sensibly in unit tests.
    ``calls`` counts encode calls; ``fail_after`` makes it raise once that many documents
    have been embedded, to simulate a crash in the middle of a build.
    """

    def __init__(self, name: str = "fake", dim: int = 256, fail_after: int | None = None) -> None:
        self.name = name
        self.dim = dim
        self.calls = 0
        self.documents = 0
        self.fail_after = fail_after

    def _vector(self, text: str) -> np.ndarray:
        vector = np.zeros(self.dim, dtype=np.float32)
        for token in analyze(text) or [text]:
            slot = int(hashlib.md5(token.encode()).hexdigest(), 16) % self.dim
            vector[slot] += 1.0
        return vector / max(float(np.linalg.norm(vector)), 1e-9)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        return np.stack([self._vector(t) for t in texts])

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.documents += len(texts)
        if self.fail_after is not None and self.documents > self.fail_after:
            raise RuntimeError("simulated crash while embedding")
        return np.stack([self._vector(t) for t in texts])


ARTICLES = {
    "linkedin.md": (
        "---\ntitle: Les salariés ambassadeurs\n---\n\n"
        "L’employee advocacy reste méconnue. 88% des entreprises ne sont pas présentes sur LinkedIn.\n\n"
        "Les salariés qui partagent des contenus de marque multiplient leur portée."
    ),
    "chine.md": (
        "# L’entrepreneuriat en Chine\n\n"
        "Hong Kong plafonne l’imposition à 16,5% sur les profits. Il n’existe pas de TVA.\n\n"
        "Shenzhen consacre 4,3% de son PIB à la recherche et au développement."
    ),
    "twitter.txt": (
        "Twitter et la netiquette\n\nNe pas citer ses sources est une grossière erreur sur Twitter. "
        "Le savoir-vivre se ruine."
    ),
}


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    for name, text in ARTICLES.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def settings(tmp_path: Path, corpus_dir: Path) -> Settings:
    return Settings(corpus_dir=corpus_dir, index_dir=tmp_path / "index", model="fake", chunk_size=120, chunk_overlap=20)


@pytest.fixture
def retriever(settings: Settings) -> Retriever:
    """The tiny corpus indexed with the fake embedder."""
    from chatbot.backends import build_index
    from chatbot.retrieval import Retriever

    build_index(settings, FakeEmbedder())
    return Retriever(settings, embedder=FakeEmbedder())


@pytest.fixture
def embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture(scope="session")
def real_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The real corpus indexed with the default packaged model, once per test session."""
    from chatbot.backends import build_index
    from chatbot.embedding import SentenceTransformerEmbedder

    settings = Settings(corpus_dir=REPO / "corpus", index_dir=tmp_path_factory.mktemp("real") / "index")
    build_index(settings, SentenceTransformerEmbedder(settings.model))
    return settings


@pytest.fixture(scope="session")
def real_retriever(real_settings: Settings) -> Retriever:
    from chatbot.retrieval import Retriever

    return Retriever(real_settings)


@pytest.fixture(scope="session")
def chat_service(real_retriever: Retriever, tmp_path_factory: pytest.TempPathFactory) -> ChatService:
    """The chat's service on the real index, its feedback file in a temporary folder."""
    from chatbot.feedback import FeedbackLog
    from chatbot.service import ChatService

    feedback = FeedbackLog(tmp_path_factory.mktemp("feedback") / "feedback.jsonl")
    service = ChatService(real_retriever.settings, real_retriever, feedback=feedback)
    service.warm()  # what `chatbot serve` embeds before it listens (EmbeddingGemma: about a minute)
    return service


@pytest.fixture(scope="session")
def chat_url(chat_service: ChatService) -> Iterator[str]:
    """The web chat launched in-process on a free loopback port."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from chatbot.app import launch

    demo, url = launch(chat_service, block=False, quiet=True)
    yield url
    demo.close()
