"""Reading the articles: any folder of UTF-8 ``.md`` and ``.txt`` files, one article per file."""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from chatbot.errors import CorpusError

logger = logging.getLogger(__name__)

SUFFIXES = (".md", ".txt")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*\r?\n", re.DOTALL)
_HEADING = re.compile(r"\A#\s+(.+?)\s*#*\s*(?:\n|\Z)")


@dataclass(frozen=True)
class Article:
    """One article: its id (the file name without suffix), title, body text and metadata."""

    id: str
    title: str
    text: str
    path: Path
    meta: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def content_hash(self) -> str:
        """Changes whenever the title or the body changes; drives incremental indexing."""
        digest = hashlib.sha256(f"{self.title}\n\x00{self.text}".encode())
        return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Skipped:
    """A file of the corpus folder that was not read, and why."""

    path: Path
    reason: str


@dataclass(frozen=True)
class Corpus:
    """The articles read from a folder, and the files that were skipped."""

    articles: tuple[Article, ...]
    skipped: tuple[Skipped, ...] = ()

    def by_id(self) -> dict[str, Article]:
        return {article.id: article for article in self.articles}


def parse_article(raw: str, path: Path) -> Article:
    """Build an article from a file's text: front matter (YAML) first, else a ``# Title`` line.

    A file with neither takes its title from its name.
    """
    text = raw.replace("\r\n", "\n").lstrip("\ufeff")
    meta: dict[str, str] = {}
    match = _FRONT_MATTER.match(text)
    if match:
        try:
            loaded = yaml.safe_load(match.group(1))
        except yaml.YAMLError as exc:
            raise ValueError(f"the front matter is not valid YAML ({exc.__class__.__name__})") from exc
        if isinstance(loaded, dict):
            meta = {str(k): str(v) for k, v in loaded.items() if v is not None}
        text = text[match.end() :]
    title = meta.pop("title", "").strip()
    if not title:
        heading = _HEADING.match(text.lstrip())
        if heading:
            title = heading.group(1)
            text = text.lstrip()[heading.end() :]
    text = text.strip()
    if not title:
        title = path.stem.replace("_", " ").replace("-", " ").strip()
    return Article(id=article_id(path), title=title, text=text, path=path, meta=meta)


def article_id(path: Path) -> str:
    """A stable, readable id from the file name: lowercase ASCII, digits and dashes."""
    folded = unicodedata.normalize("NFKD", path.stem)
    ascii_only = folded.encode("ascii", "ignore").decode().lower()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_only).strip("-")
    return slug or hashlib.sha256(path.name.encode()).hexdigest()[:12]


def load_corpus(folder: Path) -> Corpus:
    """Read every ``.md``/``.txt`` file under ``folder`` (recursively, in name order).

    Files that are empty, not UTF-8 or unreadable are skipped and listed in ``Corpus.skipped``
    (and logged); they never stop the others from being read.

    Raises:
        CorpusError: the folder does not exist, or holds no readable article.
    """
    if not folder.is_dir():
        raise CorpusError(f"Corpus folder not found: {folder}. Create it and put .md or .txt articles in it.")
    articles: list[Article] = []
    skipped: list[Skipped] = []
    seen_ids: dict[str, Path] = {}
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file()):
        try:
            raw = path.read_bytes().decode("utf-8")
            article = parse_article(raw, path)
        except UnicodeDecodeError:
            skipped.append(Skipped(path, "not valid UTF-8 text; save it as UTF-8"))
            continue
        except (OSError, ValueError) as exc:
            skipped.append(Skipped(path, f"unreadable: {exc}"))
            continue
        if not article.text:
            skipped.append(Skipped(path, "empty (no text besides the title)"))
            continue
        if article.id in seen_ids:
            skipped.append(Skipped(path, f"same article id as {seen_ids[article.id].name}; rename one file"))
            continue
        seen_ids[article.id] = path
        articles.append(article)
    for item in skipped:
        logger.warning("Skipped %s: %s", item.path, item.reason)
    if not articles:
        raise CorpusError(f"No readable article in {folder}: add UTF-8 .md or .txt files.")
    return Corpus(articles=tuple(articles), skipped=tuple(skipped))
