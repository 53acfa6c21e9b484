"""The bench's cold start waits for the chat server a bounded time."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from chatbot.bench import wait_until_listening
from chatbot.errors import BenchError


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_server_that_never_listens_is_given_up_on_with_a_clear_error() -> None:
    silent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = time.monotonic()
        with pytest.raises(BenchError, match=r"did not listen on port \d+ within 1 s.*--no-cold-start"):
            wait_until_listening(silent, _free_port(), timeout_s=1.0)
        assert time.monotonic() - started < 10
    finally:
        silent.kill()
        silent.wait()


def test_a_server_that_exits_is_reported_at_once() -> None:
    failing = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    failing.wait()
    with pytest.raises(BenchError, match=r"exited \(code 3\)"):
        wait_until_listening(failing, _free_port(), timeout_s=60.0)


def test_a_listening_server_is_waited_for() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            wait_until_listening(alive, listening.getsockname()[1], timeout_s=5.0)  # returns, no error
            assert alive.poll() is None
        finally:
            alive.kill()
            alive.wait()


def test_the_bench_points_its_subprocesses_at_the_index_it_built_and_its_model() -> None:
    """The no-op reindex and the cold start run `chatbot` again: with the bench's model, or the
    default model would find the index «built with another model» and rebuild it."""
    from pathlib import Path

    from chatbot.bench import _backend_args
    from chatbot.settings import Settings

    settings = Settings(corpus_dir=Path("c"), index_dir=Path("i"), model="e5-small")
    assert _backend_args(settings)[:2] == ["--model", "e5-small"]
    milvus = settings.with_(backend="milvus", milvus_uri="http://milvus:19530")
    assert _backend_args(milvus) == [
        "--model",
        "e5-small",
        "--backend",
        "milvus",
        "--milvus-uri",
        "http://milvus:19530",
    ]
