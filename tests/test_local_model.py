"""The local model's plumbing without a model: GGUF assembly, the queue, the writer seam."""

from __future__ import annotations

import collections
import hashlib
import sys
import threading
import time
import types
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from chatbot.answer import Answer, Progress, stream
from chatbot.errors import LocalModelError, ModelBusyError
from chatbot.local_model import LocalModelSpec, LocalWriter, choose, gguf_path
from chatbot.model_queue import ModelQueue, Waiting
from chatbot.reader import ExtractiveReader
from chatbot.reader.prompt import build_messages, excerpts
from chatbot.reader.writer import ModelReader
from chatbot.retrieval import Retriever

from .conftest import OPEN

QUESTION = "Quel est le plafond de l'imposition sur les profits à Hong Kong ?"


@pytest.fixture
def parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[LocalModelSpec, bytes]:
    """A three-part "model" installed as modules, the way the model packages ship."""
    blobs = [b"GGUF" + bytes(range(256)) * 3, b"middle" * 999, b"end"]
    for i, blob in enumerate(blobs, start=1):
        path = tmp_path / f"part{i:02}.bin"
        path.write_bytes(blob)
        module = types.ModuleType(f"fake_model_part{i}")
        module.get_part_path = lambda path=path: str(path)  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, f"fake_model_part{i}", module)
    whole = b"".join(blobs)
    spec = LocalModelSpec("fake", "Fake", "fake_model_part", 3, len(whole), hashlib.sha256(whole).hexdigest(), "x")
    return spec, whole


def test_the_parts_are_assembled_once_checked_and_reused(parts: tuple[LocalModelSpec, bytes], tmp_path: Path) -> None:
    spec, whole = parts
    cache = tmp_path / "cache"
    path = gguf_path(spec, cache, progress=False)
    assert path.read_bytes() == whole
    assert sorted(p.name for p in cache.iterdir()) == ["fake.gguf", "fake.sha256"]  # the temporary file renamed
    written = path.stat().st_mtime_ns
    (tmp_path / "part02.bin").unlink()  # the second call must not read the parts again
    assert gguf_path(spec, cache, progress=False) == path and path.stat().st_mtime_ns == written


def test_a_file_that_is_not_the_pinned_one_is_refused_and_not_kept(
    parts: tuple[LocalModelSpec, bytes], tmp_path: Path
) -> None:
    spec, _ = parts
    wrong = replace(spec, sha256="0" * 64)
    with pytest.raises(LocalModelError, match="force-reinstall"):
        gguf_path(wrong, tmp_path / "cache", progress=False)
    assert not list((tmp_path / "cache").iterdir())


def test_a_tampered_cache_file_is_assembled_again(parts: tuple[LocalModelSpec, bytes], tmp_path: Path) -> None:
    spec, whole = parts
    path = gguf_path(spec, tmp_path / "cache", progress=False)
    path.write_bytes(b"X" * len(whole))  # same size, other bytes: the stamp no longer matches
    assert gguf_path(spec, tmp_path / "cache", progress=False).read_bytes() == whole


def test_an_assembly_interrupted_by_ctrl_c_leaves_no_file_behind(
    parts: tuple[LocalModelSpec, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Interrupted:
        """A progress bar during which the user presses Ctrl-C, once a first block is written."""

        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        def __enter__(self) -> Interrupted:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def update(self, n: int) -> None:
            raise KeyboardInterrupt

    monkeypatch.setattr("chatbot.local_model.tqdm", Interrupted)
    spec, _ = parts
    cache = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        gguf_path(spec, cache, progress=False)
    assert cache.is_dir() and not list(cache.iterdir())


def test_a_missing_part_names_the_extra_to_install(parts: tuple[LocalModelSpec, bytes], tmp_path: Path) -> None:
    spec, _ = parts
    with pytest.raises(LocalModelError, match=r"part 4 of 4 is missing.*\.\[x\]"):
        gguf_path(replace(spec, parts=4), tmp_path / "cache", progress=False)


def test_choose_refuses_an_unknown_model(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(LocalModelError, match="qwen2.5-coder-1.5b"):
        choose("gpt-5")
    monkeypatch.setenv("CHATBOT_LOCAL_MODEL", "qwen2.5-coder-0.5b")
    assert choose().name == "qwen2.5-coder-0.5b"


def test_the_queue_serves_in_order_shows_places_and_refuses_beyond_capacity() -> None:
    queue = ModelQueue(capacity=2, max_wait_s=5, typical_s=4.0)
    first, second, third = queue.join(), queue.join(), queue.join()
    assert list(queue.wait(first)) == []  # first in line: its turn at once
    with pytest.raises(ModelBusyError, match="2 questions"):
        queue.join()
    waits = queue.wait(third, poll_s=0.01)
    assert next(waits) == Waiting(2, 8.0)  # two ahead, 4 s each
    queue.done(first, took_s=2.0)  # the mean of recent answers becomes (4 + 2) / 2
    assert next(waits) == Waiting(1, 3.0)
    queue.done(second, took_s=3.0)
    assert list(waits) == []  # third's turn
    assert queue.waiting == 0
    queue.done(third)


def test_a_question_that_waits_too_long_leaves_the_line() -> None:
    queue = ModelQueue(capacity=4, max_wait_s=0.2)
    busy, late = queue.join(), queue.join()
    started = time.monotonic()
    with pytest.raises(ModelBusyError, match="waited"):
        collections.deque(queue.wait(late, poll_s=0.05), maxlen=0)
    assert time.monotonic() - started < 1.0
    queue.done(late)
    queue.done(busy)
    assert queue.waiting == 0


class SlowModel:
    """Stands in for a llama.cpp model: writes a cited sentence, word by word, slowly."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.running = 0
        self.most_at_once = 0
        self.prompts: list[str] = []

    def complete(self, messages: Sequence[dict[str, str]], max_tokens: int, deadline: float) -> Iterator[str]:
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        self.prompts.append(messages[-1]["content"])
        try:
            for word in "À Hong Kong, l'imposition est plafonnée à 16,5% sur les profits. [1]".split(" "):
                time.sleep(self.delay)
                if time.perf_counter() > deadline:
                    raise TimeoutError("too slow")
                yield word + " "
        finally:
            self.running -= 1


def _reader(model: SlowModel, queue: ModelQueue, timeout_s: float = 10.0) -> ModelReader:
    writer = LocalWriter(model, queue, timeout_s)  # type: ignore[arg-type]
    return ModelReader(writer, ExtractiveReader(OPEN), "local")


def test_the_local_reader_writes_a_checked_answer_from_a_short_prompt(retriever: Retriever) -> None:
    model = SlowModel()
    items = list(stream(retriever, QUESTION, [], reader=_reader(model, ModelQueue())))
    final = items[-1]
    assert isinstance(final, Answer) and final.mode == "llm" and final.reader == "local"
    assert final.text == "À Hong Kong, l'imposition est plafonnée à 16,5% sur les profits [1]."  # marker moved in
    assert final.citations and all(c.is_valid() for c in final.citations)
    assert [i.stage for i in items if isinstance(i, Progress)] == ["search", "read", "write"]
    prompt = model.prompts[0]
    assert prompt.count("<passage") <= 4 and prompt.endswith("Réponds en français.")


def test_a_bare_keyword_query_is_answered_with_the_sentences_that_hold_it(retriever: Retriever) -> None:
    model = SlowModel()
    result = list(stream(retriever, "LinkedIn", [], reader=_reader(model, ModelQueue())))[-1]
    assert isinstance(result, Answer) and result.mode == "extractive" and result.note == ""
    assert "LinkedIn" in result.citations[0].quote and model.prompts == []  # the model was not asked


class GatedModel(SlowModel):
    """Starts writing its first answer only once ``others`` questions wait behind it: every place
    in line is then known, whatever the threads' timing."""

    def __init__(self, queue: ModelQueue, others: int) -> None:
        super().__init__(delay=0.02)
        self.queue, self.others = queue, others

    def complete(self, messages: Sequence[dict[str, str]], max_tokens: int, deadline: float) -> Iterator[str]:
        limit = time.monotonic() + 5
        while self.queue.waiting < self.others and time.monotonic() < limit:
            time.sleep(0.01)
        self.others = 0  # only the first answer waits
        yield from super().complete(messages, max_tokens, deadline)


def test_one_model_answers_one_question_at_a_time_and_the_others_see_their_place(retriever: Retriever) -> None:
    queue = ModelQueue(capacity=8, max_wait_s=30)
    model = GatedModel(queue, others=2)
    reader = _reader(model, queue)
    seen: list[list[object]] = [[] for _ in range(3)]

    def ask(i: int) -> None:
        seen[i] = list(stream(retriever, QUESTION, [], reader=reader))

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert model.most_at_once == 1
    assert all(isinstance(s[-1], Answer) and s[-1].mode == "llm" for s in seen)
    places = [[i.position for i in s if isinstance(i, Progress) and i.stage == "queue"] for s in seen]
    # One question had the model at once; the next was told it is next, the last that it is 2nd.
    assert sorted(p[:1] for p in places) == [[], [1], [2]]
    assert all(p == sorted(p, reverse=True) for p in places)  # a place only ever moves forward


def test_a_full_queue_or_a_slow_model_serves_the_extractive_answer_with_a_note(retriever: Retriever) -> None:
    queue = ModelQueue(capacity=0)
    ticket = queue.join()  # someone else has the model, nobody may wait
    full = list(stream(retriever, QUESTION, [], reader=_reader(SlowModel(), queue)))[-1]
    queue.done(ticket)
    assert isinstance(full, Answer) and full.mode == "extractive" and "occupé" in full.note
    assert full.citations and all(c.is_valid() for c in full.citations)
    slow = list(stream(retriever, QUESTION, [], reader=_reader(SlowModel(delay=0.05), ModelQueue(), 0.1)))[-1]
    assert isinstance(slow, Answer) and slow.mode == "extractive" and "à temps" in slow.note
    assert queue.waiting == 0


def test_a_stopped_answer_frees_the_model_for_the_next_question(retriever: Retriever) -> None:
    queue = ModelQueue(capacity=1)
    reader = _reader(SlowModel(delay=0.01), queue)
    items = stream(retriever, QUESTION, [], reader=reader)
    assert any(isinstance(item, str) for item in items)  # the model has started writing
    items.close()  # the user pressed stop
    again = list(stream(retriever, QUESTION, [], reader=reader))[-1]
    assert isinstance(again, Answer) and again.mode == "llm"


def test_the_prompt_holds_only_the_evidence_sentences_grouped_by_passage(retriever: Retriever) -> None:
    extractive = ExtractiveReader(OPEN).read(QUESTION, [], retriever.search(QUESTION, k=5), retriever)
    passages = excerpts(extractive.evidence, limit=3)
    assert 1 <= len(passages) <= 3
    for excerpt in passages:
        assert excerpt.sentences and all(s.hit is excerpt.hit for s in excerpt.sentences)
        for piece in excerpt.text.split(" […] "):
            assert " ".join(piece.split()) in " ".join(excerpt.hit.chunk.text.split())
    english = build_messages("What is the tax cap?", passages, "en")
    assert english[-1]["content"].endswith("Answer in English.")
