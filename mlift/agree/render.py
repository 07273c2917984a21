"""``mlift agree`` as text for a terminal and as a section of the HTML report.

Every figure is printed next to the number of items behind it; groups with
fewer than :data:`~mlift.agree.compare.MIN_ITEMS` items carry a ``!`` and a
note says what it means. Texts from the data (rater and group names) are
HTML-escaped in the page.
"""

from __future__ import annotations

from html import escape

from mlift.agree.compare import MIN_ITEMS, THRESHOLDS, Agreement, Comparison, Figures
from mlift.review.blind import format_win_rates

COLUMNS = ("n", "κ quad", "κ lin", "τ-b", "ρ", "exact", "±1")
FEW = f"! fewer than {MIN_ITEMS} items: too few to trust these figures"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:+.2f}" if x < 0 else f"{x:.2f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def _cells(f: Figures) -> list[str]:
    return [f"{f.n}{' !' if f.few else ''}", _num(f.kappa), _num(f.kappa_linear),
            _num(f.tau_b), _num(f.spearman), _pct(f.exact), _pct(f.within_one)]


def _yield_row(shares: dict[int, float]) -> str:
    return " ".join(f"{_pct(shares.get(t)):>4}" for t in THRESHOLDS)


def _comparison_text(c: Comparison) -> list[str]:
    lines = [f"{c.a}  vs  {c.b}   ({c.kind})"]
    width = max(len(g) for g in c.groups) + 2
    lines.append("  " + "group".ljust(width) + "".join(h.rjust(8) for h in COLUMNS))
    for group, f in c.groups.items():
        lines.append("  " + group.ljust(width) + "".join(x.rjust(8) for x in _cells(f)))
    f = c.groups["all"]
    lines.append(f"  confusion (all {f.n}; rows {c.a}, columns {c.b}):")
    lines.append("       " + "".join(f"{s:>5}" for s in range(1, 6)))
    for score, row in zip(range(1, 6), f.confusion, strict=True):
        lines.append(f"    {score:>3}" + "".join(f"{v:>5}" for v in row))
    w = max(len(c.a), len(c.b), len("same keep"))
    lines.append("  yield at λ = ".ljust(w + 6) + " ".join(f"{t:>4}" for t in THRESHOLDS))
    for name, shares in ((c.a, f.yield_a), (c.b, f.yield_b), ("same keep", f.same_keep)):
        lines.append(f"    {name:<{w}}  " + _yield_row(shares))
    return lines


def render_text(a: Agreement) -> str:
    lines = [f"Agreement in {a.run}"]
    yields = a.rater_yields()
    if yields:
        lines.append("")
        lines.append("raters (items; yield at λ = " + "/".join(map(str, THRESHOLDS)) + "):")
        name_w = max(len(n) for n in yields)
        for name, y in yields.items():
            few = " !" if y["n"] < MIN_ITEMS else ""
            lines.append(f"  {name.ljust(name_w)}  {y['n']:>5}{few:<2}  " + _yield_row(y["yield"])
                         + "   " + ", ".join(f"{lang} {d['n']}" for lang, d in
                                            y["by_lang"].items()))
    for c in a.comparisons:
        lines.append("")
        lines += _comparison_text(c)
    if not a.comparisons:
        lines.append("")
        lines.append("no two raters share an item yet: run `mlift judge` for a second judge "
                     "or label pairs with `mlift review`")
    if a.win_rates:
        lines.append("")
        lines.append("blind comparison (A's win rate over decided choices, 95% Wilson interval):")
        lines += format_win_rates(a.win_rates)
    lines.append("")
    lines.append(f"κ weighted (quadratic, linear) over scores 1-5; τ-b and ρ handle ties; "
                 f"exact and ±1 are shares of items; 'same keep' = both keep or both drop "
                 f"at λ. {FEW}.")
    return "\n".join(lines) + "\n"


def _table(c: Comparison) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in ("group", *COLUMNS))
    rows = "".join("<tr><td>" + escape(g) + "</td>" + "".join(
        f'<td class="n">{escape(x)}</td>' for x in _cells(f)) + "</tr>"
        for g, f in c.groups.items())
    f = c.groups["all"]
    conf = "".join(f"<tr><th>{s}</th>" + "".join(f'<td class="n">{v}</td>' for v in row)
                   + "</tr>" for s, row in zip(range(1, 6), f.confusion, strict=True))
    ylds = "".join(f"<tr><th>{escape(name)}</th>" + "".join(
        f'<td class="n">{_pct(shares.get(t))}</td>' for t in THRESHOLDS) + "</tr>"
        for name, shares in ((c.a, f.yield_a), (c.b, f.yield_b), ("same keep", f.same_keep)))
    return (f"<h3>{escape(c.a)} vs {escape(c.b)} <span class=note>({escape(c.kind)})</span>"
            f"</h3><table><tr>{head}</tr>{rows}</table>"
            f'<div class="cols"><div><p class="note">confusion, all {f.n} items (rows '
            f"{escape(c.a)}, columns {escape(c.b)})</p><table><tr><th></th>"
            + "".join(f"<th>{s}</th>" for s in range(1, 6)) + f"</tr>{conf}</table></div>"
            f'<div><p class="note">yield at λ</p><table><tr><th></th>'
            + "".join(f"<th>≥{t}</th>" for t in THRESHOLDS) + f"</tr>{ylds}</table></div></div>")


def render_html(a: Agreement) -> str:
    """A ``<section>`` for the HTML report (no scripts, all text escaped)."""
    parts = [f"<section><h2>Agreement: {escape(a.run)}</h2>"]
    yields = a.rater_yields()
    if yields:
        parts.append("<table><tr><th>rater</th><th>items</th>" + "".join(
            f"<th>yield ≥{t}</th>" for t in THRESHOLDS) + "</tr>" + "".join(
            f"<tr><td>{escape(name)}</td><td class=n>{y['n']}"
            f"{' !' if y['n'] < MIN_ITEMS else ''}</td>" + "".join(
                f'<td class="n">{_pct(y["yield"].get(t))}</td>' for t in THRESHOLDS) + "</tr>"
            for name, y in yields.items()) + "</table>")
    parts += [_table(c) for c in a.comparisons]
    if a.win_rates:
        parts.append("<h3>Blind comparison</h3><ul>" + "".join(
            f"<li>{escape(line.strip())}</li>" for line in format_win_rates(a.win_rates))
            + "</ul>")
    parts.append(f'<p class="note">κ weighted (quadratic, linear) over scores 1–5; τ-b and ρ '
                 f"handle ties; exact and ±1 are shares of items. {escape(FEW)}.</p></section>")
    return "\n".join(parts)
