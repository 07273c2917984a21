"""The eval section of ``mlift report``: an eval folder's scores, as text and as HTML.

One table per eval run folder (``mlift eval … --out DIR``): a row per group
(language, or translation direction) and model, each metric with its 95 %
bootstrap interval, then a Δ row per model against the first (the
baseline), with the paired-bootstrap interval and p-value; the unweighted
mean over groups closes the table. Everything comes from ``summary.json``,
so reporting sends nothing and needs no metric library.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from mlift.eval.store import is_eval_folder, read_summary

__all__ = ["is_eval_folder", "load_eval", "render_eval_html", "render_eval_text"]


def load_eval(path: Path) -> dict[str, Any]:
    """The summary of an eval folder, with the folder's name and path added."""
    summary = read_summary(path)
    return {**summary, "name": path.resolve().name, "path": str(path)}


def _cell(m: dict[str, Any] | None, delta: bool = False) -> str:
    if not m:
        return "-"
    sign = "+" if delta else ""
    text = f"{m['value']:{sign}.1f} [{m['low']:{sign}.1f}, {m['high']:{sign}.1f}]"
    if delta and m.get("p_value") is not None:
        text += f" p={m['p_value']:.2f}"
    return text


def _rows(s: dict[str, Any]) -> list[list[str]]:
    metrics = s["metrics"]
    rows = []
    for g in s["groups"]:
        first = True
        for label, m in g["models"].items():
            extra = f" ({m['missing']} missing)" if m["missing"] else ""
            rows.append([g["group"] if first else "", label, f"{m['answered']}{extra}",
                         *[_cell(m["metrics"].get(k)) for k in metrics]])
            first = False
        for label, d in g["deltas"].items():
            n = next(iter(d.values()))["n"] if d else 0
            rows.append(["", f"Δ {label}−{s['baseline']}", str(n),
                         *[_cell(d.get(k), delta=True) for k in metrics]])
    for label, avg in s.get("average", {}).items():
        rows.append(["mean", label, "", *[f"{avg[k]:.1f}" for k in metrics]])
    return rows


def _models(s: dict[str, Any]) -> str:
    return ", ".join(k if k == v else f"{k} = {v}" for k, v in s["models"].items())


def _header(s: dict[str, Any]) -> list[str]:
    return ["group", "model", "n", *s["metrics"]]


def _caption(s: dict[str, Any]) -> str:
    b = s["bootstrap"]
    state = "" if s.get("complete", True) else " INCOMPLETE: some items have no answer yet."
    small = min((m["answered"] for g in s["groups"] for m in g["models"].values()), default=0)
    if small < 30:
        state += (f" Some groups have {small} item{'s' if small != 1 else ''}: with under 30, "
                  "bootstrap intervals are too narrow to trust.")
    return (f"Scores ×100 with {b['level']:.0%} bootstrap intervals ({b['resamples']} "
            f"resamples, seed {b['seed']}); Δ rows: paired bootstrap against "
            f"{s['baseline']} on the items both answered.{state}")


def render_eval_text(summaries: Sequence[dict[str, Any]]) -> str:
    out = []
    for s in summaries:
        models = _models(s)
        out.append(f"{s.get('name', '')}: mlift eval {s['task']}  ({models})")
        table = [_header(s), *_rows(s)]
        widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
        for n, row in enumerate(table):
            out.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
            if n == 0:
                out.append("-" * (sum(widths) + 2 * (len(widths) - 1)))
        out.append(_caption(s))
        for name, sig in s.get("signatures", {}).items():
            out.append(f"  {name}: {sig}")
        out.append("")
    return "\n".join(out)


def render_eval_html(summaries: Sequence[dict[str, Any]]) -> str:
    """``<h2>`` sections, one table per eval folder (all text escaped)."""
    parts = []
    for s in summaries:
        head = "".join(f"<th>{escape(h)}</th>" for h in _header(s))
        body = "".join("<tr>" + "".join(
            f'<td class="n">{escape(c)}</td>' if i >= 2 else f"<td>{escape(c)}</td>"
            for i, c in enumerate(row)) + "</tr>" for row in _rows(s))
        models = _models(s)
        sigs = "".join(f"<li>{escape(k)}: <code>{escape(v)}</code></li>"
                       for k, v in s.get("signatures", {}).items())
        parts.append(f"<h2>Eval: {escape(s['task'])} <span class=note>"
                     f"({escape(s.get('name', ''))}; {escape(models)})</span></h2>"
                     f"<table><tr>{head}</tr>{body}</table>"
                     f'<p class="note">{escape(_caption(s))}</p><ul class="note">{sigs}</ul>')
    return "\n".join(parts)
