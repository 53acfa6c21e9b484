"""Links back to the blog: an article's address with the quoted words as a text fragment
(``#:~:text=``, WICG «URL Fragment Text Directives»), so that the browser scrolls to them and
highlights them. A browser without text fragments, or a page whose words differ, simply opens
the page at its top."""

from __future__ import annotations

import re
from urllib.parse import quote

LONG_QUOTE_WORDS = 10
"""Quotes of more words are linked by their first and last words (``textStart,textEnd``): a
shorter link, and one that still matches when a word in the middle is rendered differently."""
EDGE_WORDS = 4
_SPACES = re.compile(r"[ \t\r\n]+")  # only these: a non-breaking space is matched as itself


def encode_directive(text: str) -> str:
    """``text`` percent-encoded for a text directive: everything but unreserved characters, and
    ``-`` too (with ``,`` and ``&``, it has a meaning in the directive)."""
    return quote(text, safe="").replace("-", "%2D")


def text_fragment_url(url: str, quote_text: str) -> str:
    """``url`` (its own fragment replaced) with a text fragment that finds ``quote_text``; the
    plain ``url`` when the quote has no words, «» when there is no ``url``."""
    if not url:
        return ""
    base = url.split("#", 1)[0]
    words = _SPACES.sub(" ", quote_text).strip().split(" ")
    words = [w for w in words if w]
    if not words:
        return base
    if len(words) > LONG_QUOTE_WORDS:
        directive = (
            f"{encode_directive(' '.join(words[:EDGE_WORDS]))},{encode_directive(' '.join(words[-EDGE_WORDS:]))}"
        )
    else:
        directive = encode_directive(" ".join(words))
    return f"{base}#:~:text={directive}"
