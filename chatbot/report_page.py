"""The report (:mod:`chatbot.report`) as one self-contained HTML page, in French: its plots
are SVG drawn by matplotlib and written into the page, its style is inline, it loads nothing
and runs no script. Every text from the log is escaped here. The page reads on a phone: one
column, plots that scale to the screen's width, and each plot's figures in a table too.
"""

from __future__ import annotations

import html
import io
import re
import textwrap
from collections.abc import Sequence
from datetime import date
from typing import Any

from chatbot.report import Gap, Report

__all__ = ["render_report"]

BLUE, ORANGE, GREY = "#1d4ed8", "#c2410c", "#6b7280"

STYLE = """
:root { color-scheme: light; }
body { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #111827; background: #fff;
  margin: 0; }
main { max-width: 860px; margin: 0 auto; padding: 12px 16px 40px; }
h1 { font-size: 1.6em; margin: .3em 0 .1em; }
h2 { font-size: 1.25em; margin: 1.6em 0 .4em; border-bottom: 2px solid #e5e7eb; padding-bottom: .2em; }
h3 { font-size: 1.05em; margin: 1em 0 .3em; }
.period, .note { color: #374151; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 8px; padding: 0;
  margin: .5em 0; list-style: none; }
.figures li { border: 1px solid #e5e7eb; border-radius: 8px; padding: 8px 10px; }
.figures .value { display: block; font-size: 1.5em; font-weight: 700; color: #1e3a8a; }
figure { margin: .6em 0; }
figure svg { width: 100%; height: auto; max-width: 600px; display: block; }
figcaption { font-size: .9em; color: #374151; }
table { border-collapse: collapse; margin: .4em 0; font-size: .95em; }
th, td { border-bottom: 1px solid #e5e7eb; padding: 4px 8px; text-align: left; vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.gap { border-left: 4px solid #c2410c; padding: 2px 0 4px 12px; margin: 1em 0; }
.gap ul, .votes, .passages { padding-left: 1.2em; }
.times { color: #374151; font-size: .9em; white-space: nowrap; }
blockquote { margin: .3em 0; padding: .2em .8em; border-left: 3px solid #1d4ed8; background: #f8fafc; }
.after { color: #374151; font-size: .9em; }
details { margin: .4em 0; }
summary { cursor: pointer; color: #1d4ed8; }
@media (max-width: 600px) { body { font-size: 17px; } h1 { font-size: 1.35em; } }
"""


def shown(text: str) -> str:
    return html.escape(text, quote=True)


def render_report(report: Report) -> str:
    """The whole page."""
    period = (
        f"du {_day(report.first_day)} au {_day(report.last_day)}" if report.first_day else "aucune question enregistrée"
    )
    body = [
        "<header><h1>Ce que demandent les lecteurs</h1>",
        f'<p class="period">Questions posées au chat et à l’API, {period}. Rapport du {_day(report.generated[:10])}.'
        "</p></header>",
    ]
    if report.damaged:
        body.append(
            f'<p class="note" role="note">{report.damaged} ligne(s) illisible(s) du journal ont été ignorées '
            "(coupées par un arrêt brutal ou modifiées à la main).</p>"
        )
    if report.empty:
        body.append(
            "<section><h2>Rien à montrer</h2><p>Le journal ne contient aucune question sur la période. Il se "
            "remplit quand le serveur est lancé avec <code>CHATBOT_QUESTION_LOG=data/questions.jsonl</code>.</p>"
            "</section>"
        )
    else:
        body += [_figures(report), _per_day(report), _gaps(report), _cited(report), _down_votes(report)]
    return (
        '<!doctype html>\n<html lang="fr"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Ce que demandent les lecteurs</title><style>{STYLE}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )


def _n(number: int) -> str:
    """A count as French writes it: 10 000."""
    return f"{number:,}".replace(",", "\u202f")


def _day(iso: str) -> str:
    try:
        return date.fromisoformat(iso).strftime("%d/%m/%Y")
    except ValueError:
        return iso


def _figures(report: Report) -> str:
    f = report.figures
    share = f"{round(100 * f['answered_share'])} %"
    latency = f"{f['latency_median_ms']:.0f} ms" if f["latency_median_ms"] is not None else "—"
    items = [
        ("questions", _n(f["questions"])),
        ("lecteurs distincts", _n(f["readers"])),
        ("jours", _n(f["days"])),
        ("répondues", _n(f["answered"])),
        ("sans réponse dans les articles", _n(f["not_answered"])),
        ("part des questions répondues", share),
        ("politesses et hors-sujet", _n(f["small_talk"])),
        ("questions de suite", _n(f["follow_ups"])),
        ("par le chat / par l’API", f"{_n(f['via_chat'])} / {_n(f['via_api'])}"),
        ("temps de réponse médian", latency),
        ("réponses jugées utiles / pas utiles (👍 / 👎)", f"{_n(f['votes_up'])} / {_n(f['votes_down'])}"),
    ]
    cells = "".join(f'<li><span class="value">{shown(str(v))}</span>{shown(k)}</li>' for k, v in items)
    return (
        '<section aria-labelledby="h-figures"><h2 id="h-figures">La période en chiffres</h2>'
        f'<ul class="figures">{cells}</ul></section>'
    )


def _per_day(report: Report) -> str:
    rows = "".join(
        f'<tr><th scope="row">{_day(d)}</th><td class="n">{a}</td><td class="n">{g}</td><td class="n">{s}</td></tr>'
        for d, a, g, s in report.per_day
    )
    table = (
        "<details><summary>Les chiffres par jour</summary><table><caption>Questions par jour</caption>"
        '<thead><tr><th scope="col">Jour</th><th scope="col" class="n">Répondues</th>'
        '<th scope="col" class="n">Sans réponse</th><th scope="col" class="n">Politesses, hors-sujet</th></tr>'
        f"</thead><tbody>{rows}</tbody></table></details>"
    )
    total = _n(report.figures["questions"])
    label = f"Questions par jour, du {_day(report.first_day)} au {_day(report.last_day)} : {total} en tout."
    return (
        '<section aria-labelledby="h-days"><h2 id="h-days">Questions par jour</h2>'
        f"<figure>{_day_plot(report.per_day, label)}<figcaption>{shown(label)} En bleu les questions répondues, "
        "en orange celles auxquelles les articles ne répondent pas, en gris les politesses et messages hors "
        f"sujet.</figcaption></figure>{table}</section>"
    )


def _gaps(report: Report) -> str:
    if not report.gaps:
        return (
            '<section aria-labelledby="h-gaps"><h2 id="h-gaps">Ce que les articles ne disent pas</h2>'
            "<p>Toutes les questions de la période ont trouvé une réponse dans les articles.</p></section>"
        )
    how = (
        "regroupées par sujet (le sens des questions, lu par le modèle du chat)"
        if report.grouped_by != "article"
        else "regroupées par l’article du passage le plus proche (le modèle du chat n’était pas disponible)"
    )
    parts = [
        '<section aria-labelledby="h-gaps"><h2 id="h-gaps">Ce que les articles ne disent pas</h2>',
        f"<p>{_n(report.figures['not_answered'])} question(s) sans réponse dans les articles, {how} ; les sujets "
        "les plus demandés d’abord. Sous chaque sujet, le passage le plus proche que le chat a trouvé : ce que "
        "les articles en disent déjà.</p>",
    ]
    if report.ungrouped:
        parts.append(
            f'<p class="note">{_n(report.ungrouped)} question(s) différentes, posées plus rarement, ne sont pas '
            "regroupées.</p>"
        )
    parts += [_gap(gap) for gap in report.gaps]
    parts.append("</section>")
    return "".join(parts)


def _gap(gap: Gap) -> str:
    questions = "".join(
        f"<li>{shown(q.question)}"
        + (f' <span class="after">(après « {shown(q.follow_up_of)} »)</span>' if q.follow_up_of else "")
        + (f' <span class="times">× {q.times}</span>' if q.times > 1 else "")
        + "</li>"
        for q in gap.questions
    )
    closest = (
        f"<p>Passage le plus proche : <cite>{shown(gap.closest.article)}</cite></p>"
        f'<blockquote lang="fr">{shown(gap.closest.quote)}</blockquote>'
        if gap.closest is not None
        else "<p>Aucun passage proche.</p>"
    )
    title = gap.questions[0].question
    return (
        f'<article class="gap"><h3>{shown(title)} <span class="times">— {gap.times} fois</span></h3>'
        f"<ul>{questions}</ul>{closest}</article>"
    )


def _cited(report: Report) -> str:
    if not report.articles:
        return (
            '<section aria-labelledby="h-cited"><h2 id="h-cited">Les articles les plus cités</h2>'
            "<p>Aucune réponse citée sur la période.</p></section>"
        )
    label = "Articles les plus cités : " + ", ".join(f"{a.title} ({a.times})" for a in report.articles[:5])
    rows = "".join(f'<tr><td>{shown(a.title)}</td><td class="n">{a.times}</td></tr>' for a in report.articles)
    passages = "".join(
        f'<li><cite>{shown(p.title)}</cite> <span class="times">— cité {p.times} fois</span>'
        f'<blockquote lang="fr">{shown(p.quote)}</blockquote></li>'
        for p in report.passages
    )
    return (
        '<section aria-labelledby="h-cited"><h2 id="h-cited">Les articles les plus cités</h2>'
        f"<figure>{_article_plot(report, label)}<figcaption>Nombre de réponses qui citent chaque article."
        "</figcaption></figure>"
        '<table><caption>Réponses citant chaque article</caption><thead><tr><th scope="col">Article</th>'
        f'<th scope="col" class="n">Réponses</th></tr></thead><tbody>{rows}</tbody></table>'
        f'<h3>Les passages les plus cités</h3><ol class="passages">{passages}</ol></section>'
    )


def _down_votes(report: Report) -> str:
    if not report.down_votes:
        body = "<p>Aucune réponse n’a reçu de 👎 sur la période.</p>"
    else:
        body = (
            '<ol class="votes">'
            + "".join(
                f'<li><p><strong>{shown(v.question)}</strong> <span class="times">{_day(v.time[:10])}</span>'
                + (f' <span class="after">(après « {shown(v.follow_up_of)} »)</span>' if v.follow_up_of else "")
                + f'</p><blockquote lang="fr">{shown(v.answer)}</blockquote></li>'
                for v in report.down_votes
            )
            + "</ol>"
        )
    return (
        f'<section aria-labelledby="h-votes"><h2 id="h-votes">Les réponses jugées pas utiles (👎)</h2>{body}</section>'
    )


def _svg(figure: object, label: str) -> str:
    """A matplotlib figure as inline SVG: text kept as text, no fixed size (it scales to the
    page), named for screen readers."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})  # type: ignore[attr-defined]
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r'<svg ([^>]*?)width="[^"]*" height="[^"]*"', r"<svg \1", svg, count=1)
    svg = svg.replace("<svg ", f'<svg role="img" aria-label="{shown(label)}" focusable="false" ', 1)
    return re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)


def _style() -> Any:  # matplotlib types its keys as literals
    return {"svg.fonttype": "none", "svg.hashsalt": "chatbot-report", "font.size": 12,
            "font.family": "DejaVu Sans", "axes.spines.top": False, "axes.spines.right": False}  # fmt: skip


def _day_plot(days: Sequence[tuple[str, int, int, int]], label: str) -> str:
    import matplotlib
    from matplotlib.dates import AutoDateLocator, DateFormatter
    from matplotlib.figure import Figure

    with matplotlib.rc_context(_style()):
        figure = Figure(figsize=(4.2, 2.8))  # at a phone's width, about the page's own text size
        axes = figure.add_subplot()
        when = [date.fromisoformat(d[0]) for d in days]
        answered, gaps, talk = [d[1] for d in days], [d[2] for d in days], [d[3] for d in days]
        width = 0.8 if len(days) < 200 else 1.0
        axes.bar(when, answered, width, color=BLUE, label="répondues")  # type: ignore[arg-type]
        axes.bar(when, gaps, width, bottom=answered, color=ORANGE, label="sans réponse")  # type: ignore[arg-type]
        axes.bar(when, talk, width, bottom=[a + g for a, g in zip(answered, gaps, strict=True)],  # type: ignore[arg-type]
                 color=GREY, label="politesses")  # fmt: skip
        locator = AutoDateLocator(minticks=3, maxticks=4)
        axes.xaxis.set_major_locator(locator)
        axes.xaxis.set_major_formatter(DateFormatter("%d/%m"))
        axes.set_ylabel("questions")
        axes.yaxis.get_major_locator().set_params(integer=True)  # type: ignore[call-arg]
        axes.legend(loc="upper left", frameon=False, ncols=3, fontsize=11, bbox_to_anchor=(-0.02, 1.18),
                    handlelength=1, columnspacing=1)  # fmt: skip
        return _svg(figure, label)


def _article_plot(report: Report, label: str) -> str:
    import matplotlib
    from matplotlib.figure import Figure

    articles = list(report.articles[:8])[::-1]
    with matplotlib.rc_context(_style()):
        figure = Figure(figsize=(4.2, 0.5 + 0.6 * len(articles)))
        axes = figure.add_subplot()
        names = ["\n".join(textwrap.wrap(a.title, 22)[:2]) for a in articles]
        bars = axes.barh(names, [a.times for a in articles], color=BLUE)
        axes.bar_label(bars, padding=3, fontsize=11)
        axes.xaxis.set_visible(False)
        axes.spines["bottom"].set_visible(False)
        axes.tick_params(axis="y", labelsize=11, length=0)
        return _svg(figure, label)
