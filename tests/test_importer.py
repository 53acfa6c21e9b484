"""chatbot import: a WordPress export (WXR) and saved HTML pages, built here, become corpus
files that keep every sentence of the published posts and nothing of their markup."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from html import escape
from pathlib import Path

import pytest

from chatbot.backends.local import build_index, load_index
from chatbot.cli import EXIT_UNREADABLE, main
from chatbot.corpus import load_corpus, parse_article
from chatbot.importer import ImportSummary, html_to_text, import_posts
from chatbot.links import text_fragment_url
from chatbot.settings import Settings

from .conftest import REPO, FakeEmbedder

NBSP, NNBSP = "\u00a0", "\u202f"

# The posts' text as a reader sees it on the blog, sentence by sentence; the export below
# wraps the same words in markup, entities and shortcodes.
CLASSIC = [
    f"L’été, les marques connectées ont découvert l’employee advocacy{NBSP}: un vrai sujet.",
    "Une seconde ligne du même paragraphe, à la ligne & sans coupure.",
    "Après la coupure, le billet continue avec des chiffres : 88% des entreprises ne sont pas sur LinkedIn.",
    "La légende de la photo prise au salon de Lyon.",
    "- Premier point de la liste, en gras et en italique.",
    "- Second point, avec un lien vers l’étude.",
    "« Le numérique est une culture, pas un outil », disait-elle.",
    "Un encadré écrit par l’auteure, dans un shortcode inconnu.",
    "Le texte [sic] continue ici, après l’encadré.",
    f"Et la dernière phrase, après un second «{NNBSP}more{NNBSP}» : c’est fini.",
]
GUTENBERG = [
    "Shenzhen consacre 4,3% de son PIB à la recherche et au développement.",
    "Une légende sous l’image de la tour, écrite par l’auteure.",
    "- Hong Kong plafonne l’imposition des profits à 16,5%.",
    "- Il n’existe pas de TVA.",
    "Les start-up françaises s’y installent : pourquoi ?",
]
PAGE = [
    "Twitter et la netiquette : ne pas citer ses sources est une grossière erreur.",
    f"Le savoir-vivre se ruine quand on retweete sans mentionner l’auteur{NBSP}!",
    "- Citer la source.",
    "- Remercier la personne qui a partagé.",
    "Une citation dans un bloc : « Respecter, ou dévaluer ? »",
]
DRAFT = "Ce brouillon ne doit jamais entrer dans le corpus."
PRIVATE_PAGE = "Cette page À propos n’est pas un billet."
ATTACHMENT = "Description d’une pièce jointe."

CLASSIC_HTML = (
    "L&#8217;&eacute;t&eacute;, les <strong>marques <em>connect&eacute;es</em></strong> ont d&eacute;couvert "
    "l&rsquo;employee advocacy&nbsp;: un vrai sujet.\n"
    "Une seconde ligne du même paragraphe, à la ligne &amp; sans coupure.\n\n"
    "<!--more-->\n\n"
    "Après la coupure, le billet continue avec des chiffres : 88% des entreprises ne sont pas sur "
    '<a href="https://www.linkedin.com">LinkedIn</a>.\n\n'
    '[caption id="attachment_5" align="alignnone" width="300"]<img src="https://blog.example/IMG_1234.jpg" '
    'alt="IMG_1234" width="300" height="200" /> La légende de la photo prise au salon de Lyon.[/caption]\n\n'
    "https://twitter.com/fab/status/123456\n\n"
    "[embed]https://www.youtube.com/watch?v=abc[/embed]\n\n"
    "<ul>\n<li>Premier point de la liste, <b>en gras <i>et en italique</i></b>.</li>\n"
    '<li>Second point, avec <a href="https://ex.com/etude">un lien vers l’étude</a>.</li>\n</ul>\n\n'
    "<blockquote>« Le numérique est une culture, pas un outil », disait-elle.</blockquote>\n\n"
    '[su_note note_color="#eee"]Un encadré écrit par l’auteure, dans un shortcode inconnu.[/su_note]\n\n'
    "Le texte [sic] continue ici, après l’encadré.<!--more-->Et la dernière phrase, après un second "
    f"«{NNBSP}more{NNBSP}» : c’est fini."
)
GUTENBERG_HTML = (
    "<!-- wp:paragraph -->\n<p>Shenzhen consacre 4,3% de son PIB à la recherche et au développement.</p>\n"
    "<!-- /wp:paragraph -->\n\n"
    '<!-- wp:image {"id":7} -->\n<figure class="wp-block-image"><img src="https://blog.example/DSC0042.jpg" '
    'alt=""/><figcaption>Une légende sous l’image de la tour, écrite par l’auteure.</figcaption></figure>\n'
    "<!-- /wp:image -->\n\n"
    '<!-- wp:embed {"url":"https://twitter.com/fab/status/9"} -->\n'
    '<figure class="wp-block-embed is-type-rich is-provider-twitter"><div class="wp-block-embed__wrapper">\n'
    "https://twitter.com/fab/status/9\n</div></figure>\n<!-- /wp:embed -->\n\n"
    "<!-- wp:list -->\n<ul><li>Hong Kong plafonne l’imposition des profits à 16,5%.</li>"
    "<li>Il n’existe pas de <abbr>TVA</abbr>.</li></ul>\n<!-- /wp:list -->\n\n"
    '<!-- wp:html -->\n<blockquote class="twitter-tweet"><p>Un tweet embarqué, pas le texte de l’auteure</p>'
    '&mdash; Fab (@fab) <a href="https://twitter.com/fab/status/9">1 mai 2017</a></blockquote>'
    '<script async src="https://platform.twitter.com/widgets.js"></script>\n<!-- /wp:html -->\n\n'
    "<!-- wp:paragraph -->\n<p>Les start-up françaises s’y installent : pourquoi ?</p>\n<!-- /wp:paragraph -->"
)
PAGE_HTML = """<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8">
<title>Twitter et la Netiquette – Le blog de Fabienne</title>
<link rel="canonical" href="https://blog.example/2016/twitter-netiquette/">
<link rel='shortlink' href='https://blog.example/?p=30' />
<meta property="og:title" content="Twitter et la Netiquette">
<meta property="article:published_time" content="2016-03-01T09:00:00+00:00">
<meta name="author" content="Fabienne Billat">
<meta property="article:section" content="Réseaux sociaux"><meta property="article:tag" content="Twitter">
</head><body><header><nav><a href="/">Accueil</a> <a href="/contact">Me contacter</a></nav></header>
<main><article class="post-30 post type-post"><h1 class="entry-title">Twitter et la Netiquette</h1>
<div class="entry-content">
<p>Twitter et la netiquette : ne pas citer ses sources est une grossière erreur.</p>
<p>Le savoir-vivre se ruine quand on retweete sans mentionner l&#8217;auteur&nbsp;!</p>
<ol><li>Citer la source.</li><li>Remercier la personne qui a <em>partagé</em>.</li></ol>
<blockquote><p>Une citation dans un bloc : « Respecter, ou dévaluer ? »</p></blockquote>
<p><iframe src="https://www.youtube.com/embed/abc" title="Vidéo intégrée"></iframe></p>
</div></article>
<section id="comments"><h2>3 commentaires</h2><p>Super billet ! a écrit Paul, le premier commentateur.</p></section>
</main><aside><h3>Articles récents</h3><ul><li><a href="/a">Un autre billet du blog</a></li></ul></aside>
<footer>© 2016 Le blog de Fabienne · Mentions légales</footer></body></html>"""
MARKUP = ("<", ">", "&nbsp", "&amp;", "&#", "&rsquo", "[caption", "[/", "[embed", "[su_", "<!--", "-->", "IMG_",
          "DSC0", "https://", "wp:", "twitter-tweet", "Un tweet embarqué", "commentaires", "Paul", "Accueil",
          "Articles récents", "Mentions légales")  # fmt: skip


def _item(post_id: int, title: str, body: str, *, status: str = "publish", kind: str = "post", slug: str = "",
          link: str | None = None) -> str:  # fmt: skip
    slug = slug or f"billet-{post_id}"
    link = f"https://blog.example/{slug}/" if link is None else link
    return f"""<item>
<title>{escape(title, quote=False)}</title><link>{link}</link><pubDate>Fri, 12 May 2017 10:00:00 +0000</pubDate>
<dc:creator><![CDATA[fabienne]]></dc:creator><guid isPermaLink="false">https://blog.example/?p={post_id}</guid>
<content:encoded><![CDATA[{body}]]></content:encoded><excerpt:encoded><![CDATA[]]></excerpt:encoded>
<wp:post_id>{post_id}</wp:post_id><wp:post_date><![CDATA[2017-05-12 10:00:00]]></wp:post_date>
<wp:post_name><![CDATA[{slug}]]></wp:post_name><wp:status><![CDATA[{status}]]></wp:status>
<wp:post_type><![CDATA[{kind}]]></wp:post_type>
<category domain="category" nicename="marketing"><![CDATA[Marketing & digital]]></category>
<category domain="post_tag" nicename="ete"><![CDATA[été]]></category>
</item>"""


def _export(*items: str) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8" ?>
<rss version="2.0" xmlns:excerpt="http://wordpress.org/export/1.2/excerpt/"
 xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:wfw="http://wellformedweb.org/CommentAPI/"
 xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:wp="http://wordpress.org/export/1.2/">
<channel><title>Le blog de Fabienne</title><link>https://blog.example</link><language>fr-FR</language>
<wp:wxr_version>1.2</wp:wxr_version><wp:base_site_url>https://blog.example</wp:base_site_url>
<wp:base_blog_url>https://blog.example</wp:base_blog_url>
<wp:author><wp:author_id>1</wp:author_id><wp:author_login><![CDATA[fabienne]]></wp:author_login>
<wp:author_display_name><![CDATA[Fabienne Billat]]></wp:author_display_name></wp:author>
{"".join(items)}
</channel></rss>"""


POSTS = [
    _item(12, "L&#8217;&eacute;t&eacute; des marques &amp; l’employee advocacy", CLASSIC_HTML, slug="ete-des-marques"),
    _item(20, "Shenzhen, la ville des start-up", GUTENBERG_HTML, slug="shenzhen-start-up"),
    _item(21, "Un brouillon", f"<p>{DRAFT}</p>", status="draft"),
    _item(22, "À propos", f"<p>{PRIVATE_PAGE}</p>", kind="page"),
    _item(23, "IMG_1234", f"<p>{ATTACHMENT}</p>", kind="attachment"),
    _item(24, "Menu", "", kind="nav_menu_item"),
]


@pytest.fixture
def export(tmp_path: Path) -> Path:
    path = tmp_path / "wordpress.xml"
    path.write_text(_export(*POSTS), encoding="utf-8")
    return path


@pytest.fixture
def pages(tmp_path: Path) -> Path:
    folder = tmp_path / "pages"
    folder.mkdir()
    (folder / "twitter-netiquette.html").write_text(PAGE_HTML, encoding="utf-8")
    return folder


def _sentences(lines: list[str]) -> list[str]:
    return [s for line in lines for s in line.split(". ") if s]


def test_every_sentence_of_every_published_post_reaches_the_corpus_and_no_markup(
    tmp_path: Path, export: Path, pages: Path
) -> None:
    corpus = tmp_path / "corpus"
    summary = import_posts([export, pages], corpus)
    assert (len(summary.added), summary.drafts, summary.pages, summary.attachments, summary.other) == (3, 1, 1, 1, 1)
    assert summary.problems == summary.unreadable == ()
    articles = {a.id: a for a in load_corpus(corpus).articles}
    assert set(articles) == {"ete-des-marques", "shenzhen-start-up", "twitter-netiquette"}
    for article_id, expected in [("ete-des-marques", CLASSIC), ("shenzhen-start-up", GUTENBERG),
                                 ("twitter-netiquette", PAGE)]:  # fmt: skip
        text = articles[article_id].text
        missing = [s for s in _sentences(expected) if s not in text]
        assert missing == [], article_id
        assert text.splitlines() == expected  # one line per paragraph, list item or line break; nothing else
        assert [m for m in MARKUP if m in text] == [], article_id
    everything = "\n".join(p.read_text(encoding="utf-8") for p in corpus.glob("*.md"))
    for left_out in (DRAFT, PRIVATE_PAGE, ATTACHMENT):
        assert left_out not in everything


def test_front_matter_keeps_title_date_author_url_categories_tags_and_source_id(
    tmp_path: Path, export: Path, pages: Path
) -> None:
    corpus = tmp_path / "corpus"
    import_posts([export, pages], corpus)
    post = parse_article((corpus / "ete-des-marques.md").read_text(encoding="utf-8"), corpus / "ete-des-marques.md")
    assert post.title == "L’été des marques & l’employee advocacy"
    assert post.meta == {
        "date": "2017-05-12 10:00:00",
        "author": "Fabienne Billat",
        "url": "https://blog.example/ete-des-marques/",
        "categories": "Marketing & digital",
        "tags": "été",
        "source_id": "https://blog.example/?p=12",
        "blog": "https://blog.example",
    }
    page = parse_article((corpus / "twitter-netiquette.md").read_text(encoding="utf-8"), Path("t.md"))
    assert page.title == "Twitter et la Netiquette"
    assert page.meta["url"] == "https://blog.example/2016/twitter-netiquette/"
    assert page.meta["source_id"] == "https://blog.example/?p=30"  # the shortlink: the same id as in an export
    assert (page.meta["author"], page.meta["date"]) == ("Fabienne Billat", "2016-03-01")
    assert "blog" not in page.meta  # saved pages are never a whole blog: none is ever «removed»


def test_a_second_import_changes_nothing(tmp_path: Path, export: Path, pages: Path) -> None:
    corpus = tmp_path / "corpus"
    first = import_posts([export, pages], corpus)
    stamps = {p: p.stat().st_mtime_ns for p in first.added}
    time.sleep(0.01)
    again = import_posts([export, pages], corpus)
    assert (again.added, again.updated, again.removed) == ((), (), ())
    assert sorted(again.unchanged) == sorted(first.added) and not again.changed
    assert {p: p.stat().st_mtime_ns for p in first.added} == stamps


def test_a_changed_post_is_updated_and_a_vanished_one_reported_then_deleted_only_when_asked(
    tmp_path: Path, export: Path
) -> None:
    corpus = tmp_path / "corpus"
    import_posts([export], corpus)
    changed = POSTS[0].replace("un vrai sujet", "un sujet brûlant")
    export.write_text(_export(changed, *POSTS[2:]), encoding="utf-8")  # the Shenzhen post is gone
    summary = import_posts([export], corpus)
    assert summary.updated == (corpus / "ete-des-marques.md",)
    assert summary.removed == (corpus / "shenzhen-start-up.md",) and not summary.deleted
    assert (corpus / "shenzhen-start-up.md").exists()
    assert "un sujet brûlant" in (corpus / "ete-des-marques.md").read_text(encoding="utf-8")
    deleted = import_posts([export], corpus, delete_removed=True)
    assert deleted.removed == (corpus / "shenzhen-start-up.md",) and deleted.deleted
    assert not (corpus / "shenzhen-start-up.md").exists()


def test_imported_names_never_take_an_existing_article_id(tmp_path: Path, export: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "ete-des-marques.md").write_text("# Un article écrit à la main\n\nSon texte.", encoding="utf-8")
    summary = import_posts([export], corpus)
    assert corpus / "ete-des-marques-2.md" in summary.added
    assert (corpus / "ete-des-marques.md").read_text(encoding="utf-8").startswith("# Un article écrit à la main")
    assert import_posts([export], corpus).added == ()  # found again by its source id


BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
<!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
<!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
<!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
<!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
<!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">]>
<rss><channel><item><title>&lol9;</title></item></channel></rss>"""


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("Ceci n’est pas du XML, juste du texte.", "not a readable XML file"),
        (BOMB, "XML bomb"),
        (_export(*POSTS)[:2500], "not a readable XML file"),  # truncated in the middle of a post
        ("<html><body><p>Une page</p></body></html>", "not a WordPress export"),
    ],
    ids=["not-xml", "billion-laughs", "truncated", "not-wxr"],
)
def test_a_file_that_cannot_be_read_is_named_exit_2_and_the_others_are_imported(
    tmp_path: Path, export: Path, content: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text(content, encoding="utf-8")
    started = time.perf_counter()
    summary = import_posts([bad, export], tmp_path / "corpus")
    assert time.perf_counter() - started < 10  # the bomb is refused, not expanded
    (problem,) = summary.unreadable
    assert problem.source == bad and message in problem.message
    assert len(summary.added) == 2
    assert main(["import", str(bad), "--corpus", str(tmp_path / "other")]) == EXIT_UNREADABLE
    assert f"error {bad}: " in capsys.readouterr().err


def test_bad_posts_are_named_and_the_rest_is_imported(tmp_path: Path) -> None:
    export = tmp_path / "wordpress.xml"
    export.write_text(
        _export(
            _item(40, "", "<p>Un billet sans titre mais avec du texte.</p>", slug="sans-titre-ici"),
            _item(41, "Un billet vide", "<!-- wp:paragraph --><p></p><!-- /wp:paragraph -->"),
            _item(42, "Le bon billet", "<p>Le texte du bon billet.</p>", slug="bon", link="https://blog.example/x/"),
            _item(
                43, "Le même lien", "<p>Un autre texte, même adresse.</p>", slug="autre", link="https://blog.example/x/"
            ),
        ),
        encoding="utf-8",
    )
    summary = import_posts([export], tmp_path / "corpus")
    problems = {p.post: (p.message, p.imported) for p in summary.problems}
    assert problems["post 40 (sans-titre-ici)"] == (
        "no title; imported titled «Sans titre ici» after its address",
        True,
    )
    assert problems["post 41 «Un billet vide»"] == ("no text in the post; not imported", False)
    duplicate = "post «Le même lien» (https://blog.example/x/)"
    earlier = "post «Le bon billet» (https://blog.example/x/)"
    assert problems[duplicate] == (f"same URL as {earlier}; imported once, as that one", False)
    titles = sorted(a.title for a in load_corpus(tmp_path / "corpus").articles)
    assert titles == ["Le bon billet", "Sans titre ici"]


def test_the_cli_prints_the_summary_and_json(tmp_path: Path, export: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "corpus"
    assert main(["import", str(export), "--corpus", str(corpus)]) == 0
    out = capsys.readouterr().out
    assert "2 added, 0 updated, 0 unchanged, 0 removed" in out and "skipped 1 drafts, 1 pages, 1 attachments" in out
    assert "chatbot index" in out
    assert main(["import", str(export), "--corpus", str(corpus), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["unchanged"] == [str(corpus / "ete-des-marques.md"), str(corpus / "shenzhen-start-up.md")]
    assert data["skipped"] == {"drafts": 1, "pages": 1, "attachments": 1, "other": 1}
    assert ImportSummary().to_dict().keys() == data.keys()


def test_index_after_a_reimport_embeds_only_what_changed(tmp_path: Path, export: Path, pages: Path) -> None:
    corpus = tmp_path / "corpus"
    settings = Settings(corpus_dir=corpus, index_dir=tmp_path / "index", model="fake", chunk_size=200, chunk_overlap=20)
    import_posts([export, pages], corpus)
    assert build_index(settings, FakeEmbedder()).embedded_articles == 3
    import_posts([export, pages], corpus)
    untouched = FakeEmbedder()
    assert build_index(settings, untouched).written is False and untouched.documents == 0
    export.write_text(_export(POSTS[0].replace("un vrai sujet", "un sujet brûlant"), *POSTS[1:]), encoding="utf-8")
    import_posts([export, pages], corpus)
    once = FakeEmbedder()
    report = build_index(settings, once)
    assert (report.embedded_articles, report.written) == (1, True)
    changed = [c for c in load_index(settings).chunks if c.article_id == "ete-des-marques"]
    assert once.documents == len(changed) + sum(len(c.sentences()) for c in changed)
    assert {c.article_url for c in changed} == {"https://blog.example/ete-des-marques/"}


def test_a_new_address_alone_rewrites_the_chunks_urls_without_embedding(tmp_path: Path, export: Path) -> None:
    corpus = tmp_path / "corpus"
    settings = Settings(corpus_dir=corpus, index_dir=tmp_path / "index", model="fake", chunk_size=200, chunk_overlap=20)
    import_posts([export], corpus)
    build_index(settings, FakeEmbedder())
    export.write_text(_export(*POSTS).replace("https://blog.example/ete-des-marques/", "https://new.example/ete/"))
    assert import_posts([export], corpus).updated == (corpus / "ete-des-marques.md",)
    none = FakeEmbedder()
    report = build_index(settings, none)
    assert (report.written, report.embedded_articles, none.documents) == (True, 0, 0)
    urls = {c.article_id: c.article_url for c in load_index(settings).chunks}
    assert urls == {
        "ete-des-marques": "https://new.example/ete/",
        "shenzhen-start-up": "https://blog.example/shenzhen-start-up/",
    }


def test_shortcodes_keep_captions_and_enclosed_text_and_drop_media() -> None:
    text = html_to_text(
        '[gallery ids="1,2,3"]\n\n[caption width="10"]<img src="a.jpg"/> Légende.[/caption]\n\n'
        '[[caption]] s’écrit ainsi.\n\n[video src="v.mp4" /]\n\n[note]Gardé.[/note] Et [1] reste.'
    )
    assert text.splitlines() == ["Légende.", "[caption] s’écrit ainsi.", "Gardé. Et [1] reste."]


def test_a_summary_is_a_frozen_value() -> None:
    summary = ImportSummary(drafts=1)
    with pytest.raises(AttributeError):
        summary.drafts = 2  # type: ignore[misc]
    assert replace(summary, pages=2).to_dict()["skipped"] == {"drafts": 1, "pages": 2, "attachments": 0, "other": 0}


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "chatbot", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.integration
def test_import_then_index_then_ask_links_to_the_blog_with_the_real_model(
    tmp_path: Path, export: Path, pages: Path
) -> None:
    where = ["--corpus", str(tmp_path / "corpus"), "--index", str(tmp_path / "index")]
    first = _cli("import", str(export), str(pages), *where, "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert len(json.loads(first.stdout)["added"]) == 3
    built = _cli("index", *where, "--json", cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    assert json.loads(built.stdout)["embedded_articles"] == 3
    again = _cli("import", str(export), str(pages), *where, "--json", cwd=tmp_path)
    assert len(json.loads(again.stdout)["unchanged"]) == 3
    rebuilt = _cli("index", *where, "--json", cwd=tmp_path)
    assert json.loads(rebuilt.stdout)["embedded_articles"] == 0 and json.loads(rebuilt.stdout)["written"] is False
    asked = _cli(
        "ask", "Quelle part de son PIB Shenzhen consacre-t-il à la recherche ?", *where, "--json", cwd=tmp_path
    )
    assert asked.returncode == 0, asked.stderr
    result = json.loads(asked.stdout)
    assert not result["abstained"], result
    first_citation = result["citations"][0]
    assert "4,3%" in first_citation["quote"]
    assert first_citation["article_url"] == "https://blog.example/shenzhen-start-up/"
    assert first_citation["url"] == text_fragment_url(first_citation["article_url"], first_citation["quote"])


def test_the_real_corpus_comes_back_unchanged_through_a_wordpress_export(tmp_path: Path) -> None:
    """The six hand-made articles, exported as classic-editor posts (paragraphs as blank lines,
    text HTML-escaped), import back to the same text, one line per paragraph; the one line that
    is a URL alone is an embed for WordPress, and dropped."""
    articles = load_corpus(REPO / "corpus").articles
    items = [_item(100 + n, a.title, escape(a.text, quote=False), slug=a.id) for n, a in enumerate(articles)]
    export = tmp_path / "real.xml"
    export.write_text(_export(*items), encoding="utf-8")
    assert len(import_posts([export], tmp_path / "corpus").added) == 6
    imported = load_corpus(tmp_path / "corpus").by_id()
    lone_url = "https://www.brandwatch.com/fr/2017/05/femmes-du-digital-interview-fabienne-billat/"
    for article in articles:
        lines = [line.rstrip() for line in article.text.split("\n") if line.strip() and line != lone_url]
        assert imported[article.id].text.split("\n") == lines, article.id
        assert imported[article.id].title == article.title


def test_a_page_in_the_charset_it_declares_is_read_and_an_undecodable_one_is_named(tmp_path: Path) -> None:
    latin = tmp_path / "latin.html"
    latin.write_bytes(PAGE_HTML.replace('charset="utf-8"', 'charset="windows-1252"').encode("cp1252"))
    broken = tmp_path / "broken.html"
    broken.write_bytes("<html><body><p>Déjà vu, été.</p></body></html>".encode("cp1252"))
    summary = import_posts([latin, broken], tmp_path / "corpus")
    (article,) = load_corpus(tmp_path / "corpus").articles
    assert article.text.splitlines() == PAGE
    (problem,) = summary.unreadable
    assert problem.source == broken and "not UTF-8" in problem.message


def test_progress_is_told_of_every_item_read_of_every_source(tmp_path: Path, export: Path, pages: Path) -> None:
    seen: list[tuple[int, int]] = []
    import_posts([export, pages], tmp_path / "corpus", progress=lambda done, known: seen.append((done, known)))
    items = export.read_text(encoding="utf-8").count("<item>")
    total = items + len(list(pages.glob("*.htm*")))
    assert items >= 6 and seen[-1] == (total, total)  # every export item and every page, once
    assert all(done <= known for done, known in seen)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
