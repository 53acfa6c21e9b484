"""SIGKILL the indexer at random points of a build: the previous index still loads and answers."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

from chatbot.backends.local import build_index, load_index
from chatbot.retrieval import Retriever
from chatbot.settings import Settings

from .conftest import REPO, FakeEmbedder

CHILD = """
import sys, time
sys.path.insert(0, {repo!r})
from pathlib import Path
from chatbot.backends.local import build_index
from chatbot.settings import Settings
from tests.conftest import FakeEmbedder

class Slow(FakeEmbedder):
    def encode_documents(self, texts):
        time.sleep(0.01)
        return super().encode_documents(texts)

settings = Settings(
    corpus_dir=Path({corpus!r}), index_dir=Path({index!r}), model="fake", chunk_size=120, chunk_overlap=20
)
build_index(settings, Slow(), rebuild=True)
"""


def test_killed_builds_never_break_the_previous_index(settings: Settings) -> None:
    for n in range(40):
        text = f"# Article {n}\n\n" + " ".join(f"Phrase {n}-{i} sur Hong Kong et LinkedIn." for i in range(40))
        (settings.corpus_dir / f"a{n:02d}.md").write_text(text, encoding="utf-8")
    build_index(settings, FakeEmbedder())
    before = load_index(settings)
    script = CHILD.format(repo=str(REPO), corpus=str(settings.corpus_dir), index=str(settings.index_dir))
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=300)
    duration = time.perf_counter() - started

    rng = random.Random(1234)
    kills = 0
    for _ in range(12):
        child = subprocess.Popen([sys.executable, "-c", script], env=env)
        time.sleep(rng.uniform(0.0, duration))
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            kills += 1
        child.wait(timeout=60)
        index = load_index(settings)  # never raises: CURRENT always names a whole build
        assert len(index.chunks) == len(before.chunks)
        hits = Retriever(settings, embedder=FakeEmbedder(), index=index).search("Hong Kong LinkedIn", k=3)
        assert len(hits) == 3
    assert kills >= 6, "most runs must be killed mid-build for the test to mean something"
    report = build_index(settings, FakeEmbedder(), rebuild=True)  # the next build cleans the debris
    assert report.written
    assert (settings.index_dir / "CURRENT").is_file()
    assert len([p for p in settings.index_dir.iterdir() if p.name.startswith(("gen-", ".tmp-"))]) == 1
