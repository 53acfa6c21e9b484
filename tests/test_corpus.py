from pathlib import Path

import pytest

from chatbot.corpus import article_id, load_corpus, parse_article
from chatbot.errors import CorpusError


def test_reads_md_and_txt_with_titles_from_front_matter_heading_or_name(corpus_dir: Path) -> None:
    corpus = load_corpus(corpus_dir)
    titles = {a.id: a.title for a in corpus.articles}
    assert titles == {
        "chine": "L’entrepreneuriat en Chine",
        "linkedin": "Les salariés ambassadeurs",
        "twitter": "twitter",
    }
    assert corpus.skipped == ()
    assert [(n.path.name, n.message) for n in corpus.notices] == [
        ("twitter.txt", "no title found; titled «twitter» after the file name")
    ]


def test_front_matter_and_heading_are_not_part_of_the_text(corpus_dir: Path) -> None:
    articles = load_corpus(corpus_dir).by_id()
    assert articles["linkedin"].text.startswith("L’employee advocacy")
    assert articles["chine"].text.startswith("Hong Kong")


def test_metadata_is_kept_except_title() -> None:
    article = parse_article('---\ntitle: "T"\nauthor: Fabienne\ndate: 2018\n---\nCorps.', Path("a.md"))
    assert article.title == "T"
    assert article.meta == {"author": "Fabienne", "date": "2018"}


def test_bad_files_are_reported_by_name_and_the_rest_is_read(corpus_dir: Path) -> None:
    (corpus_dir / "latin1.txt").write_bytes("Café crème à l'été".encode("latin-1"))
    (corpus_dir / "empty.md").write_text("", encoding="utf-8")
    (corpus_dir / "title-only.md").write_text("---\ntitle: Rien\n---\n", encoding="utf-8")
    (corpus_dir / "image.png").write_bytes(b"\x89PNG")
    corpus = load_corpus(corpus_dir)
    reasons = {s.path.name: s.reason for s in corpus.skipped}
    assert set(reasons) == {"latin1.txt", "empty.md", "title-only.md"}
    assert "UTF-8" in reasons["latin1.txt"]
    assert "empty" in reasons["empty.md"]
    assert len(corpus.articles) == 3


def test_binary_huge_and_duplicate_files_are_skipped_by_name_with_the_reason(corpus_dir: Path) -> None:
    (corpus_dir / "photo.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    (corpus_dir / "dump.txt").write_text("Une phrase sur Shenzhen. " * 500, encoding="utf-8")  # 12.5 kB
    (corpus_dir / "zz-copie.md").write_bytes((corpus_dir / "chine.md").read_bytes())
    corpus = load_corpus(corpus_dir, max_bytes=10_000)
    reasons = {s.path.name: s.reason for s in corpus.skipped}
    assert reasons == {
        "photo.md": "binary file, not text",
        "dump.txt": "too large (12.5 kB, the limit is 10.0 kB); split it into articles",
        "zz-copie.md": "same text as chine.md; indexed once, under that file",
    }
    assert sorted(a.id for a in corpus.articles) == ["chine", "linkedin", "twitter"]


def test_the_same_text_under_another_title_is_still_a_duplicate(corpus_dir: Path) -> None:
    body = (corpus_dir / "chine.md").read_text(encoding="utf-8").split("\n", 1)[1]
    (corpus_dir / "autre.md").write_text("# Un autre titre\n" + body, encoding="utf-8")
    corpus = load_corpus(corpus_dir)
    assert [(s.path.name, s.reason) for s in corpus.skipped] == [
        ("chine.md", "same text as autre.md; indexed once, under that file")
    ]


def test_missing_folder_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="Corpus folder not found"):
        load_corpus(tmp_path / "nope")


def test_folder_without_readable_article_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty.md").write_text("  \n", encoding="utf-8")
    with pytest.raises(CorpusError, match="No readable article"):
        load_corpus(tmp_path)


def test_content_hash_changes_with_text_only(corpus_dir: Path) -> None:
    first = load_corpus(corpus_dir).by_id()["chine"].content_hash
    assert load_corpus(corpus_dir).by_id()["chine"].content_hash == first
    path = corpus_dir / "chine.md"
    path.write_text(path.read_text(encoding="utf-8") + " Ajout.", encoding="utf-8")
    assert load_corpus(corpus_dir).by_id()["chine"].content_hash != first


def test_article_ids_are_ascii_slugs() -> None:
    assert article_id(Path("01 Été à Hong-Kong.md")) == "01-ete-a-hong-kong"


def test_links_and_hidden_files_and_folders_are_reported_not_read(corpus_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text("# Secret\n\nUn texte hors du corpus.", encoding="utf-8")
    (corpus_dir / "lien.md").symlink_to(outside / "secret.md")
    (corpus_dir / "dossier-lie").symlink_to(outside, target_is_directory=True)
    (corpus_dir / "boucle").symlink_to(corpus_dir, target_is_directory=True)
    (corpus_dir / ".git").mkdir()
    (corpus_dir / ".git" / "notes.md").write_text("# Notes\n\nDes notes internes.", encoding="utf-8")
    (corpus_dir / ".brouillon.md").write_text("# Brouillon\n\nPas encore publié.", encoding="utf-8")
    (corpus_dir / "rubrique").mkdir()
    (corpus_dir / "rubrique" / "publie.md").write_text("# Publié\n\nUn article rangé.", encoding="utf-8")
    corpus = load_corpus(corpus_dir)
    assert sorted(a.id for a in corpus.articles) == ["chine", "linkedin", "publie", "twitter"]
    reasons = {s.path.name: s.reason for s in corpus.skipped}
    assert reasons == {
        "lien.md": "symbolic link; not followed (copy the file in)",
        "dossier-lie": "symbolic link to a folder; not followed (move the articles in)",
        "boucle": "symbolic link to a folder; not followed (move the articles in)",
        ".git": "hidden folder; not read",
        ".brouillon.md": "hidden file; not read",
    }
