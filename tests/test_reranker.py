"""The CrossEncoder reranking path, with a tiny cross-encoder this test builds and saves."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from chatbot.backends import build_index
from chatbot.retrieval import Retriever
from chatbot.settings import Settings

from .conftest import FakeEmbedder


@pytest.fixture
def tiny_cross_encoder(tmp_path: Path) -> Path:
    torch = pytest.importorskip("torch")
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hong", "kong", "linkedin", "twitter"]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]"
    )
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(words), hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=16, max_position_embeddings=512, num_labels=1,
    )  # fmt: skip
    model = BertForSequenceClassification(config)
    path = tmp_path / "tiny-cross-encoder"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_reranking_reorders_the_candidates_with_the_cross_encoder(settings: Settings, tiny_cross_encoder: Path) -> None:
    build_index(settings, FakeEmbedder())
    plain = Retriever(settings, embedder=FakeEmbedder())
    reranked = Retriever(replace(settings, reranker=str(tiny_cross_encoder)), embedder=FakeEmbedder())
    question = "Hong Kong LinkedIn Twitter"
    before = plain.search(question, k=10, mode="hybrid")
    after = reranked.search(question, k=10, mode="hybrid")
    assert {h.chunk.id for h in after} == {h.chunk.id for h in before}
    scores = [h.score for h in after]
    assert scores == sorted(scores, reverse=True)  # ordered by the cross-encoder's own scores
    assert [h.score for h in before] != scores
