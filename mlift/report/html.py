"""The report as one self-contained HTML page.

Inline CSS, plots as base64 PNG ``data:`` URIs, no scripts, fonts or links to
fetch: the file can be mailed, archived or opened offline and shows the same.
Every text taken from the data is HTML-escaped.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from html import escape

from mlift import __version__
from mlift.report import plots
from mlift.report.stats import DatasetStats
from mlift.report.table import reject_pairs, summary_rows

__all__ = ["render_html"]

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1100px;
color:#222;padding:0 1rem;line-height:1.4}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd}
h3{font-size:1.05rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #ddd;padding:.25rem .6rem;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
.plots{display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:1rem}
.plots img{max-width:100%;display:block;border:1px solid #eee}
.note{color:#666;font-size:.85rem}.cols{display:flex;flex-wrap:wrap;gap:2rem}
"""


def _img(png: bytes | None, alt: str) -> str:
    if png is None:
        return f'<p class="note">{escape(alt)}: nothing to plot (no data).</p>'
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def _counts_table(title: str, counts: Mapping[str, int] | Iterable[tuple[str, int]],
                  total: int) -> str:
    items = list(counts.items()) if isinstance(counts, Mapping) else list(counts)
    if not items:
        return ""
    body = "".join(f'<tr><td>{escape(k)}</td><td class="n">{n}</td>'
                   f'<td class="n">{n / total:.0%}</td></tr>' if total else
                   f'<tr><td>{escape(k)}</td><td class="n">{n}</td><td></td></tr>'
                   for k, n in items)
    return (f"<div><h3>{escape(title)}</h3><table><tr><th></th><th>rows</th><th>share</th>"
            f"</tr>{body}</table></div>")


def _funnel(s: DatasetStats) -> str:
    f = s.funnel
    rows = [("input", f.input)]
    rows += [(f"rejected at {stage}: {code}", n) for stage, code, n in reject_pairs(s)]
    if f.scored:
        rows += [("judged", f.scored), ("below threshold", f.below_threshold)]
    rows.append(("kept", f.kept))
    body = "".join(f'<tr><td>{escape(k)}</td><td class="n">{n}</td>'
                   f'<td class="n">{n / f.input:.0%}</td></tr>' if f.input else
                   f'<tr><td>{escape(k)}</td><td class="n">{n}</td><td></td></tr>'
                   for k, n in rows)
    state = "counts add up" if f.balanced else "counts do NOT add up (interrupted or edited?)"
    extra = (f"; judge answers that could not be parsed: {f.judge_parse_failures}"
             if f.judge_parse_failures is not None else "")
    return (f"<div><h3>Funnel</h3><table><tr><th>stage</th><th>items</th><th>of input</th></tr>"
            f'{body}</table><p class="note">{state}{escape(extra)}</p></div>')


def _dataset_section(s: DatasetStats) -> str:
    parts = [f"<h2>{escape(s.name)} <span class=note>({escape(s.kind)}; "
             f"{escape(s.path)})</span></h2>", '<div class="cols">', _funnel(s),
             _counts_table("Languages", s.languages, s.rows),
             _counts_table("Tasks", s.tasks, s.rows),
             _counts_table("Prompts / templates", s.prompts, s.rows),
             _counts_table("Styles", s.styles, s.rows),
             _counts_table("Leading words of the English instructions", s.leading_words,
                           s.english_instructions),
             "</div>"]
    if not s.english_instructions:
        parts.append('<p class="note">No English instructions (instruction_en) to take '
                     "leading words from.</p>")
    if s.score_histogram is None:
        parts.append('<p class="note">No judge scores in this folder (no scored.jsonl): '
                     "no histogram or yields.</p>")
    return "\n".join(p for p in parts if p)


def render_html(stats: Sequence[DatasetStats], *, title: str = "mlift dataset report",
                sections: str = "") -> str:
    """The whole page. Needs matplotlib (raises ConfigError naming the install if missing).

    ``sections``: more HTML for the end of the page (the agreement section, eval folders'
    score tables), already escaped. A page of sections alone (no dataset folder) has no
    plots and needs no matplotlib.
    """
    if not stats:
        return _page(title, sections)
    plots.require_matplotlib()
    names = [s.name for s in stats]
    head = "".join(f"<th>{escape(n)}</th>" for n in names)
    body = "".join("<tr><th>" + escape(label) + "</th>"
                   + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>"
                   for label, cells in summary_rows(stats))
    tok = (f"{stats[0].tokenizer} tokens ({stats[0].token_model})" if stats else "tokens")
    if stats and stats[0].tokenizer == "approx":
        tok += ", estimated: the tokenizer could not be loaded"
    figures = [
        _img(plots.score_plot(stats), "Score histogram"),
        _img(plots.yield_plot(stats), "Yield vs threshold"),
        _img(plots.length_plot(stats), "Length distributions"),
        _img(plots.task_plot(stats), "Task spread"),
    ]
    return _page(title, f"""\
<p class="note">mlift {escape(__version__)}. Lengths are mean ± s.d. in characters and in {
escape(tok)}; distinct-n counts distinct word n-grams over all n-grams of the instructions
(Han and kana characters count as words); yields count judged pairs scoring ≥ k.</p>
<h2>Comparison</h2>
<table><tr><th></th>{head}</tr>{body}</table>
<h2>Plots</h2>
<div class="plots">{"".join(figures)}</div>
{"".join(_dataset_section(s) for s in stats)}
{sections}""")


def _page(title: str, body: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{escape(title)}</h1>
{body}
</body></html>
"""
