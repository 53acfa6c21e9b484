"""Split the raw blog dump into one Markdown file per article under ``corpus/``.

Run from the repository root: ``python scripts/split_dump.py``. The output is committed;
this script documents, and can redo, exactly how it was made.

Only layout debris is removed (image file names and tweet placeholders that stood where an
embedded image or tweet used to be); every sentence of the dump is kept, which
``tests/test_corpus_split.py`` checks.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DUMP = ROOT / "data" / "raw_dump.txt"
OUT = ROOT / "corpus"

# (file stem, title line as it appears in the dump, extra front matter stated by the text).
# The stand-alone quote «Sans impulsion ni leadership…» opens the China article: in the dump
# it sits after the blank separator lines that close the influencers article and directly
# above the China title, i.e. where the blog put each article's epigraph; its theme (a state
# impulse and political will that make an ecosystem take off) is the article's opening claim.
ARTICLES: list[tuple[str, str, dict[str, str]]] = [
    (
        "01-employee-advocacy",
        "La Transformation Numérique de l’Entreprise – And more : l’employee advocacy !",
        {"source": "Interview proposée par Be Smarp (Valène Jouany)", "date": "2018"},
    ),
    ("02-influenceurs-et-marques", "Influenceurs et marques : les manœuvres improbables", {}),
    (
        "03-entrepreneuriat-chine-hong-kong-shenzhen",
        "« Sans impulsion ni leadership, la transformation digitale est dans l’impossibilité de se réaliser »",
        {},
    ),
    ("04-association-digitale", "L’association digitale, qui n’est pas digitale.", {}),
    (
        "05-marketing-digital-femmes-numeriques",
        "Interview sur le marketing digital – et les femmes numériques !",
        {
            "author": "Mélanie Corroleur, Brandwatch",
            "source": "https://www.brandwatch.com/fr/2017/05/femmes-du-digital-interview-fabienne-billat/",
        },
    ),
    ("06-twitter-netiquette", "Twitter et la Netiquette : respecter, ou dévaluer ?", {}),
]
CHINA_TITLE = "La croissance de l’entreprenariat en Chine, une fièvre bénéfique pour les Français !"

# Layout debris: whole lines that are only an image name or a tweet placeholder, and image
# names glued to a sentence by the export.
DEBRIS_LINES = re.compile(r"^(IMG_\d+\w*|DSC\d+\w*|PME retard\.png|Tweet \d+|etiquette-twitter)$")
DEBRIS_GLUED = re.compile(r"^IMG_\d+bis(?=\S)|(?<=\.)DSC\d+ter$")


def clean_lines(lines: list[str]) -> str:
    """Strip debris and layout whitespace; keep paragraphs separated by one blank line."""
    kept: list[str] = []
    for raw in lines:
        line = DEBRIS_GLUED.sub("", raw.strip())
        if DEBRIS_LINES.match(line):
            continue
        line = re.sub(r"[ \t]{2,}", " ", line)
        if line or (kept and kept[-1]):
            kept.append(line)
    return "\n".join(kept).strip() + "\n"


def squash(line: str) -> str:
    """Compare lines whatever their (non-breaking, thin) spaces."""
    return " ".join(line.split())


def front_matter(meta: dict[str, str]) -> str:
    body = "".join(f'{key}: "{value}"\n' for key, value in meta.items())
    return f"---\n{body}---\n\n"


def main() -> None:
    lines = DUMP.read_text(encoding="utf-8").splitlines()
    starts = [next(i for i, line in enumerate(lines) if squash(line) == squash(title)) for _, title, _ in ARTICLES]
    OUT.mkdir(exist_ok=True)
    for n, (stem, title_line, extra) in enumerate(ARTICLES):
        end = starts[n + 1] if n + 1 < len(starts) else len(lines)
        body_lines = lines[starts[n] + 1 : end]
        title = title_line
        if stem.startswith("03-"):
            # The epigraph line is the first line of the block; the real title follows it.
            china = next(i for i, line in enumerate(body_lines) if squash(line) == squash(CHINA_TITLE))
            body_lines = [lines[starts[n]], ""] + body_lines[china + 1 :]
            title = CHINA_TITLE
        meta = {"title": squash(title), **extra}
        text = front_matter(meta) + clean_lines(body_lines)
        (OUT / f"{stem}.md").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
