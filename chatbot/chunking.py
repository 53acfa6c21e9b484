"""Splitting articles into passages that know where they come from."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from langchain_text_splitters import RecursiveCharacterTextSplitter

from chatbot.corpus import Article

# From the coarsest to the finest break in French prose: paragraphs, lines, sentence ends
# (French puts a (thin) non-breaking space before ! ? ; : so the break is after them),
# clause breaks, words. Separators stay at the end of the piece they close.
FRENCH_SEPARATORS: tuple[str, ...] = (
    r"\n\s*\n",
    r"\n",
    r"(?<=[.!?…»])\s+",
    r"(?<=[;:])\s+",
    r"(?<=,)\s+",
    r"\s+",
    "",
)

SENTENCE_VERSION = 2
"""Changes whenever :func:`sentence_spans` splits differently: the index stores one vector per
sentence, in this order, and an index built by another version is rebuilt."""
# Up to . ! ? … (with the closing » or ” that may follow), or the line end.
_SENTENCE = re.compile(r"[^\n]+?(?:[.!?…]+(?:\s?[»”\"])?(?=\s)|$)", re.M)
# What a period ends without ending the sentence: French titles and abbreviations, initials
# («J.», «S.A.», «J.-C.»). Measured: pysbd and spaCy's fr_core_news_sm split the corpus worse
# (pysbd «…» and «» Elle…» joined, «J.-C.» cut; spaCy cut «n’ont pas | de site»).
_ABBREVIATION = re.compile(
    r"(?:(?<![\w’'-])(?:M|MM|Mme|Mmes|Mlle|Mlles|Me|Mgr|Dr|Pr|St|Ste|cf|p|pp|ex|av|apr|env|fig|chap|vol|art|n°|"
    r"Cie|Inc|Ltd|Co|vs)|(?<![\w’'])(?:[A-ZÀ-Ý]\.-?)*[A-ZÀ-Ý])\.$"
)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each sentence of ``text``, surrounding spaces left out; line ends
    count as sentence ends, a period after an abbreviation or an initial («M. Dupont»,
    «p. ex.», «J.-C.», «S.A.») does not. ``text[start:end]`` is the sentence."""
    spans: list[tuple[int, int]] = []
    for match in _SENTENCE.finditer(text):
        raw = match.group(0)
        stripped = raw.strip()
        if not stripped:
            continue
        start = match.start() + raw.index(stripped)
        end = start + len(stripped)
        if spans and _ABBREVIATION.search(text, 0, spans[-1][1]) and "\n" not in text[spans[-1][1] : start]:
            spans[-1] = (spans[-1][0], end)  # «Selon M.» + «Dupont, 88 %…»: one sentence
        else:
            spans.append((start, end))
    return spans


@dataclass(frozen=True)
class Chunk:
    """A passage of an article: ``article_text[start:end] == text``."""

    id: str
    article_id: str
    article_title: str
    position: int
    start: int
    end: int
    text: str
    article_url: str = ""  # the article's address on the blog (its ``url`` metadata), if it has one

    def indexed_text(self, with_title: bool) -> str:
        """The text that is embedded and keyword-indexed for this chunk."""
        return f"{self.article_title}\n\n{self.text}" if with_title else self.text

    def sentences(self) -> list[str]:
        """The chunk's sentences, in order (see :func:`sentence_spans`)."""
        return [self.text[start:end] for start, end in sentence_spans(self.text)]


@dataclass(frozen=True)
class Hit:
    """A passage found for a question: its score in the mode that found it, its 1-based rank."""

    chunk: Chunk
    score: float
    rank: int


def chunk_article(article: Article, chunk_size: int, chunk_overlap: int) -> list[Chunk]:
    """Split one article into chunks of at most ``chunk_size`` characters.

    Chunk ids (``<article id>:<position>``) only depend on the article and the settings, so an
    unchanged article gets the same ids at every rebuild.
    """
    splitter = RecursiveCharacterTextSplitter(
        separators=list(FRENCH_SEPARATORS),
        is_separator_regex=True,
        keep_separator="end",
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        strip_whitespace=True,
    )
    chunks: list[Chunk] = []
    previous_start, previous_end = -1, 0
    for piece in splitter.split_text(article.text):
        start = _locate(article.text, piece, previous_start, previous_end, chunk_overlap)
        if start < 0:  # the splitter only returns substrings; guard the invariant anyway
            raise ValueError(f"chunk {len(chunks)} of {article.id} is not a substring of the article")
        position = len(chunks)
        chunks.append(
            Chunk(
                id=f"{article.id}:{position}",
                article_id=article.id,
                article_title=article.title,
                position=position,
                start=start,
                end=start + len(piece),
                text=piece,
                article_url=article.meta.get("url", ""),
            )
        )
        previous_start, previous_end = start, start + len(piece)
    return chunks


def article_text_from_chunks(chunks: Sequence[Chunk]) -> str:
    """An article's text as the index holds it, rebuilt from its chunks: every chunk's text at
    its offsets, so that offsets into the article fall on the same words. The spaces between
    two chunks, which the chunks do not keep, come back as a line break (two or more) or a
    space (one)."""
    out: list[str] = []
    end = 0
    for chunk in sorted(chunks, key=lambda c: c.start):
        if chunk.start > end:
            gap = chunk.start - end
            out.append("\n" * gap if gap > 1 else " ")
            end = chunk.start
        if chunk.end > end:
            out.append(chunk.text[end - chunk.start :])
            end = chunk.end
    return "".join(out)


def _locate(text: str, piece: str, previous_start: int, previous_end: int, overlap: int) -> int:
    """Where the splitter took ``piece`` from: after the previous chunk, overlapping it by at most
    ``overlap`` characters. With repeated text an earlier copy of the same words would also match."""
    start = text.find(piece, max(previous_start + 1, previous_end - overlap))
    if start >= 0:
        return start
    start = text.find(piece, previous_start + 1)
    while start >= 0 and start + len(piece) <= previous_end:
        start = text.find(piece, start + 1)
    return start
