"""The check of written answers: nothing a model writes is trusted. Every [n] is checked, a
claim's quote must hold its numbers, its named things and the question's subject, and what no
quote supports is removed; a model's «not in the passages» is recognised."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from chatbot import analysis
from chatbot.question import analyze_question, fold, holds, mentions, named_things, years
from chatbot.reader.prompt import Excerpt
from chatbot.reader.values import Citation, Sentence, split_sentences

_MARKER = re.compile(r"\s*\[(\d+)\]")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|\s*\n\s*")
# A claim the model did not cite is credited to a passage only if it says something (a word
# or two, «PIRATÉ», may be in a passage without the claim being a fact from it).
MIN_CREDITED_TERMS = 3
# Share of the words a claim takes from the question that its quote (with the sentence before
# it) must hold: what the claim says about the question's subject must be in the evidence.
ECHO_SHARE = 2 / 3
# Share of its quote's words from which a word-for-word piece of it counts as a copy.
COPY_SHARE = 0.8
# A numbered or bulleted list item's lead («1. », «- »), dropped before checking the claim.
_LIST_ITEM = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+")
_LATE_MARKERS = re.compile(r"([.!?…]+)((?:\s*\[\d+\])+)")
_TRAILING = re.compile(r"(.*?)\s*([.!?…]*)$", re.S)


def check_answer(
    text: str, passages: Sequence[Excerpt], min_overlap: float, question: str = ""
) -> tuple[str, list[Citation], int]:
    """Keep only the claims the passages support, each with its verbatim quote.

    A sentence's markers are checked one by one (a marker written after the full stop, «… .
    [1]», belongs to the sentence before it); a sentence the model left uncited, or cited
    only to passages that do not hold it, is credited to the first passage that does, if
    any; a question the model writes is left out. A claim's quote is the passage sentence (or
    two in a row) that holds all its numbers and named things and most of its words, at least
    ``min_overlap``, with the question's subject in it or just before it. A claim beside the
    question is removed too: one without the asked kind of fact (no date for «En quelle année…»,
    no figure for «Quelle part…»), one that only repeats the question's words («L'événement
    s'est tenu dans une ville de province» for «Dans quelle ville de province… ?») or, for a
    count, one whose quote does not say what it counts.
    A claim no quote supports is removed, never shown marked: a wrong answer carrying an [n]
    is worse than none.
    Returns the cleaned text (markers renumbered in order of first use), one citation per
    (passage, quote), and how many markers were dropped.
    """
    # An English question's words cannot be looked for in French quotes.
    french = analysis.detect_language(question) == "fr"
    asked = frozenset(analysis.analyze(question)) if french else frozenset()
    read = analyze_question(question) if question else None
    # The question's subject: its named things, and its figures («en 2016»: a quote about 2015
    # does not answer it).
    subject = (*read.focus, *years(question)) if read else ()
    counted = bool(read and read.counted)
    numbers: dict[int, int] = {}
    citations: list[Citation] = []
    dropped = 0
    out: list[str] = []
    text = _LATE_MARKERS.sub(lambda m: f"{m.group(2)}{m.group(1)}", text.strip())
    for sentence in _SENTENCE_END.split(text):
        claim = _LIST_ITEM.sub("", _MARKER.sub("", sentence)).strip()
        if not claim or claim.endswith("?") or claim.endswith(":"):
            continue  # stray markers; a question (the model echoing it) or a list's lead-in is no answer
        claimed = Claim(
            frozenset(analysis.analyze(claim)),
            named_things(claim),
            subject,
            read.counted if read and french else frozenset(),
        )
        if counted and _only_shares(claimed.terms):
            continue  # «Combien d'entreprises…» answered by «79 %»: a share is not a count
        if asked and claimed.terms <= asked:
            continue  # the question's own words again («L'événement s'est tenu dans une ville de province»): no answer
        cited = list(dict.fromkeys(int(m) for m in _MARKER.findall(sentence)))
        quotes = {n: _supporting_sentence(claimed, passages[n - 1], min_overlap, asked)
                  for n in cited if 0 < n <= len(passages)}  # fmt: skip
        dropped += sum(quotes.get(n) is None for n in cited)
        if read and read.shaped and not holds(read.asked, claim):
            continue  # no date for «En quelle année…», no figure for «Quelle part…»: beside the question
        if not any(quotes.values()) and len(claimed.terms) >= MIN_CREDITED_TERMS:
            # Uncited, or cited to a passage that does not hold it: the passage that does, if any.
            found = ((n, _supporting_sentence(claimed, p, min_overlap, asked)) for n, p in enumerate(passages, start=1))
            quotes = dict(itertools.islice(((n, q) for n, q in found if q is not None), 1))
        kept = []
        for n, quote in quotes.items():
            if quote is None:
                continue
            new = numbers.setdefault(n, len(numbers) + 1)
            kept.append(new)
            chunk = passages[n - 1].hit.chunk
            citation = Citation.quoting(new, chunk, quote.text, quote.start, quote.end)
            if citation not in citations:
                citations.append(citation)
        if not kept:
            continue  # unsupported: removed
        body, end = _TRAILING.match(claim).groups()  # type: ignore[union-attr]
        out.append(f"{body}{''.join(f' [{n}]' for n in kept)}{end}")
    return " ".join(out), citations, dropped


def copies_its_quotes(text: str, citations: Sequence[Citation]) -> bool:
    """Every claim of a checked answer is a sentence of its passage, or most of its quote, word
    for word: the model wrote nothing the quotes do not show as well, and a copied sentence that
    does not answer is where a small model's wrong answers come from («Bien au contraire, et le
    journaliste le premier d'en témoigner» for what a plagiarist risks). A short piece of a quote
    («84 %», «24 fois plus souvent») is an answer, not a copy."""
    quotes = [_plain(c.quote) for c in citations]
    whole = {_plain(s) for c in citations for s in _SENTENCE_END.split(c.text)}
    claims = [_plain(_MARKER.sub("", claim)) for claim in _SENTENCE_END.split(text.strip())]
    claims = [claim for claim in claims if claim]

    def copied(claim: str) -> bool:
        if claim in whole:
            return True
        size = len(claim.split())
        return any(f" {claim} " in f" {quote} " and size >= COPY_SHARE * len(quote.split()) for quote in quotes)

    return bool(claims) and all(copied(claim) for claim in claims)


def _plain(text: str) -> str:
    """Folded words only: how a claim is compared with its quote."""
    return " ".join(re.findall(r"\w+", fold(text)))


def _only_shares(terms: frozenset[str]) -> bool:
    """The claim's only figures are percentages (it gives a share, not a count)."""
    figures = [t for t in terms if any(ch.isdigit() for ch in t)]
    return bool(figures) and all(t.endswith("%") for t in figures)


@dataclass(frozen=True)
class Claim:
    """What a written sentence asserts, as the check reads it: its analysed terms, the named
    things it mentions (folded) and the question's subject (folded names), which its quote
    must hold."""

    terms: frozenset[str]
    names: tuple[str, ...] = ()
    subject: tuple[str, ...] = ()
    # What a count question counts (analysed terms): the claim or its quote must say it.
    counted: frozenset[str] = frozenset()


def _supporting_sentence(
    claim: Claim, excerpt: Excerpt, min_overlap: float, asked: frozenset[str] = frozenset()
) -> Sentence | None:
    """The quote that supports a claim: a sentence of the passage, or two in a row, holding
    every number of the claim and at least ``min_overlap`` of its terms, whose words, with the
    sentence before it, hold two thirds of the words the claim takes from the question
    (``asked``): «Huawei compte 100 millions d'employés» is not supported by a sentence on 100
    million smartphones. Every named thing of the claim must be in the quote (or the sentence
    before it), and so must the question's subject (the passage's article title counts):
    «Le taux est de 16,5 % à Macao» is not supported by a sentence about Hong Kong. The one
    holding most wins (among equals, one the model read, then the shorter)."""
    terms = claim.terms
    if not terms:
        return None
    hit = excerpt.hit
    numbers = {t for t in terms if any(ch.isdigit() for ch in t)}
    echoed = terms & asked
    read = {(s.start, s.end) for s in excerpt.sentences}
    singles = split_sentences(hit, 1)
    pairs = [replace(a, end=b.end, text=hit.chunk.text[a.start : b.end]) for a, b in itertools.pairwise(singles)]
    title = fold(hit.chunk.article_title)
    best, key = None, (min_overlap, False, -(10**9))
    for sentence in [*excerpt.sentences, *singles, *pairs]:
        words = set(analysis.analyze(sentence.text))
        if not numbers <= words:
            continue
        share = len(terms & words) / len(terms)
        candidate = (share, (sentence.start, sentence.end) in read, sentence.start - sentence.end)
        if candidate <= key:  # the first candidate passes only with min_overlap of the terms
            continue
        before = max((s.start for s in singles if s.end <= sentence.start), default=sentence.start)
        if claim.counted or echoed:
            # The quote's words with the sentence before it, where its subject is often named.
            context = words | set(analysis.analyze(hit.chunk.text[before : sentence.start]))
            if claim.counted and not claim.counted & (terms | context):
                continue  # «230 milliards de dollars» for how many smartphones: it counts something else
            if echoed and len(echoed & context) < ECHO_SHARE * len(echoed):
                continue
        if claim.names or claim.subject:
            around = fold(hit.chunk.text[before : sentence.end])
            if any(mentions(name, around) < 1.0 for name in claim.names):
                continue  # a name the quote does not give whole: another country, another company
            if any(mentions(fold(name), f"{around} {title}") < 1.0 for name in claim.subject):
                continue  # the asked thing is not what the quote is about
        best, key = sentence, candidate
    return best


# A model's way of saying the passages do not answer («Les passages ne précisent pas…»).
_NOT_FOUND = re.compile(
    r"\b(?:ne (?:contiennent|mentionnent|précisent|donnent|disent|indiquent|fournissent|parlent|permettent)"
    r"|n['’](?:indiquent|évoquent|abordent|apportent|offrent)"
    r"|aucune (?:information|mention|indication|donnée|précision)|pas d['’]information|pas mentionn|pas précis"
    r"|do(?:es)? not (?:contain|mention|say|state|specify|provide|give|include)|no information|not mentioned"
    r"|not (?:stated|specified|provided)|cannot find|n['’]est pas (?:mentionn|précis|indiqu))",
    re.I,
)


_ABOUT_SOURCES = re.compile(r"passage|article|texte|document|information|context|source", re.I)


def says_not_found(written: str) -> bool:
    """The model answered that the passages do not hold the answer (its first sentence says so)."""
    first = _SENTENCE_END.split(written.strip(), maxsplit=1)[0]
    return bool(_NOT_FOUND.search(first) and _ABOUT_SOURCES.search(first))
