"""How long `chatbot report` takes on a large question log.

Writes a log of N generated entries (default 10,000) over 90 days, as the chat writes them:
questions of the evaluation sets and variants of them, a quarter declined (each with its
vector and closest passage), follow-ups, votes; then times `chatbot report` on it (HTML and
JSON), in a new process as the author runs it.

    python scripts/bench_report.py [--entries 10000] [--real] [--keep folder]

--real: the declined questions' vectors come from EmbeddingGemma (embedded once here, not
timed); without it, from a hashed bag of words of the same size (768), which clusters the
same way for timing purposes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from chatbot.questionlog import Cited, QuestionEntry, encode_vector  # noqa: E402

Embed = Callable[[list[str]], np.ndarray]
ARTICLES = [
    ("01-employee-advocacy", "L’employee advocacy"),
    ("02-influenceurs-et-marques", "Influenceurs et marques"),
    ("03-entrepreneuriat-chine-hong-kong-shenzhen", "La croissance de l’entreprenariat en Chine"),
    ("04-association-digitale", "L’association digitale"),
    ("05-marketing-digital-femmes-numeriques", "Les femmes du numérique"),
    ("06-twitter-netiquette", "Twitter et la netiquette"),
]
VARIANTS = ("", " en 2024", " aujourd’hui", " en France", " selon l’article", " exactement", " en moyenne")


def hashed_embed(dim: int = 768) -> Embed:
    """A deterministic bag of hashed words, normalised (same shape as a real embedder's)."""

    def embed(texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.casefold().split():
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % dim] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)

    return embed


def evaluation_questions() -> tuple[list[str], list[str]]:
    """(answerable, unanswerable) questions of the evaluation sets."""
    answerable: dict[str, None] = {}
    unanswerable: dict[str, None] = {}
    for path in sorted((REPO / "evaluation").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
                question = str(row["question"])
            except (ValueError, KeyError, TypeError):
                continue
            (answerable if row.get("evidence") else unanswerable)[question] = None
    return list(answerable) or ["Quelle part des PME a un site web ?"], list(unanswerable) or ["Quel âge a l’auteur ?"]


def generate_log(
    path: Path, entries: int, embed: Embed, embedder: str, seed: int = 7, now: datetime | None = None
) -> int:
    """Write ``entries`` entries to ``path`` (one file, no cap); how many are declined."""
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    answerable, unanswerable = evaluation_questions()
    declined_texts = sorted({q + v for q in unanswerable for v in VARIANTS})
    vectors = dict(zip(declined_texts, embed(declined_texts), strict=True))
    declined = 0
    with path.open("w", encoding="utf-8") as out:
        for n in range(entries):
            when = now - timedelta(days=90 * (1 - n / entries), minutes=rng.randint(0, 600))
            article_id, title = rng.choice(ARTICLES)
            passage = Cited(article_id, title, f"{article_id}#{rng.randint(0, 30)}", "Une phrase citée de l’article.")
            follow_up = rng.choice(answerable) if rng.random() < 0.15 else ""
            if rng.random() < 0.25:
                declined += 1
                question = rng.choice(unanswerable) + rng.choice(VARIANTS)
                entry = QuestionEntry(f"d{n}", question, True, when.isoformat(timespec="seconds"), follow_up,
                                      "extractive", "the passages do not answer it", "fr",
                                      "Je ne trouve pas la réponse dans les articles.", (), passage,
                                      rng.uniform(150, 900), f"{rng.randint(0, 800):016x}", rng.choice(("chat", "api")),
                                      embedder, encode_vector(vectors[question]))  # fmt: skip
            else:
                question = rng.choice(answerable)
                entry = QuestionEntry(f"a{n}", question, False, when.isoformat(timespec="seconds"), follow_up,
                                      "extractive", "", "fr", "Une réponse citée [1].", (passage,), None,
                                      rng.uniform(100, 700), f"{rng.randint(0, 800):016x}",
                                      rng.choice(("chat", "api")))  # fmt: skip
            out.write(json.dumps(entry.to_json(), ensure_ascii=False) + "\n")
            if rng.random() < 0.05:
                vote = {"kind": "vote", "answer_id": entry.answer_id, "vote": rng.choice(("up", "down")),
                        "time": when.isoformat(timespec="seconds")}  # fmt: skip
                out.write(json.dumps(vote) + "\n")
    return declined


def time_report(log: Path, out: Path, extra: Sequence[str] = ()) -> tuple[float, float]:
    """Seconds `chatbot report` takes on ``log`` in a new process (imports included): wall
    clock, and CPU (user + system; what a busy machine does not inflate)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "chatbot", "report", "--log", str(log), "--out", str(out), *extra],
                   check=True, cwd=REPO, capture_output=True)  # fmt: skip
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--real", action="store_true", help="EmbeddingGemma's vectors (not timed)")
    parser.add_argument("--keep", type=Path, help="write the log and the page in this folder")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-report-"))
    folder.mkdir(parents=True, exist_ok=True)
    if args.real:
        from chatbot.embedding import SentenceTransformerEmbedder

        model = SentenceTransformerEmbedder("embeddinggemma")
        embed, name = model.encode_queries, "embeddinggemma"
    else:
        embed, name = hashed_embed(), "hashed"
    log = folder / "questions.jsonl"
    declined = generate_log(log, args.entries, embed, name)
    size = log.stat().st_size
    (html_s, html_cpu), (json_s, json_cpu) = (
        time_report(log, folder / "report.html"),
        time_report(log, folder / "report.json.html", ["--json"]),
    )
    print(f"{args.entries} entries ({declined} declined, {size / 1e6:.1f} MB, vectors: {name}): chatbot report "
          f"{html_s:.2f} s ({html_cpu:.2f} s CPU) for the page, {json_s:.2f} s ({json_cpu:.2f} s CPU) with --json; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; page in {folder}")  # fmt: skip


if __name__ == "__main__":
    main()
