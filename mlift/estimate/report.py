"""The estimate as a human-readable table (``--json`` prints the dict itself)."""

from __future__ import annotations

from typing import Any


def _usd(r: dict[str, float]) -> str:
    return f"${r['expected']:.4f} [{r['low']:.4f}–{r['high']:.4f}]"


def _tok(r: dict[str, float]) -> str:
    return f"{r['expected']:,.0f}"


def _dur(seconds: float) -> str:
    s = round(seconds)
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{sec:02d}s" if m else f"{sec}s")


def format_table(est: dict[str, Any]) -> str:
    """Per-stage rows, totals, wall time and the assumptions behind them."""
    items = est["items"]
    lines = [f"mlift estimate: {items['estimated']:,} items to process "
             f"({items['input']:,} read, {items['selected']:,} pass selection); "
             f"keep score >= {est['min_score']}", ""]
    batch = est.get("batch")
    head = (f"{'stage':<14}{'model':<24}{'tokenizer':<12}{'requests':>10}{'cached':>8}"
            f"{'input tok':>12}{'output tok':>12}  {'cost (expected [low-high])':<28}"
            + ("  with --batch" if batch else "")).rstrip()
    lines += [head, "-" * len(head)]
    for name, s in est["stages"].items():
        lines.append((f"{name:<14}{s['model'][:23]:<24}{s['tokenizer']:<12}"
                      f"{s['requests']['expected']:>10,.0f}{s['cached_requests']:>8,}"
                      f"{_tok(s['input_tokens']):>12}{_tok(s['output_tokens']):>12}  "
                      f"{_usd(s['cost_usd']):<28}"
                      + (f"  {_usd(s['cost_usd_batch'])}" + ("" if s["batch"] else " online")
                         if batch else "")).rstrip())
    t = est["total"]
    lines += ["-" * len(head),
              (f"{'total':<14}{'':<24}{'':<12}{'':>10}{t['cached_requests']:>8,}"
               f"{'':>12}{'':>12}  {_usd(t['cost_usd']):<28}"
               + (f"  {_usd(t['cost_usd_batch'])}" if batch else "")).rstrip(), ""]
    if batch:
        lines += [*_batch_lines(batch, t), ""]
    p = est["pass_rate"]
    lines.append(f"pass rate at >= {est['min_score']}: {p['value']:.0%} "
                 f"[{p['low']:.0%}–{p['high']:.0%}] ({p['source']})")
    w = est["wall_time_s"]
    lines.append(f"wall time{' online' if batch else ''}: {_dur(w['expected'])} "
                 f"[{_dur(w['low'])}–{_dur(w['high'])}]")
    for e in w["endpoints"]:
        lines.append(f"  {e['spec']}: {e['requests']:,.0f} requests, {e['tokens']:,} tokens, "
                     f"{e['bound']}-bound, {_dur(e['seconds']['expected'])}")
    if est.get("pilot"):
        pl = est["pilot"]
        lines.append(f"pilot: {pl['items']} items run for real, cost ${pl['cost_usd']:.4f} "
                     f"(already paid; those items are free in the run)")
    cached = {name: s["cached_input_tokens"]["expected"] for name, s in est["stages"].items()
              if s.get("cached_input_tokens", {}).get("expected")}
    if cached:
        lines.append("prompt cache: of the input tokens, " + ", ".join(
            f"{name} {_tok({'expected': n})}" for name, n in cached.items())
            + " are read from the provider's prompt cache (the repeated system prompt), "
            "at its cached-input price")
    lines += [f"note: {n}" for n in est["notes"]]
    return "\n".join(lines)


def _batch_lines(batch: dict[str, Any], total: dict[str, Any]) -> list[str]:
    """What --batch changes: the price, and the rounds of batches one after another."""
    online, cheap = total["cost_usd"]["expected"], total["cost_usd_batch"]["expected"]
    saved = f" ({1 - cheap / online:.0%} less)" if online else ""
    rounds = " → ".join(batch["rounds"]) or "none"
    reasks = batch["reask_rounds_at_most"]
    more = f", then up to {reasks} of judge re-asks" if reasks else ""
    lines = [f"with --batch ({', '.join(batch['stages'])}): ${cheap:.4f} instead of "
             f"${online:.4f}{saved}",
             f"  time: each round of batches ends within {batch['window_h']:.0f} h, one round "
             f"after another ({rounds}{more}): at most {_dur(batch['at_most_s'])}"]
    if batch["note"]:
        lines.append(f"  {batch['note']}")
    return lines
