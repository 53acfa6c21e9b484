"""Reading the articles: any folder of UTF-8 ``.md`` and ``.txt`` files, one article per file."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from chatbot.errors import CorpusError

logger = logging.getLogger(__name__)

SUFFIXES = (".md", ".txt")
MAX_FILE_BYTES = 10 * 1024 * 1024
"""Larger files are skipped: an article is a few pages; 10 MB of text is a dump or a mistake."""
_SNIFF_BYTES = 8192
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
    titled_by_name: bool = field(default=False, compare=False)

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
class Notice:
    """A file that was read, with something its owner should know (e.g. it has no title)."""

    path: Path
    message: str


@dataclass(frozen=True)
class Corpus:
    """The articles read from a folder, the files that were skipped, and notices on read files."""

    articles: tuple[Article, ...]
    skipped: tuple[Skipped, ...] = ()
    notices: tuple[Notice, ...] = ()

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
            # A list (an imported post's categories, tags) reads as its items joined by commas.
            meta = {
                str(k): ", ".join(map(str, v)) if isinstance(v, list) else str(v)
                for k, v in loaded.items()
                if v is not None
            }
        text = text[match.end() :]
    title = meta.pop("title", "").strip()
    if not title:
        heading = _HEADING.match(text.lstrip())
        if heading:
            title = heading.group(1)
            text = text.lstrip()[heading.end() :]
    text = text.strip()
    titled_by_name = not title
    if titled_by_name:
        title = path.stem.replace("_", " ").replace("-", " ").strip()
    return Article(id=article_id(path), title=title, text=text, path=path, meta=meta, titled_by_name=titled_by_name)


def article_id(path: Path) -> str:
    """A stable, readable id from the file name: lowercase ASCII, digits and dashes."""
    folded = unicodedata.normalize("NFKD", path.stem)
    ascii_only = folded.encode("ascii", "ignore").decode().lower()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_only).strip("-")
    return slug or hashlib.sha256(path.name.encode()).hexdigest()[:12]


def load_corpus(folder: Path, max_bytes: int = MAX_FILE_BYTES) -> Corpus:
    """Read every ``.md``/``.txt`` file under ``folder`` (recursively, in name order).

    Files that are empty, binary, not UTF-8, larger than ``max_bytes``, unreadable, or the same
    text as an earlier file are skipped and listed in ``Corpus.skipped`` with the reason (and
    logged); they never stop the others from being read. Hidden files and folders (``.git``...)
    and symbolic links are neither read nor followed, and listed there too. Files read without
    a title are listed in ``Corpus.notices``.

    Raises:
        CorpusError: the folder does not exist, or holds no readable article.
    """
    if not folder.is_dir():
        raise CorpusError(f"Corpus folder not found: {folder}. Create it and put .md or .txt articles in it.")
    articles: list[Article] = []
    skipped: list[Skipped] = []
    notices: list[Notice] = []
    seen_ids: dict[str, Path] = {}
    seen_texts: dict[str, Path] = {}
    for path in _article_files(folder, skipped):
        try:
            article = _read(path, max_bytes)
        except _Skip as why:
            skipped.append(Skipped(path, str(why)))
            continue
        if article.id in seen_ids:
            skipped.append(Skipped(path, f"same article id as {seen_ids[article.id].name}; rename one file"))
            continue
        text_hash = hashlib.sha256(article.text.encode()).hexdigest()
        if text_hash in seen_texts:
            skipped.append(Skipped(path, f"same text as {seen_texts[text_hash].name}; indexed once, under that file"))
            continue
        seen_ids[article.id] = path
        seen_texts[text_hash] = path
        if article.titled_by_name:
            notices.append(Notice(path, f"no title found; titled «{article.title}» after the file name"))
        articles.append(article)
    for item in skipped:
        logger.warning("Skipped %s: %s", item.path, item.reason)
    if not articles:
        raise CorpusError(f"No readable article in {folder}: add UTF-8 .md or .txt files.")
    return Corpus(articles=tuple(articles), skipped=tuple(skipped), notices=tuple(notices))


def _article_files(folder: Path, skipped: list[Skipped]) -> list[Path]:
    """The ``.md``/``.txt`` files under ``folder``, in name order. Symbolic links (a link can
    lead out of the corpus, or in a loop) and hidden files and folders are left out and added
    to ``skipped``; a hidden folder is not looked into."""
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):  # links to folders are listed in ``dirs``, never entered
        here = Path(root)
        for name in sorted(dirs):
            path = here / name
            if path.is_symlink():
                skipped.append(Skipped(path, "symbolic link to a folder; not followed (move the articles in)"))
                dirs.remove(name)
            elif name.startswith("."):
                skipped.append(Skipped(path, "hidden folder; not read"))
                dirs.remove(name)
        for name in files:
            path = here / name
            if path.suffix.lower() not in SUFFIXES:
                continue
            if path.is_symlink():
                skipped.append(Skipped(path, "symbolic link; not followed (copy the file in)"))
            elif name.startswith("."):
                skipped.append(Skipped(path, "hidden file; not read"))
            elif not path.is_file():
                skipped.append(Skipped(path, "not a regular file"))
            else:
                found.append(path)
    return sorted(found)


class _Skip(Exception):
    """Why one file is not read."""


def _read(path: Path, max_bytes: int) -> Article:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise _Skip(f"too large ({_size(size)}, the limit is {_size(max_bytes)}); split it into articles")
        data = path.read_bytes()
    except OSError as exc:
        raise _Skip(f"unreadable: {exc.strerror or exc}") from exc
    if b"\x00" in data[:_SNIFF_BYTES]:
        raise _Skip("binary file, not text")
    try:
        raw = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _Skip("not valid UTF-8 text; save it as UTF-8") from None
    try:
        article = parse_article(raw, path)
    except ValueError as exc:
        raise _Skip(f"unreadable: {exc}") from exc
    if not article.text:
        raise _Skip("empty (no text besides the title)")
    return article


def _size(n: int) -> str:
    for unit, scale in (("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"
