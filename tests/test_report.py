"""`chatbot report`: what it counts, how it groups the unanswered questions, and how it copes
with an empty, missing, damaged or large log."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from chatbot.cli import EXIT_USAGE, main
from chatbot.questionlog import Cited, QuestionEntry, QuestionLog, encode_vector, read_log
from chatbot.report import build_report
from chatbot.report_page import render_report

from .conftest import FakeEmbedder, load_script

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
TAX = Cited(
    "chine", "L’entrepreneuriat en Chine", "chine#0", "Hong Kong plafonne l’imposition à 16,5% sur les profits."
)
LINKEDIN = Cited("linkedin", "Les salariés ambassadeurs", "linkedin#0", "88% des entreprises ne sont pas sur LinkedIn.")


def _write(path: Path, *entries: QuestionEntry, votes: tuple[tuple[str, str], ...] = ()) -> Path:
    log = QuestionLog(path, clock=lambda: NOW)
    for entry in entries:
        log.record(entry)
    for answer_id, vote in votes:
        log.vote(answer_id, vote)
    return path


def _asked(n: int, question: str, days_ago: float = 0, **fields: object) -> QuestionEntry:
    when = (NOW - timedelta(days=days_ago)).isoformat(timespec="seconds")
    values: dict[str, object] = {"declined": False, **fields}
    return QuestionEntry(answer_id=f"a{n}", question=question, time=when, **values)  # type: ignore[arg-type]


def _declined(n: int, question: str, vector: np.ndarray | None, closest: Cited, days_ago: float = 0) -> QuestionEntry:
    logged = {"embedder": "fake", "vector": encode_vector(vector)} if vector is not None else {}
    reason = "the passages do not answer it"
    return _asked(n, question, days_ago, declined=True, reason=reason, closest=closest, **logged)


def _topic(axis: int, noise: int, dim: int = 16) -> np.ndarray:
    """A unit vector near axis ``axis`` (``noise`` picks a small, fixed deviation)."""
    vector = np.zeros(dim, dtype=np.float32)
    vector[axis] = 1.0
    vector[(axis + 1 + noise) % dim] = 0.25
    return vector / np.linalg.norm(vector)


def test_the_figures_days_and_most_cited_articles_are_counted_as_worked_out_by_hand(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "q.jsonl",
        _asked(1, "Quel plafond à Hong Kong ?", 2, cited=(TAX, TAX), latency_ms=100.0, client="r1", via="chat"),
        _asked(
            2,
            "Et la TVA ?",
            2,
            cited=(TAX,),
            follow_up_of="Quel plafond à Hong Kong ?",
            latency_ms=300.0,
            client="r1",
            via="chat",
        ),
        _asked(3, "LinkedIn ?", 0, cited=(LINKEDIN, TAX), latency_ms=200.0, client="r2", via="api"),
        _asked(4, "Bonjour", 0, declined=True, reason="small talk: greeting", client="r2", via="chat"),
        _declined(5, "Quel est le salaire moyen à Shenzhen ?", _topic(0, 0), TAX, 0),
        votes=(("a2", "down"), ("a1", "up")),
    )
    report = build_report(read_log(path), now=NOW)
    f = report.figures
    assert (f["questions"], f["answered"], f["not_answered"], f["small_talk"]) == (5, 3, 1, 1)
    assert (f["readers"], f["follow_ups"], f["via_chat"], f["via_api"]) == (2, 1, 3, 1)
    assert f["answered_share"] == 0.75 and f["latency_median_ms"] == 200.0
    assert (f["votes_up"], f["votes_down"]) == (1, 1) and f["days"] == 3
    assert report.per_day == (("2025-03-08", 2, 0, 0), ("2025-03-09", 0, 0, 0), ("2025-03-10", 1, 1, 1))
    # An answer counts once per article it cites, however many quotes.
    assert [(a.key, a.times) for a in report.articles] == [("chine", 3), ("linkedin", 1)]
    assert report.passages[0].key == "chine#0" and report.passages[0].times == 3
    assert [v.question for v in report.down_votes] == ["Et la TVA ?"]
    assert [g.questions[0].question for g in report.gaps] == ["Quel est le salaire moyen à Shenzhen ?"]


def test_unanswered_questions_are_grouped_by_topic_with_their_most_frequent_closest_passage(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "q.jsonl",
        _declined(1, "Quel est le salaire moyen à Shenzhen ?", _topic(0, 0), TAX),
        _declined(2, "Combien gagne un ingénieur à Shenzhen ?", _topic(0, 1), TAX),
        _declined(3, "Combien gagne un ingénieur à Shenzhen ?", _topic(0, 1), LINKEDIN),
        _declined(4, "Quel est le salaire moyen à Shenzhen ?", _topic(0, 0), TAX),
        _declined(5, "Quel est le salaire moyen à Shenzhen ?", _topic(0, 0), TAX),
        _declined(6, "Combien d’abonnés a le compte LinkedIn du blog ?", _topic(5, 0), LINKEDIN),
        _declined(7, "Quel est l’âge moyen des abonnés LinkedIn ?", _topic(5, 2), LINKEDIN),
    )
    report = build_report(read_log(path), now=NOW)
    assert report.grouped_by == "fake"
    (salaries, linkedin) = report.gaps
    assert [(q.question, q.times) for q in salaries.questions] == [
        ("Quel est le salaire moyen à Shenzhen ?", 3),
        ("Combien gagne un ingénieur à Shenzhen ?", 2),
    ]
    assert salaries.times == 5 and salaries.closest == TAX  # 4 of its 5 closest passages
    assert {q.question for q in linkedin.questions} == {
        "Combien d’abonnés a le compte LinkedIn du blog ?",
        "Quel est l’âge moyen des abonnés LinkedIn ?",
    }
    assert linkedin.closest == LINKEDIN
    # A tighter cut keeps each question alone.
    assert len(build_report(read_log(path), now=NOW, distance=0.01).gaps) == 4


def test_questions_without_a_vector_are_embedded_or_else_grouped_by_their_closest_article(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "q.jsonl",
        _declined(1, "Quel est le salaire moyen à Shenzhen ?", None, TAX),
        _declined(2, "Quel salaire moyen à Shenzhen ?", None, TAX),
        _declined(3, "Combien d’abonnés sur LinkedIn ?", None, LINKEDIN),
    )
    by_article = build_report(read_log(path), now=NOW)
    assert by_article.grouped_by == "article"
    assert sorted(len(g.questions) for g in by_article.gaps) == [1, 2]
    embedder = FakeEmbedder()
    embedded = build_report(read_log(path), now=NOW, embed=embedder.encode_queries, embedder="fake")
    assert embedder.calls == 1 and embedded.grouped_by == "fake"
    salaries = next(g for g in embedded.gaps if g.closest == TAX)
    assert len(salaries.questions) == 2  # «salaire moyen Shenzhen» in both: the bag of words puts them together


def test_an_empty_log_gives_a_page_that_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "q.jsonl"
    log.write_text("", encoding="utf-8")
    out = tmp_path / "report.html"
    assert main(["report", "--log", str(log), "--out", str(out), "--model", "fake"]) == 0
    page = out.read_text(encoding="utf-8")
    assert "Rien à montrer" in page and "CHATBOT_QUESTION_LOG" in page and "<svg" not in page
    assert "holds no question" in capsys.readouterr().err


def test_a_missing_log_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--log", str(tmp_path / "none.jsonl")]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "No question log at" in err and "CHATBOT_QUESTION_LOG=" in err


def test_a_damaged_log_is_read_around_its_bad_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(
        tmp_path / "q.jsonl",
        _asked(1, "Quel plafond à Hong Kong ?", cited=(TAX,)),
        _declined(3, "Quel salaire à Shenzhen ?", np.array([1.0, 0.0, 0.0]), TAX),
    )
    with path.open("ab") as out:  # edited by hand, then torn by a crash
        out.write(b'\xff\xfe garbage\n{"kind": "question", "time": "hier", "question": "?"}\n')
        out.write(b'{"kind": "vote"}\n{"kind": "question", "answer_id": "a2", "question": "Et la TV')
    assert main(["report", "--log", str(path), "--json", "--model", "fake"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert data["figures"]["questions"] == 2 and data["damaged"] == 4
    assert data["gaps"][0]["questions"][0]["question"] == "Quel salaire à Shenzhen ?"
    assert "4 unreadable lines" in captured.err


def test_every_text_from_the_log_is_escaped_in_the_page(tmp_path: Path) -> None:
    evil = Cited("x", "<img src=x onerror=alert(1)>", "x#0", "</blockquote><script>alert(2)</script>")
    path = _write(
        tmp_path / "q.jsonl",
        _declined(1, "<script>alert(3)</script> ?", np.array([1.0, 0.0]), evil),
        _asked(2, "Et <b>ça</b> ?", cited=(evil,)),
        votes=(("a2", "down"),),
    )
    page = render_report(build_report(read_log(path), now=NOW))
    assert "<script" not in page and "<img" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in page


def test_the_report_of_10000_entries_takes_under_10_seconds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_script("bench_report")
    log = tmp_path / "questions.jsonl"
    declined = bench.generate_log(log, 10_000, bench.hashed_embed(), "hashed", now=NOW)
    out = tmp_path / "report.html"
    started = time.perf_counter()
    assert main(["report", "--log", str(log), "--out", str(out)]) == 0
    seconds = time.perf_counter() - started
    with capsys.disabled():
        print(f"\nchatbot report on 10,000 entries ({declined} declined): {seconds:.2f} s (in-process)")
    assert seconds < 10
    page = out.read_text(encoding="utf-8")
    assert page.count("<svg") == 2 and 'class="gap"' in page
    assert "http" not in page.replace("http://www.w3.org", "")  # self-contained: nothing fetched
