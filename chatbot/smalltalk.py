"""Small talk and off-topic messages: a greeting, thanks, «qui es-tu ?», the weather.

Such a message is not a question about the articles; quoting the passages nearest to it
(three quotes about the first article for «Bonjour !») reads as a broken answer. It gets a
short help message instead, in its language, saying what the chat knows.

How a message is recognised: by the embedder itself, as a nearest neighbour. The message
(encoded as a query) is compared with a few example messages of each kind below and with the
corpus's own passages and sentences, all encoded as documents, so the two cosines compare: a
message nearer to an example than to anything in the articles is small talk or off topic. No
cosine threshold, only which of two cosines of the same model is larger. Measured on every
question set (docs/measurements.md): no answerable question taken for small talk; against the
generated questions as the corpus side (query to query), 27 answerable ones were.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from chatbot.embedding import Embedder

# A few examples of each kind. Written once, in both languages; kept short on purpose: the
# embedder generalises from them («Salut, ça va ?» is near «Bonjour»).
EXAMPLES: dict[str, tuple[str, ...]] = {
    "greeting": ("Bonjour", "Salut !", "Bonsoir, comment allez-vous ?", "Hello", "Hi, how are you?"),
    "thanks": ("Merci", "Merci beaucoup, c'est très clair", "Génial, merci !", "Thank you", "Thanks, great answer"),
    "identity": ("Qui es-tu ?", "Tu es un robot ?", "Comment t'appelles-tu ?", "Who are you?", "Are you a bot?"),
    "help": (
        "Que peux-tu faire ?",
        "Aide-moi",
        "Quelles questions puis-je te poser ?",
        "Comment ça marche ?",
        "What can you do?",
        "Help",
    ),
    "goodbye": ("Au revoir", "À bientôt", "Bonne journée", "Goodbye", "See you"),
    "off_topic": (
        "Quel temps fait-il aujourd'hui ?",
        "Raconte-moi une blague",
        "Quel est le score du match d'hier ?",
        "Donne-moi une recette de gâteau",
        "Quelle est la capitale de l'Italie ?",
        "Combien font 12 fois 7 ?",
        "Recommande-moi une série à regarder",
        "Traduis cette phrase en espagnol",
        "What's the weather today?",
        "Who won the football game last night?",
    ),
}

OPENERS = {
    "greeting": {"fr": "Bonjour !", "en": "Hello!"},
    "thanks": {"fr": "Avec plaisir !", "en": "You are welcome!"},
    "identity": {"fr": "Je suis l’assistant du blog.", "en": "I am the blog’s assistant."},
    "help": {"fr": "Volontiers.", "en": "Gladly."},
    "goodbye": {"fr": "Au revoir, à bientôt !", "en": "Goodbye!"},
    "off_topic": {"fr": "Je ne peux pas répondre à cela.", "en": "I cannot answer that."},
}
HELP = {
    "fr": "Je réponds aux questions sur les articles du blog ({topics}), en citant les passages qui "
    "appuient chaque réponse. Posez une question, par exemple : « {example} »",
    "en": "I answer questions about the blog’s articles ({topics}), quoting the passages that support "
    "each answer (in French). Ask a question, for example: “{example}”",
}
EXAMPLE_QUESTION = {
    "fr": "C’est quoi l’employee advocacy ?",
    "en": "What is employee advocacy?",
}


@dataclass(frozen=True)
class Chitchat:
    """A message recognised as small talk or off topic: its ``kind`` (a key of :data:`EXAMPLES`),
    and the two cosines that decided it."""

    kind: str
    example: float  # cosine to the nearest example
    corpus: float  # cosine to the nearest passage or sentence of the articles


class SmallTalk:
    """Recognises small talk for one embedder and one corpus; the examples are embedded once."""

    def __init__(self, embedder: Embedder, sentences: np.ndarray) -> None:
        """``sentences``: the corpus's sentence vectors (documents), maybe none."""
        self._embedder = embedder
        self._sentences = np.ascontiguousarray(sentences, dtype=np.float32)
        self._kinds = [kind for kind, texts in EXAMPLES.items() for _ in texts]
        self._examples: np.ndarray | None = None
        self._lock = threading.Lock()

    def warm(self) -> None:
        """Embed the examples now (the chat does it before it serves)."""
        self._example_vectors()

    def with_sentences(self, sentences: np.ndarray) -> SmallTalk:
        """The same recogniser for another build of the corpus's sentences (a rebuilt index):
        the examples' vectors, if embedded already, are shared rather than embedded again."""
        other = SmallTalk(self._embedder, sentences)
        with self._lock:
            other._examples = self._examples
        return other

    def _example_vectors(self) -> np.ndarray:
        with self._lock:
            if self._examples is None:
                texts = [text for texts in EXAMPLES.values() for text in texts]
                self._examples = np.asarray(self._embedder.encode_documents(texts), dtype=np.float32)
            return self._examples

    def classify(self, query_vector: np.ndarray, nearest_passage: float) -> Chitchat | None:
        """The kind of small talk of a message (its query vector, 1 x dim; the cosine of the
        passage nearest to it), or None for a question the corpus may answer."""
        vector = np.asarray(query_vector, dtype=np.float32).reshape(-1)
        cosines = self._example_vectors() @ vector
        best = int(np.argmax(cosines))
        corpus = max(nearest_passage, float((self._sentences @ vector).max()) if len(self._sentences) else -1.0)
        if float(cosines[best]) > corpus:
            return Chitchat(self._kinds[best], float(cosines[best]), corpus)
        return None


def reply(kind: str, lang: str, topics: Sequence[str]) -> str:
    """The help message for a kind of small talk, in ``lang`` («fr» unless «en»)."""
    lang = "en" if lang == "en" else "fr"
    shown = ", ".join(f"« {t} »" if lang == "fr" else f"“{t}”" for t in topics[:6])
    if len(topics) > 6:
        shown += "…"
    text = HELP[lang].format(topics=shown, example=EXAMPLE_QUESTION[lang])
    return f"{OPENERS[kind][lang]} {text}"
