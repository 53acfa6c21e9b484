"""One frozen settings object, gathered in one place, with the defaults chosen by measurement."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

Mode = Literal["bm25", "dense", "hybrid"]
READERS: tuple[str, ...] = ("extractive", "server", "local")  # chatbot.reader; "extractive" by default
MODES: tuple[Mode, ...] = ("bm25", "dense", "hybrid")
Fusion = Literal["zscore", "rrf"]
VectorIndex = Literal["auto", "flat", "hnsw"]
VECTOR_INDEXES: tuple[VectorIndex, ...] = ("auto", "flat", "hnsw")
Backend = Literal["local", "milvus"]
BACKENDS: tuple[Backend, ...] = ("local", "milvus")

# Every environment variable the package reads, with what it sets (``chatbot --help`` lists
# them; a test checks that no module reads one that is not here). A secret's value may be
# ``@/path/to/file``.
ENVIRONMENT: dict[str, str] = {
    "CHATBOT_READER": "the reader: extractive (default), server or local",
    "CHATBOT_BACKEND": "the search engine: local (default) or milvus",
    "CHATBOT_MILVUS_URI": "a Milvus server (http://host:19530) or a Milvus Lite file (.db)",
    "CHATBOT_MILVUS_TOKEN": "Milvus credentials («user:password» or an API key), or @file",
    "CHATBOT_MILVUS_COLLECTION": "the prefix of the Milvus collections (default chatbot)",
    "CHATBOT_MODEL_CACHE": "where assembled models live (default ~/.cache/chatbot/models)",
    "CHATBOT_LLM_URL": "an OpenAI-compatible server for --reader server",
    "CHATBOT_LLM_MODEL": "the model name on that server",
    "CHATBOT_LLM_API_KEY": "its API key, or @file",
    "CHATBOT_LLM_CONTEXT": "what the server's model reads: passages (default) or sentences",
    "CHATBOT_LOCAL_MODEL": "the bundled model for --reader local (qwen2.5-coder-1.5b or -0.5b)",
    "CHATBOT_LOCAL_QUEUE": "questions waiting for the local model at most (default 8)",
    "CHATBOT_LOCAL_MAX_WAIT": "seconds a question may wait for the local model (default 60)",
    "CHATBOT_LOCAL_TIMEOUT": "seconds the local model may write one answer (default 30)",
    "CHATBOT_API_KEYS": "bearer keys that may call /v1 (comma list or @file); unset: /v1 is open",
    "CHATBOT_AUTH": "the chat's logins, user:password pairs (comma list or @file)",
    "CHATBOT_QUESTION_LIMIT": "questions per client, e.g. 10/minute;100/hour",
    "CHATBOT_FEEDBACK_LIMIT": "feedback writes per client, same notation",
    "CHATBOT_FEEDBACK": "the feedback file (default data/feedback.jsonl)",
    "CHATBOT_FEEDBACK_MAX_BYTES": "the feedback file's size cap",
    "CHATBOT_QUESTION_LOG": "the question log's file (off when unset; chatbot report reads it)",
    "CHATBOT_QUESTION_LOG_DAYS": "days the question log keeps",
    "CHATBOT_QUESTION_LOG_MAX_BYTES": "the question log's size before it rotates",
    "CHATBOT_QUESTION_LOG_SALT": "the salt of the clients' hashes in the question log",
}


@dataclass(frozen=True)
class Settings:
    """Every tunable of the pipeline.

    The ``index_keys`` fields shape what is stored in an index; they are saved in its manifest
    and an index built with other values is refused (or rebuilt by ``chatbot index``).
    """

    corpus_dir: Path = Path("corpus")
    index_dir: Path = Path("index")
    # Embedding model: a packaged name ("embeddinggemma", "e5-small", "use-multilingual",
    # "minilm"), a sentence-transformers model name on the Hugging Face hub, or a local path.
    # EmbeddingGemma: every question set gains in retrieval and sentence ranking
    # (docs/measurements.md); e5-small is ~5x faster to embed, the scale path (docs/scale.md).
    model: str = "embeddinggemma"
    chunk_size: int = 800
    chunk_overlap: int = 160
    # Prefix each chunk with its article title for keyword indexing / for embedding. Measured:
    # the title helps BM25 (articles are found by their subject) and slightly hurts e5.
    title_in_keywords: bool = True
    title_in_embedding: bool = False
    mode: Mode = "hybrid"
    top_k: int = 5
    # Hybrid fusion. "zscore": weighted sum of each retriever's scores standardised over the
    # candidates; "rrf": weighted reciprocal rank fusion, sum(weight / (rrf_k + rank)).
    fusion: Fusion = "zscore"
    rrf_k: int = 60
    bm25_weight: float = 0.75
    dense_weight: float = 1.0
    # z-score fusion only: the best cosine between the question and one sentence of the
    # chunk (stored sentence vectors), a finer dense signal for a question that paraphrases a
    # single sentence. Needs ``sentence_vectors``; ignored without them.
    sentence_weight: float = 0.5
    # BM25 weight for a question detected as English: the French analyzer matches only its
    # names and numbers, which the dense model matches too, so its ranking is mostly noise.
    # Measured on 112 answerable questions (docs/measurements.md): English R@5 0.89 -> 1.00.
    bm25_weight_en: float = 0.0
    # How many candidates each retriever passes to the fusion.
    candidates: int = 50
    # Optional sentence-transformers CrossEncoder (name or path) to rerank fused candidates.
    reranker: str | None = None
    # Store one vector per sentence in the index, so that answers score sentences without the
    # model (18 ms an answer instead of ~750 ms on this CPU). Off for very large corpora:
    # sentences are 82 % of the texts a build embeds and 70 % of the index on disk (docs/scale.md).
    sentence_vectors: bool = True
    max_question_chars: int = 2000
    batch_size: int = 32
    # FAISS index: "flat" (exact), "hnsw" (approximate graph, HNSW32), or "auto": exact up to
    # ``exact_up_to`` chunks, HNSW beyond. Chosen when the index is written and recorded in its
    # manifest; any reader reads either, and ``chatbot index`` rewrites it (without embedding
    # anything again) when the setting asks for the other kind. Measured (docs/scale.md): an exact search over 384-d
    # vectors costs about 0.14 ms per thousand chunks on this machine; past about 50,000 chunks
    # it costs more than the question's embedding, while HNSW stays under 1 ms at 1M vectors.
    vector_index: VectorIndex = "auto"
    exact_up_to: int = 50_000
    # HNSW search breadth: higher is slower and closer to exact. 256: recall@10 0.96-0.98 for
    # under 1 ms at 110k-1M vectors (docs/scale.md); the model takes 20 ms a question anyway.
    hnsw_ef_search: int = 256
    # Where the index lives: "local" (FAISS and bm25s files in ``index_dir``) or "milvus"
    # (chatbot.backends.milvus; docs/milvus.md). ``milvus_uri``: a Milvus Lite file
    # (default ``<index_dir>/milvus.db``) or a server, ``http://host:19530``, with
    # ``milvus_token`` («user:password» or an API key). ``milvus_collection`` prefixes the
    # collections' names, so that several indexes share one server.
    backend: Backend = "local"
    milvus_uri: str | None = None
    milvus_token: str | None = field(default=None, repr=False)
    milvus_collection: str = "chatbot"

    index_keys: ClassVar[tuple[str, ...]] = (
        "model",
        "chunk_size",
        "chunk_overlap",
        "title_in_keywords",
        "title_in_embedding",
        "sentence_vectors",
    )

    def __post_init__(self) -> None:
        if self.chunk_size < 50:
            raise ValueError(f"chunk_size must be at least 50 characters, got {self.chunk_size}.")
        if not 0 <= self.chunk_overlap < self.chunk_size:
            raise ValueError(
                f"chunk_overlap must be between 0 and chunk_size ({self.chunk_size}), got {self.chunk_overlap}."
            )
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}.")
        if self.top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {self.top_k}.")
        if self.fusion not in ("zscore", "rrf"):
            raise ValueError(f"fusion must be zscore or rrf, got {self.fusion!r}.")
        if self.vector_index not in VECTOR_INDEXES:
            raise ValueError(f"vector_index must be one of {', '.join(VECTOR_INDEXES)}, got {self.vector_index!r}.")
        for name in ("bm25_weight", "bm25_weight_en", "dense_weight", "sentence_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 or more, got {getattr(self, name)}.")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}.")
        if self.rrf_k < 1:
            raise ValueError(f"rrf_k must be at least 1, got {self.rrf_k}.")

    def index_settings(self) -> dict[str, Any]:
        """The settings an index depends on, as saved in its manifest."""
        values = asdict(self)
        return {key: values[key] for key in self.index_keys}

    def with_(self, **changes: Any) -> Settings:
        """A copy with some fields changed (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})
