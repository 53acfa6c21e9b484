"""Importing the blog's own posts: a WordPress export (WXR) or saved HTML pages, one corpus
file per published post.

The export is XML parsed by ``defusedxml`` (no entity expansion: an «XML bomb» is refused,
not expanded); post bodies and pages are HTML whose text ``trafilatura`` extracts. What is
done here is only what those libraries cannot know about WordPress:

- shortcodes (``[caption]…[/caption]`` keeps its caption text, media and embed shortcodes
  such as ``[embed]``, ``[video]``, ``[gallery]`` are dropped, any other enclosing shortcode
  keeps its content), ``<!--more-->`` and ``<!--nextpage-->`` become a paragraph break;
- paragraphs: the classic editor stores them as blank lines (WordPress adds the ``<p>`` when
  it shows a post), so blank-line paragraphs are wrapped before the HTML is parsed;
- embeds (iframes, tweets, Instagram posts, WordPress embed blocks, a URL alone on its line)
  and images are dropped, as the hand-made corpus drops its image names and tweet
  placeholders; captions are the author's words and are kept;
- non-breaking and thin spaces are kept as the post has them (the extractor would make
  them plain spaces).

Each file is written only when its content changes, so ``chatbot index`` embeds again only
what changed. See ``docs/import.md``.
"""

from __future__ import annotations

import html
import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from chatbot.corpus import article_id, parse_article
from chatbot.errors import ImportSourceError

logger = logging.getLogger(__name__)

PAGE_SUFFIXES = (".html", ".htm")
Progress = Callable[[int, int], None]
"""``progress(read, known)``: items read so far, and items known so far (an export's items are
known once it is parsed)."""
MAX_SOURCE_BYTES = 200 * 1024 * 1024
"""A WXR export of a large blog is tens of MB; past this it is not an export."""

_WP = "http://wordpress.org/export/"  # 1.0, 1.1 and 1.2 differ in the version at the end
_CONTENT = "http://purl.org/rss/1.0/modules/content/"
_DC = "http://purl.org/dc/elements/1.1/"

# WordPress's own shortcode grammar (wp-includes/shortcodes.php, get_shortcode_regex), for any
# name: [[escaped]], [name attrs], [name attrs /], [name attrs]content[/name].
_SHORTCODE = re.compile(
    r"\[(\[?)([\w-]+)(?![\w-])([^\]/]*(?:/(?!\])[^\]/]*)*?)(?:(/)\]|\](?:([^\[]*+(?:\[(?!/\2\])[^\[]*+)*+)\[/\2\])?)(\]?)"
)
_DROPPED_SHORTCODES = frozenset(
    "embed video audio gallery playlist youtube vimeo dailymotion tweet twitter instagram soundcloud "
    "googlemaps gist wpvideo slideshare spotify".split()
)
_CAPTIONS = frozenset(("caption", "wp_caption"))
_PAGE_BREAK = re.compile(r"<!--\s*(?:more|nextpage)\b[^>]*-->")
_BLOCK_START = re.compile(
    r"\A\s*<(?:!--|/?(?:p|div|ul|ol|li|dl|blockquote|h[1-6]|figure|table|pre|hr|section|article|aside|form|address|"
    r"iframe|script|style|details|header|footer|nav)\b)",
    re.I,
)
_LONE_URL = re.compile(r"\A\s*https?://\S+\s*\Z")
# Spaces the extractor would turn into plain ones, kept through it as stand-ins: printable
# (it drops unprintable characters) and never in a French blog (Egyptian hieroglyphs).
_KEPT_SPACES = {"\u00a0": "\U00013000", "\u202f": "\U00013001", "\u2009": "\U00013002", "\u2007": "\U00013003"}
_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([\w-]+)""", re.I)
_EMBED_CLASSES = ("wp-block-embed", "twitter-tweet", "instagram-media", "tiktok-embed", "wp-embedded-content")


@dataclass(frozen=True)
class Post:
    """A published post as the export or page has it, its body as plain text."""

    source_id: str  # the post's permanent id: WordPress's guid/shortlink (…/?p=ID), else its URL
    slug: str
    title: str
    text: str
    url: str = ""
    date: str = ""
    author: str = ""
    categories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    blog: str = ""  # the blog a full export comes from: its posts missing next time are «removed»


@dataclass(frozen=True)
class ImportProblem:
    """A post (or a whole file) with something wrong: ``imported`` says whether it still came in."""

    source: Path
    post: str
    message: str
    imported: bool = False

    def __str__(self) -> str:
        where = f"{self.source}, {self.post}" if self.post else str(self.source)
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class ImportSummary:
    """What :func:`import_posts` did. ``removed``: files imported from the same blog before
    whose post is no longer in the export; deleted only when asked (``deleted``)."""

    added: tuple[Path, ...] = ()
    updated: tuple[Path, ...] = ()
    unchanged: tuple[Path, ...] = ()
    removed: tuple[Path, ...] = ()
    deleted: bool = False
    drafts: int = 0
    pages: int = 0
    attachments: int = 0
    other: int = 0
    problems: tuple[ImportProblem, ...] = ()
    unreadable: tuple[ImportProblem, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or (self.removed and self.deleted))

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``chatbot import --json``."""
        return {
            "added": [str(p) for p in self.added],
            "updated": [str(p) for p in self.updated],
            "unchanged": [str(p) for p in self.unchanged],
            "removed": [str(p) for p in self.removed],
            "deleted": self.deleted,
            "skipped": {
                "drafts": self.drafts,
                "pages": self.pages,
                "attachments": self.attachments,
                "other": self.other,
            },
            "problems": [_problem_dict(p) for p in self.problems],
            "unreadable": [_problem_dict(p) for p in self.unreadable],
        }


def _problem_dict(problem: ImportProblem) -> dict[str, Any]:
    return {
        "source": str(problem.source),
        "post": problem.post,
        "message": problem.message,
        "imported": problem.imported,
    }


@dataclass
class _Read:
    """What the sources gave: the posts to write and what was left out."""

    posts: list[tuple[Path, Post]] = field(default_factory=list)
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("drafts", "pages", "attachments", "other"), 0)
    )
    problems: list[ImportProblem] = field(default_factory=list)
    unreadable: list[ImportProblem] = field(default_factory=list)
    blogs: set[str] = field(default_factory=set)  # blogs whose full export was read
    progress: Progress | None = None
    known: int = 0
    done: int = 0

    def expect(self, items: int) -> None:
        self.known += items
        self._report()

    def text_of(self, path: Path, label: str, extract: Callable[[], str], empty: str) -> str:
        """The text ``extract`` gives for the post ``label``; "" (and the post's problem noted)
        when its HTML cannot be read or holds no text."""
        try:
            text = extract()
        except ValueError as exc:
            self.problems.append(ImportProblem(path, label, f"its HTML cannot be read ({exc}); not imported"))
            return ""
        if not text:
            self.problems.append(ImportProblem(path, label, f"{empty}; not imported"))
        return text

    def step(self) -> None:
        self.done += 1
        self._report()

    def _report(self) -> None:
        if self.progress is not None:
            self.progress(self.done, self.known)


def import_posts(
    sources: Sequence[Path], corpus_dir: Path, *, delete_removed: bool = False, progress: Progress | None = None
) -> ImportSummary:
    """Write one ``.md`` file per published post of ``sources`` into ``corpus_dir``.

    ``sources``: WXR exports (``.xml``), HTML pages, or folders of HTML pages. A post imported
    before keeps its file (found by its ``source_id``); a file whose content would not change
    is not rewritten. Posts imported from a blog's export before and missing from its new
    export are listed in ``removed``, and deleted only with ``delete_removed``. A post that
    cannot be imported is listed in ``problems`` and the others are imported; a file that
    cannot be read at all is listed in ``unreadable``. ``progress`` is told of every item read
    (extracting a post's text is the slow part: about 0.1 s a post).
    """
    read = _Read(progress=progress)
    paths = _expand(sources, read)
    read.expect(sum(path.suffix.lower() in PAGE_SUFFIXES for path in paths))
    for path in paths:
        try:
            if path.suffix.lower() in PAGE_SUFFIXES:
                _read_page(path, read)
            else:
                _read_wxr(path, read)
        except ImportSourceError as exc:
            read.unreadable.append(ImportProblem(path, "", str(exc)))
        finally:
            if path.suffix.lower() in PAGE_SUFFIXES:
                read.step()
    for problem in [*read.unreadable, *read.problems]:
        logger.warning("%s", problem)
    posts = _without_duplicates(read)
    corpus_dir.mkdir(parents=True, exist_ok=True)
    existing = _imported_files(corpus_dir)
    taken = {article_id(p) for p in corpus_dir.rglob("*") if p.suffix.lower() in (".md", ".txt")}
    added: list[Path] = []
    updated: list[Path] = []
    unchanged: list[Path] = []
    seen: set[str] = set()
    for source, post in posts:
        seen.add(post.source_id)
        if post.source_id in existing:
            path = existing[post.source_id][0]
        else:
            path = _new_path(corpus_dir, post, taken)
            taken.add(article_id(path))
        try:
            content = render(post, path)
        except ValueError as exc:
            read.problems.append(ImportProblem(source, _name(post), str(exc)))
            continue
        old = path.read_text(encoding="utf-8") if path.is_file() else None
        if old == content:
            unchanged.append(path)
            continue
        _write(path, content)
        (added if old is None else updated).append(path)
    removed = sorted(path for sid, (path, blog) in existing.items() if blog and blog in read.blogs and sid not in seen)
    if delete_removed:
        for path in removed:
            path.unlink(missing_ok=True)
    return ImportSummary(
        added=tuple(added),
        updated=tuple(updated),
        unchanged=tuple(unchanged),
        removed=tuple(removed),
        deleted=delete_removed and bool(removed),
        problems=tuple(read.problems),
        unreadable=tuple(read.unreadable),
        **read.counts,
    )


def render(post: Post, path: Path) -> str:
    """The corpus file of ``post``: YAML front matter, then the text. Checked: reading it back
    (:func:`chatbot.corpus.parse_article`) gives exactly the post's title and text.

    Raises:
        ValueError: the file would not read back as the post (a bug, or a text that starts
            like front matter).
    """
    meta: dict[str, Any] = {"title": post.title}
    for key in ("date", "author", "url"):
        if getattr(post, key):
            meta[key] = getattr(post, key)
    if post.categories:
        meta["categories"] = list(post.categories)
    if post.tags:
        meta["tags"] = list(post.tags)
    meta["source_id"] = post.source_id
    if post.blog:
        meta["blog"] = post.blog
    front = yaml.safe_dump(meta, allow_unicode=True, sort_keys=False, width=10**6)
    content = f"---\n{front}---\n\n{post.text}\n"
    back = parse_article(content, path)
    if back.title != post.title or back.text != post.text:
        raise ValueError("its text would not read back unchanged from the corpus file; not imported")
    return content


def html_to_text(fragment: str) -> str:
    """The text of a WordPress post body (``content:encoded``) or of any HTML fragment."""
    body = _paragraphs(_shortcodes(_PAGE_BREAK.sub("\n\n", fragment)))
    return _extract(f"<html><body><article>{body}</article></body></html>")


# Reading the sources


def _expand(sources: Sequence[Path], read: _Read) -> list[Path]:
    paths: list[Path] = []
    for source in sources:
        if source.is_dir():
            pages = sorted(p for p in source.rglob("*") if p.suffix.lower() in PAGE_SUFFIXES and p.is_file())
            if not pages:
                read.unreadable.append(ImportProblem(source, "", "no .html page in this folder"))
            paths += pages
        elif source.is_file():
            paths.append(source)
        else:
            read.unreadable.append(ImportProblem(source, "", "no such file or folder"))
    return paths


def _read_bytes(path: Path) -> bytes:
    try:
        if path.stat().st_size > MAX_SOURCE_BYTES:
            raise ImportSourceError(f"larger than {MAX_SOURCE_BYTES // 10**6} MB; not a blog export")
        return path.read_bytes()
    except OSError as exc:
        raise ImportSourceError(f"cannot be read: {exc.strerror or exc}") from exc


def _read_wxr(path: Path, read: _Read) -> None:
    """Add the published posts of a WordPress export to ``read``; count what is skipped.

    Raises:
        ImportSourceError: not XML, truncated, an XML bomb, or not an RSS/WXR export.
    """
    import defusedxml.ElementTree as SafeET
    from defusedxml import DefusedXmlException

    data = _read_bytes(path)
    try:
        root = SafeET.fromstring(data)
    except DefusedXmlException as exc:
        raise ImportSourceError(
            f"refused: it declares XML entities or a DTD ({exc.__class__.__name__}), which a WordPress export "
            "never does (an «XML bomb» would expand to gigabytes)"
        ) from exc
    except SafeET.ParseError as exc:
        raise ImportSourceError(
            f"not a readable XML file ({exc}); export it again with WordPress's Tools → Export"
        ) from exc
    channel = root.find("channel")
    if _local(root.tag) != "rss" or channel is None:
        raise ImportSourceError(f"not a WordPress export (WXR): the root element is <{_local(root.tag)}>, not <rss>")
    blog = _child(channel, _WP, "base_blog_url") or _child(channel, _WP, "base_site_url") or _child(channel, "", "link")
    authors = {
        _child(a, _WP, "author_login"): _child(a, _WP, "author_display_name")
        for a in channel
        if _ns(a.tag).startswith(_WP) and _local(a.tag) == "author"
    }
    read.blogs.add(blog)
    items = list(channel.iter("item"))
    read.expect(len(items))
    for n, item in enumerate(items, start=1):
        read.step()
        kind = _child(item, _WP, "post_type") or "post"
        status = _child(item, _WP, "status") or "publish"
        if kind != "post":
            key = {"page": "pages", "attachment": "attachments"}.get(kind, "other")
            read.counts[key] += 1
            continue
        if status != "publish":
            read.counts["drafts"] += 1
            continue
        post_id = _child(item, _WP, "post_id")
        slug = unquote(_child(item, _WP, "post_name"))
        raw_title = _child(item, "", "title")
        label = f"post {post_id or n}" + (
            f" «{raw_title.strip()}»" if raw_title.strip() else f" ({slug})" if slug else ""
        )
        body = partial(html_to_text, _child(item, _CONTENT, "encoded"))
        text = read.text_of(path, label, body, "no text in the post")
        if not text:
            continue
        link = _child(item, "", "link")
        source_id = _child(item, "", "guid") or (f"{blog.rstrip('/')}/?p={post_id}" if post_id else link)
        if not source_id:
            read.problems.append(ImportProblem(path, label, "no id, guid nor link to know it by; not imported"))
            continue
        title = _plain(raw_title)
        if not title:
            title = _title_from(slug or link)
            read.problems.append(
                ImportProblem(path, label, f"no title; imported titled «{title}» after its address", imported=True)
            )
        categories = tuple(
            _plain(c.text or "") for c in item if _local(c.tag) == "category" and c.get("domain") == "category"
        )
        tags = tuple(
            _plain(c.text or "") for c in item if _local(c.tag) == "category" and c.get("domain") == "post_tag"
        )
        creator = _child(item, _DC, "creator")
        date = _child(item, _WP, "post_date")
        post = Post(
            source_id=source_id,
            slug=slug or _slug_from_url(link),
            title=title,
            text=text,
            url=link,
            date="" if date.startswith("0000") else date,
            author=authors.get(creator) or creator,
            categories=tuple(dict.fromkeys(c for c in categories if c)),
            tags=tuple(dict.fromkeys(t for t in tags if t)),
            blog=blog,
        )
        read.posts.append((path, post))


def _read_page(path: Path, read: _Read) -> None:
    """Add the post of one saved HTML page to ``read``.

    Raises:
        ImportSourceError: the file cannot be read or decoded.
    """
    import lxml.html
    import trafilatura
    from lxml import etree

    data = _read_bytes(path)
    if b"\x00" in data[:8192]:
        raise ImportSourceError("a binary file, not an HTML page")
    try:
        tree = lxml.html.document_fromstring(_shortcodes(_decode(data)))
    except (etree.LxmlError, ValueError) as exc:
        raise ImportSourceError(f"not a readable HTML page ({exc})") from exc
    label = f"page {path.name}"
    meta = trafilatura.extract_metadata(tree)
    shortlink = next(iter(tree.xpath("//link[@rel='shortlink']/@href")), "")
    url = (meta.url if meta is not None and meta.url else "") or next(
        iter(tree.xpath("//link[@rel='canonical']/@href")), ""
    )
    title = _plain(meta.title) if meta is not None and meta.title else ""
    text = read.text_of(path, label, partial(_extract, tree, title), "no article text found in the page")
    if not text:
        return
    if not title:
        title = _title_from(url or path.stem)
        read.problems.append(ImportProblem(path, label, f"no title; imported titled «{title}»", imported=True))
    read.posts.append(
        (
            path,
            Post(
                source_id=str(shortlink or url or f"file:{path.name}"),
                slug=_slug_from_url(url) or path.stem,
                title=title,
                text=text,
                url=str(url),
                date=(meta.date or "") if meta is not None else "",
                author=(meta.author or "") if meta is not None else "",
                categories=tuple(meta.categories or ()) if meta is not None else (),
                tags=tuple(meta.tags or ()) if meta is not None else (),
            ),
        )
    )


def _decode(data: bytes) -> str:
    """A page's text: UTF-8, else the charset the page declares (``<meta charset>``).

    Raises:
        ImportSourceError: neither decodes it.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    declared = _CHARSET.search(data[:4096])
    if declared:
        try:
            return data.decode(declared.group(1).decode("ascii"))
        except (LookupError, UnicodeDecodeError):
            pass
    raise ImportSourceError("not UTF-8, nor in the charset it declares; save the page again as UTF-8")


def _without_duplicates(read: _Read) -> list[tuple[Path, Post]]:
    """The posts, a second one with the same id or URL as an earlier one left out and reported."""
    by_id: dict[str, str] = {}
    by_url: dict[str, str] = {}
    kept = []
    for source, post in read.posts:
        earlier = by_id.get(post.source_id) or (by_url.get(post.url) if post.url else None)
        if earlier:
            what = "id" if post.source_id in by_id else "URL"
            read.problems.append(
                ImportProblem(source, _name(post), f"same {what} as {earlier}; imported once, as that one")
            )
            continue
        by_id[post.source_id] = _name(post)
        if post.url:
            by_url[post.url] = _name(post)
        kept.append((source, post))
    return kept


# Text


def _shortcodes(text: str) -> str:
    """WordPress shortcodes replaced by what a reader sees of them in text (see the module)."""

    def replace(match: re.Match[str]) -> str:
        if match.group(1) == "[" and match.group(6) == "]":  # [[name]] is the literal text [name]
            return match.group(0)[1:-1]
        name, attrs, content = match.group(2).lower(), match.group(3), match.group(5)
        if name in _CAPTIONS:
            return f"<p>{_shortcodes(content or _attr(attrs, 'caption'))}</p>"
        if name in _DROPPED_SHORTCODES:
            return ""
        if content is not None:
            return _shortcodes(content)
        # A bracketed word without attributes is prose ([sic], [1]); with them, a shortcode.
        return "" if "=" in attrs or match.group(4) else match.group(0)

    return _SHORTCODE.sub(replace, text)


def _attr(attrs: str, name: str) -> str:
    found = re.search(rf'{name}\s*=\s*"([^"]*)"', attrs)
    return found.group(1) if found else ""


def _paragraphs(body: str) -> str:
    """Blank-line paragraphs (the classic editor's) wrapped in ``<p>``, their line breaks as
    ``<br>`` (as WordPress's wpautop does when it shows a post); a URL alone on its line is an
    embed and left out."""
    out = []
    for block in re.split(r"\n\s*\n", body.replace("\r\n", "\n")):
        if not block.strip() or _LONE_URL.match(block):
            continue
        if _BLOCK_START.match(block):
            out.append(block)
        else:
            lines = [line for line in block.strip().split("\n") if not _LONE_URL.match(line)]
            out.append("<p>" + "<br>\n".join(lines) + "</p>")
    return "\n".join(out)


def _extract(page: Any, title: str = "") -> str:
    """The main text of an HTML page or tree, one line per paragraph, list item or line break.

    Raises:
        ValueError: the HTML cannot be parsed.
    """
    import lxml.html
    import trafilatura
    from lxml import etree

    try:
        tree = lxml.html.document_fromstring(page) if isinstance(page, str) else page
    except etree.LxmlError as exc:
        raise ValueError(str(exc)) from exc
    for element in tree.iter():
        if isinstance(element.tag, str):
            for attr in ("text", "tail"):
                value = getattr(element, attr)
                if value:
                    setattr(element, attr, _keep_spaces(value))
    for element in list(tree.iter("iframe", "script", "object", "embed", "video", "audio", "noscript")):
        _drop(element)
    for cls in _EMBED_CLASSES:
        for element in tree.xpath(f"//*[contains(concat(' ', normalize-space(@class), ' '), ' {cls} ')]"):
            _drop(element)
    for caption in list(tree.iter("figcaption")):
        # The extractor leaves figures out, captions with them: the caption takes the figure's place.
        figure = next((a for a in caption.iterancestors() if a.tag == "figure"), None)
        caption.tag = "p"
        if figure is not None and figure.getparent() is not None:
            caption.tail = figure.tail
            figure.getparent().replace(figure, caption)
    text = trafilatura.extract(
        tree,
        output_format="txt",
        favor_recall=True,
        include_comments=False,
        include_tables=True,
        include_images=False,
        include_links=False,
        deduplicate=False,
    )
    lines = [line.rstrip() for line in _restore_spaces(text or "").split("\n")]
    if title and lines and lines[0].strip() == title:  # the page's own heading
        lines = lines[1:]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _drop(element: Any) -> None:
    """Remove ``element`` and its content, keeping the text that follows it."""
    if element.getparent() is not None:
        element.drop_tree()


def _keep_spaces(text: str) -> str:
    for space, stand_in in _KEPT_SPACES.items():
        text = text.replace(space, stand_in)
    return text


def _restore_spaces(text: str) -> str:
    for space, stand_in in _KEPT_SPACES.items():
        text = text.replace(stand_in, space)
    return text


def _plain(text: str) -> str:
    """A title or a category as plain text: entities decoded, any markup dropped."""
    if "<" in text:
        import lxml.html

        text = lxml.html.fragment_fromstring(text, create_parent="div").text_content()
    return " ".join(html.unescape(text).split())


# Files


def _imported_files(corpus_dir: Path) -> dict[str, tuple[Path, str]]:
    """Files imported before: their ``source_id`` → (path, the blog of their export)."""
    found: dict[str, tuple[Path, str]] = {}
    for path in sorted(corpus_dir.rglob("*.md")):
        if any(part.startswith(".") for part in path.relative_to(corpus_dir).parts) or path.is_symlink():
            continue
        try:
            meta = parse_article(path.read_text(encoding="utf-8"), path).meta
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        if meta.get("source_id"):
            found.setdefault(meta["source_id"], (path, meta.get("blog", "")))
    return found


def _new_path(corpus_dir: Path, post: Post, taken: set[str]) -> Path:
    """A file name from the post's slug (its address), unique among the corpus's article ids."""
    stem = article_id(Path(post.slug or post.title)) if (post.slug or post.title) else "post"
    path = corpus_dir / f"{stem}.md"
    n = 2
    while article_id(path) in taken:
        path = corpus_dir / f"{stem}-{n}.md"
        n += 1
    return path


def _write(path: Path, content: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(content, encoding="utf-8")
    os.replace(tmp, path)


# XML helpers


def _ns(tag: str) -> str:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(element: Any, namespace: str, name: str) -> str:
    """The text of ``element``'s first child ``name`` in ``namespace`` (a prefix of it), or «»."""
    for child in element:
        if _local(child.tag) == name and (_ns(child.tag).startswith(namespace) if namespace else not _ns(child.tag)):
            return (child.text or "").strip() if name != "encoded" else child.text or ""
    return ""


def _slug_from_url(url: str) -> str:
    parts = [p for p in urlsplit(url).path.split("/") if p]
    return unquote(parts[-1]).rsplit(".", 1)[0] if parts else ""


def _title_from(address: str) -> str:
    slug = _slug_from_url(address) if "://" in address else address
    return slug.replace("-", " ").replace("_", " ").strip().capitalize() or "Sans titre"


def _name(post: Post) -> str:
    return f"post «{post.title}» ({post.url or post.source_id})"
