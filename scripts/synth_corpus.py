"""A synthetic corpus for scale tests: articles made by recombining the real corpus's sentences.

The text stays French and keeps the real corpus's vocabulary, sentence lengths and article
lengths (each synthetic article is as long as a real article drawn at random); only the order
of sentences is made up. Deterministic for a given seed.

    python scripts/synth_corpus.py 10000 /tmp/synth-10k
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from chatbot.chunking import sentence_spans  # noqa: E402
from chatbot.corpus import load_corpus  # noqa: E402


def generate(source: Path, target: Path, count: int, seed: int = 0) -> list[Path]:
    """Write ``count`` articles to ``target`` (created; must be empty or absent); their paths."""
    corpus = load_corpus(source)
    sentences = [
        paragraph[start:end]
        for article in corpus.articles
        for paragraph in article.text.split("\n\n")
        for start, end in sentence_spans(paragraph)
        if end - start >= 20
    ]
    lengths = [len(article.text) for article in corpus.articles]
    titles = [article.title for article in corpus.articles]
    rng = random.Random(seed)
    target.mkdir(parents=True, exist_ok=True)
    if any(target.iterdir()):
        raise FileExistsError(f"{target} is not empty")
    paths = []
    width = len(str(count))
    for n in range(count):
        wanted = rng.choice(lengths)
        paragraphs: list[str] = []
        size = 0
        while size < wanted:
            picked = [rng.choice(sentences) for _ in range(rng.randint(2, 5))]
            paragraph = "".join(s + _separator(s) for s in picked).rstrip()
            paragraphs.append(paragraph)
            size += len(paragraph) + 2
        title = f"{rng.choice(titles)} ({n + 1})".replace('"', "'")
        path = target / f"synth-{n:0{width}d}.md"
        path.write_text(f'---\ntitle: "{title}"\n---\n\n' + "\n\n".join(paragraphs) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


def _separator(sentence: str) -> str:
    """A space after a sentence that ends as one; a line end after one that ended at a line end
    in its article (a title, a list item), so that every sentence stays a sentence."""
    return " " if sentence_spans(sentence + " Suite")[0] == (0, len(sentence)) else "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("count", type=int)
    parser.add_argument("target", type=Path)
    parser.add_argument("--source", type=Path, default=REPO / "corpus")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    paths = generate(args.source, args.target, args.count, args.seed)
    print(f"{len(paths)} articles written to {args.target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
