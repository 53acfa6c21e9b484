"""The French analyzer shared by keyword search and sentence scoring.

Lower-cases, splits off elisions (l’, d’, qu’...), keeps numbers and percentages whole
(«88%», «16,5%», «2015»), drops French stop words, stems with Snowball French, then folds
accents, so «développement» and «developpement» meet, at index and at query time alike.
"""

from __future__ import annotations

import functools
import re
import threading
import unicodedata

import Stemmer
from bm25s.stopwords import STOPWORDS_EN_PLUS, STOPWORDS_FRENCH

VERSION = 2  # bump when the analysis changes: stored keyword indexes then need a rebuild

_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "ʼ": "'", "`": "'", "´": "'"})
# A number (with , or . decimals and an optional %), or a word that may hold apostrophes.
_TOKEN = re.compile(r"\d+(?:[.,]\d+)*[ \u00a0\u202f]?%|\d+(?:[.,]\d+)*|[^\W\d_]+(?:'[^\W\d_]+)*")
_ELISION = re.compile(r"^(?:l|d|j|m|n|s|t|c|qu|jusqu|lorsqu|puisqu|quoiqu)'(?=[^\W\d_])")


def fold_accents(text: str) -> str:
    """«été» -> «ete», «œuvre» -> «oeuvre»."""
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


# «été» is also a noun (summer) and «a» a verb worth nothing: keep the first, drop the second.
# Question words carry no topic; bm25s' list (NLTK's) lacks them.
_QUESTION_WORDS = {"combien", "comment", "pourquoi", "quand", "ou", "quel", "quelle", "quels", "quelles", "est-ce"}
_STOP_WORDS = (frozenset(fold_accents(w) for w in STOPWORDS_FRENCH) | {"a"} | _QUESTION_WORDS) - {"ete"}
STOP_WORDS = _STOP_WORDS  # accent-folded; also given to Milvus's analyzer (chatbot.backends.milvus_store)


# Function words that belong to one language only (bm25s' lists; «a» is also French).
_ENGLISH = frozenset(STOPWORDS_EN_PLUS) - frozenset(STOPWORDS_FRENCH) - {"a"}
_FRENCH = (frozenset(STOPWORDS_FRENCH) | _QUESTION_WORDS | {"où"}) - frozenset(STOPWORDS_EN_PLUS)


def detect_language(text: str) -> str:
    """«en» when the text has more English-only than French-only function words, else «fr»."""
    tokens = re.findall(r"[a-zà-ÿ']+", text.lower())
    english = sum(t in _ENGLISH for t in tokens)
    french = sum(t in _FRENCH for t in tokens)
    return "en" if english > french else "fr"


_PER_THREAD = threading.local()


def _stemmer() -> Stemmer.Stemmer:
    """This thread's French stemmer: a PyStemmer object keeps its work in itself and is not
    safe to share between threads (the chat answers several users at once)."""
    stemmer: Stemmer.Stemmer | None = getattr(_PER_THREAD, "stemmer", None)
    if stemmer is None:
        stemmer = _PER_THREAD.stemmer = Stemmer.Stemmer("french")
    return stemmer


def words(text: str) -> list[str]:
    """Lower-cased words and numbers, elisions split off, before stemming."""
    text = unicodedata.normalize("NFKC", text).casefold().translate(_APOSTROPHES)
    text = text.replace("œ", "oe").replace("æ", "ae")
    out: list[str] = []
    for token in _TOKEN.findall(text):
        if token[0].isdigit():
            out.append("".join(token.split()))  # «16,5 %» (any space kind) -> «16,5%»
            continue
        while _ELISION.match(token):
            token = _ELISION.sub("", token, count=1)
        out.append(token)
    return out


def analyze(text: str) -> list[str]:
    """Tokens for keyword search: stop words removed, stemmed, accents folded."""
    tokens: list[str] = []
    for word in words(text):
        if word[0].isdigit():
            tokens.append(word)
            continue
        term = _term(word)
        if term:
            tokens.append(term)
    return tokens


@functools.lru_cache(maxsize=200_000)
def _term(word: str) -> str:
    """The indexed form of one word, or «» for a stop word. A language has far fewer distinct
    words than a corpus has words: cached, indexing a large corpus analyses each word once."""
    if fold_accents(word) in _STOP_WORDS:
        return ""
    return fold_accents(_stemmer().stemWord(word))
