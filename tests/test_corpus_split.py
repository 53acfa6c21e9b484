"""The committed corpus is the raw dump split by article, with only layout debris removed."""

import re
import unicodedata
from pathlib import Path

from chatbot.corpus import load_corpus

from .conftest import REPO, load_script

DEBRIS = re.compile(r"IMG_\d+\w*?(?=La Chine)|IMG_\d+|DSC\d+ter|PME retard\.png|^Tweet \d+$|^etiquette-twitter$", re.M)


def _squash(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).split())


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?…])\s+|\n+", text) if s.strip()]


def test_every_sentence_of_the_dump_is_in_the_corpus() -> None:
    dump = DEBRIS.sub("", (REPO / "data" / "raw_dump.txt").read_text(encoding="utf-8"))
    corpus = load_corpus(REPO / "corpus")
    haystack = _squash("\n".join(f"{a.title}\n{a.text}" for a in corpus.articles))
    missing = [s for s in _sentences(dump) if _squash(s) and _squash(s) not in haystack]
    assert missing == []


def test_layout_debris_is_gone() -> None:
    text = "\n".join(a.text for a in load_corpus(REPO / "corpus").articles)
    for debris in ("IMG_", "DSC0", "PME retard.png", "etiquette-twitter"):
        assert debris not in text
    assert not re.search(r"^Tweet \d+$", text, re.M)


def test_six_articles_with_titles_and_the_quote_opens_the_china_article() -> None:
    articles = load_corpus(REPO / "corpus").articles
    assert len(articles) == 6
    assert all(a.title for a in articles)
    china = next(a for a in articles if "Chine" in a.title)
    assert _squash(china.text).startswith("« Sans impulsion ni leadership")
    assert sum("Sans impulsion ni leadership" in a.text for a in articles) == 1


def test_corpus_files_are_what_the_split_script_writes(tmp_path: Path) -> None:
    module = load_script("split_dump")
    module.OUT = tmp_path
    module.main()
    for path in sorted(tmp_path.glob("*.md")):
        assert path.read_text(encoding="utf-8") == (REPO / "corpus" / path.name).read_text(encoding="utf-8")
    assert len(list(tmp_path.glob("*.md"))) == 6
