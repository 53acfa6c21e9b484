"""The search backends and the registry that chooses one by ``Settings.backend``.

- :mod:`chatbot.backends.base`: what the retriever asks of an index (:class:`SearchBackend`);
- :mod:`chatbot.backends.build`: what both backends' builds share (plan, embedding, checks, lock);
- :mod:`chatbot.backends.local`: FAISS and bm25s files under ``index/``;
- :mod:`chatbot.backends.milvus` (and ``milvus_store``): collections in Milvus Lite, a Milvus
  server or a cluster.

Each backend is imported when chosen: the local one never imports pymilvus, the Milvus one never faiss.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chatbot.backends.base import SearchBackend
    from chatbot.backends.build import BuildReport, Progress
    from chatbot.embedding import Embedder
    from chatbot.settings import Settings

__all__ = ["build_index", "index_is_stale", "load_backend"]


def load_backend(settings: Settings) -> SearchBackend:
    """The index ``settings.backend`` names, loaded and checked against the settings.

    Raises:
        IndexStateError: no index, an unusable one, one built with other settings, or (Milvus)
            an engine that cannot be reached.
    """
    if settings.backend == "milvus":
        from chatbot.backends.milvus import load_milvus

        return load_milvus(settings)
    from chatbot.backends.local import load_index

    return load_index(settings)


def build_index(
    settings: Settings, embedder: Embedder, *, rebuild: bool = False, progress: Progress | None = None
) -> BuildReport:
    """Bring the index of ``settings.backend`` up to date with the corpus (incrementally).

    Raises:
        CorpusError: the corpus folder is missing or holds no readable article.
        IndexStateError: another indexer is writing, or (Milvus) the engine cannot be used.
    """
    if settings.backend == "milvus":
        from chatbot.backends.milvus import build_milvus

        return build_milvus(settings, embedder, rebuild=rebuild, progress=progress)
    from chatbot.backends import local

    return local.build_index(settings, embedder, rebuild=rebuild, progress=progress)


def index_is_stale(settings: Settings) -> bool:
    """True when the index is missing, unusable, or does not match the corpus any more."""
    if settings.backend == "milvus":
        from chatbot.backends.milvus import milvus_is_stale

        return milvus_is_stale(settings)
    from chatbot.backends import local

    return local.index_is_stale(settings)
