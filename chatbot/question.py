"""What a question asks: the kind of fact (a number, an amount, a date, a person, a place…),
the named things it is about, and whether it is a bare keyword query.

An answer must hold the asked kind of fact *about the asked thing*: «Quand WeChat a-t-il été
lancé ?» is about WeChat (named in the articles) and asks a date (which no sentence about
WeChat gives). Rules on the question's words, in French and English; measured as features of
the reader (:mod:`chatbot.reader`), never trusted alone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from chatbot import analysis
from chatbot.conversation import follow_up_context

# Asked kinds whose answer has a shape a sentence can be checked for. «Qui» and «où»
# questions are often answered by a description («des étudiants universitaires»), so names
# are not a shape.
SHAPED = ("number", "amount", "date")

# First match wins: «Combien coûte…» is an amount before it is a number. Patterns run on the
# casefolded, accent-folded question with straight apostrophes.
_ASKED: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern))
    for kind, pattern in (
        (
            "amount",
            r"\bcombien (?:coute|coutent|vaut|valent|d'argent|a-t-(?:il|elle) (?:coute|leve|depense))"
            r"|\b(?:prix|budget|montant|chiffre d'affaires|salaire|cout|tarif|revenu)s?\b"
            r"|\bhow much (?:does|do|did|money)|\b(?:price|cost|budget|revenue|salary|turnover)s?\b",
        ),
        (
            "date",
            r"^(?:et )?quand\b|\bdepuis quand\b|\ben quelle annee\b|\bquelle (?:est la )?date\b|\bdate de\b"
            r"|\ben quel mois\b"
            r"|^(?:and )?when\b|\bwhat year\b|\bsince when\b",
        ),
        (
            "number",
            r"\bcombien\b|\bquel(?:le)? (?:est le |est la )?(?:pourcentage|part|proportion|taux|nombre|population|age"
            r"|croissance|plafond)\b|\bquel age\b|\bhow many\b|\bhow much\b"
            r"|\bwhat (?:share|percentage|proportion|number|rate)\b|\bpopulation\b",
        ),
        (
            "organisation",
            r"\bquel(?:le)?s? (?:entreprise|societe|marque|universite|ecole|ministere|organisation|association"
            r"|agence|groupe|cabinet|start-up|startup|firme|enseigne)s?\b|\bpour qui travaille\b|\bchez qui\b"
            r"|\bwhich (?:company|firm|university|school|brand|organi[sz]ation|agency|ministry)\b",
        ),
        (
            "person",
            r"^(?:et )?qui\b|\bqui (?:a|est|sont|dirige|a fonde|se)\b|\bcomment s'appelle\b|\bquel est le nom\b"
            r"|\bfondateur\b|^(?:and )?who\b|\bwhat is the name\b|\bfounder\b",
        ),
        (
            "place",
            r"^(?:et )?ou\b|\bd'ou\b|\bdans quel(?:le)? (?:ville|pays|region)\b|\bquel pays\b|\bsiege\b"
            r"|^(?:and )?where\b|\bin which (?:city|country|region)\b|\bheadquarter",
        ),
        ("reason", r"\bpourquoi\b|\bpour quelle raison\b|\bwhy\b"),
    )
)
_QUESTION_START = re.compile(
    r"^(?:qu|quel|quelle|quels|quelles|que|qui|quoi|quand|comment|combien|pourquoi|ou|est-ce|et|"
    r"what|which|who|whom|when|where|why|how|is|are|do|does|did|can|could|should|will|would|has|have)\b"
)
# A question that asks for a thing («Quelle entreprise chinoise frôle la place d'Apple ?»,
# «Which carmaker…?»): a follow-up's pronoun then points at its answer, not at its names.
_ASKS_FOR_A_THING = re.compile(
    r"^(?:et )?(?:quel(?:le)?s?|which|what) (?!(?:est|sont|etait|etaient|sera|a|ont|is|are|was|were|do|does|did"
    r"|part|proportion|pourcentage|taux|nombre|montant|chiffre|prix|cout|rang|age|annee|date|duree|population"
    r"|croissance|plafond|share|percentage|rate|number|year|price|amount)\b)[a-z]"
)
# Words that join the parts of a name: «Yvon le Renard», «Michel et Augustin».
_NAME_JOINERS = {"le", "la", "de", "du", "des", "et", "of", "the", "d", "l"}
# Job titles written in capitals are not names: «le CEO de Huawei» is about Huawei.
_ROLES = {"ceo", "pdg", "dg", "cto", "cfo", "coo", "cmo", "drh", "vp", "md"}
_NAME_WORD = re.compile(r"[#@]?[\w][\w'’.\-]*")
_ELIDED = re.compile(r"^(?:[ldjmnstc]|qu|jusqu|lorsqu|puisqu)['’](?=\w)", re.I)
_NUMBER_WORDS = re.compile(
    r"\b(?:deux|trois|quatre|cinq|six|sept|huit|neuf|dix|onze|douze|quinze|vingt|trente|quarante|cinquante"
    r"|cent|mille|millions?|milliards?|moitie|tiers|quart|double|triple|dizaine|douzaine|quinzaine|vingtaine"
    r"|trentaine|centaine|majorite)\b"
)
# The counted noun of a count question: «combien d'employés», «how many users», «la population».
_COUNTED = re.compile(
    r"\bcombien (?:de |d')(?!temps\b|fois\b)(?:[a-z]+ )??(\w{4,})|\bhow many (\w{4,})|\b(population)\b"
)
_YEAR = re.compile(r"\b(?:1[89]\d\d|20\d\d)\b")
_MONTH = re.compile(
    r"\b(?:janvier|fevrier|mars|avril|mai|juin|juillet|aout|septembre|octobre|novembre|decembre|"
    r"january|february|march|april|june|july|august|september|october|november|december)\b"
)
_DIGIT = re.compile(r"\d")
_MONEY = re.compile(r"\d[\d\s.,]*\s*(?:€|\$|euros?|dollars?|millions?|milliards?|k€|m€)|[€$]\s*\d")


@dataclass(frozen=True)
class QuestionAnalysis:
    """The asked kind of fact, the named things asked about (accent-folded, casefolded words),
    the question's own content terms without those names, and whether it is a bare keyword query."""

    asked: str  # one of SHAPED, "organisation", "person", "place", "reason", or "other"
    focus: tuple[str, ...]
    predicate: frozenset[str]
    keyword: bool
    # What a count is of («Combien d'employés…» → the stem of «employés»): a sentence that gives
    # a number about the asked thing must count that.
    counted: frozenset[str] = frozenset()
    counted_words: tuple[str, ...] = ()  # ... as the question writes it («employés»)

    @property
    def shaped(self) -> bool:
        """The asked fact has a shape a sentence can be checked for (:func:`holds`)."""
        return self.asked in SHAPED


def fold(text: str) -> str:
    """Casefolded, accent-folded, straight apostrophes: how names and patterns are compared."""
    return analysis.fold_accents(text.casefold()).replace("’", "'")


def analyze_question(question: str, history: Sequence[str] = ()) -> QuestionAnalysis:
    """Analyse ``question``; a short follow-up («Et en Finlande ?») takes the kind of fact asked
    and, when it names nothing, the named things of the previous question."""
    text = " ".join(question.split())
    folded = fold(text)
    asked = next((kind for kind, pattern in _ASKED if pattern.search(folded)), "other")
    keyword = _is_keyword(text, folded)
    focus = named_things(text, keyword)
    previous = follow_up_context(text, history)
    if previous:
        before = analyze_question(previous)
        if asked == "other":
            asked = before.asked
        if not focus and not _ASKS_FOR_A_THING.match(fold(" ".join(previous.split()))):
            focus = before.focus
    names = {term for name in focus for term in analysis.analyze(name)}
    predicate = frozenset(analysis.analyze(text)) - names
    written = tuple(w for m in _COUNTED.findall(text.casefold().replace("’", "'")) for w in m if w)
    counted = frozenset(analysis.analyze(" ".join(written))) - names if asked == "number" else frozenset()
    return QuestionAnalysis(
        asked=asked, focus=focus, predicate=predicate, keyword=keyword, counted=counted,
        counted_words=tuple(w for w in written if set(analysis.analyze(w)) <= counted) if counted else (),
    )  # fmt: skip


def _is_keyword(text: str, folded: str) -> bool:
    """A bare keyword or name query: no question mark, no question word, a few words."""
    return "?" not in text and not _QUESTION_START.match(folded) and len(text.split()) <= 4


def named_things(text: str, keyword: bool = False) -> tuple[str, ...]:
    """Names in the question: runs of capitalised words (and #tags, acronyms, words with
    digits), joined by «le», «de», «et»…. The first word of a question counts only when it
    is not a plain capitalised word («LinkedIn», «DJI»): «Selon Nielsen…» is about Nielsen."""
    names: list[str] = []
    current: list[str] = []
    pending: list[str] = []
    for position, match in enumerate(_NAME_WORD.finditer(text)):
        word = _ELIDED.sub("", match.group()).strip("'’.-")
        is_name = (
            bool(word)
            and fold(word) not in _ROLES
            and (
                word[0] in "#@"
                or (word[0].isupper() and (position > 0 or keyword or any(c.isupper() for c in word[1:])))
                or (any(c.isdigit() for c in word) and any(c.isalpha() for c in word))
            )
        )
        if is_name:
            current += [*pending, word] if current else [word]
            pending = []
        elif current and fold(word) in _NAME_JOINERS and not pending:
            pending = [word]
        else:
            if current:
                names.append(" ".join(current))
            current, pending = [], []
    if current:
        names.append(" ".join(current))
    return tuple(dict.fromkeys(fold(n) for n in names if len(n) > 1))


def holds(asked: str, sentence: str) -> bool:
    """Whether ``sentence`` has the shape of the asked kind of fact (a digit or number word for
    a number, a currency for an amount, a year or month for a date); never for other kinds."""
    if asked == "number":
        # A year is a date, not a count: «fondée en 2006» does not say how many founded it.
        return bool(_DIGIT.search(_YEAR.sub(" ", sentence)) or _NUMBER_WORDS.search(fold(sentence)))
    if asked == "amount":
        return bool(_MONEY.search(fold(sentence)))
    if asked == "date":
        folded = fold(sentence)
        return bool(_YEAR.search(folded) or _MONTH.search(folded))
    return False


def years(text: str) -> tuple[str, ...]:
    """The years a text names («en 2016»)."""
    return tuple(_YEAR.findall(text))


def mentions(name: str, text_folded: str) -> float:
    """Share of the words of ``name`` (folded) found as words in ``text_folded``."""
    parts = [p for p in re.split(r"[\s'\-]+", name) if p and p not in _NAME_JOINERS]
    if not parts:
        return 0.0
    return sum(bool(re.search(rf"(?<!\w){re.escape(p)}(?!\w)", text_folded)) for p in parts) / len(parts)
