"""Scenarios 9–13: servers that count differently from mlift, and one that cannot serve.

The simulator is set to count the way real providers are reported to, not
the way mlift estimates: the token charge as characters / 4 + ``max_tokens``
(OpenAI's limiter), refused requests counted against the limit, limits told
twice too high or not at all, Anthropic's separate input and output limits.
The ideal wall time is the server's own total charge at its real limit; the
windows and 429s come from the simulator's exact counters. mlift runs with its
default settings (the lean transport for both kinds); the naive client is the
SDK with its retries on.
"""

from __future__ import annotations

import json
import time
from typing import Any

from benchmarks.clients import ENV, ClientRun, mlift_command, run_curator, run_mlift, run_naive
from benchmarks.common import Ctx, Row
from benchmarks.procs import Sim, measure

ANTHROPIC = "anthropic:claude-3-5-haiku-latest"


def _s429(stats: dict[str, Any]) -> int:
    return int(stats["by_status"].get("429", 0))


def _row(name: str, run: ClientRun, stats: dict[str, Any], n: int, ideal_s: float,
         limits: dict[str, float], note: str = "") -> Row:
    """wall ≤ 1.05 × ideal, 429s ≤ 1 % of requests, no 60 s window over any limit."""
    windows = {"requests": "max_requests_60s", "tokens": "max_tokens_60s",
               "input_tokens": "max_input_tokens_60s", "output_tokens": "max_output_tokens_60s"}
    over = [k for k, limit in limits.items() if stats[windows[k]] > limit]
    shown = "; ".join(f"max {k.replace('_tokens', ' tok')}/60s {stats[windows[k]]}/{v:.0f}"
                      for k, v in limits.items())
    answered = run.check.lines - run.check.errors
    ratio = run.elapsed_s / ideal_s
    r429 = _s429(stats) / n
    result = (f"wall {run.elapsed_s:.1f}s / ideal {ideal_s:.1f}s = {ratio:.3f}; {shown}; "
              f"429s {_s429(stats)} ({r429:.2%}); answered {answered}/{n}{note}")
    ok = (ratio <= 1.05 and r429 <= 0.01 and not over and answered == n
          and run.check.in_order)
    return Row(name, run.client, result,
               "wall ≤ 1.05× ideal, 429s ≤ 1%, no 60 s window over a limit, all answered", ok)


def _clients(ctx: Ctx) -> list[str]:
    return ["mlift", "naive", *(["curator"] if ctx.notes.get("curator_python") else [])]


def _run(client: str, ctx: Ctx, api: str, inp: Any, tag: str, mlift_flags: tuple[str, ...],
         curator_flags: tuple[str, ...] = (), provider: str | None = None) -> ClientRun:
    out = ctx.tmp / f"{tag}-{client}.out"
    if client == "mlift":
        return run_mlift(api, inp, out, *mlift_flags,
                         **({"provider": provider} if provider else {}))
    if client == "naive":
        return run_naive(api, inp, out, anthropic=provider == ANTHROPIC)
    return run_curator(str(ctx.notes["curator_python"]), api, inp, out, *curator_flags)


def _token_bound(ctx: Ctx, name: str, tag: str, told: tuple[str, ...]) -> list[Row]:
    n = ctx.n(1000, 150)
    inp = ctx.workload("req", n)
    rows = []
    per_request: float | None = None
    for client in _clients(ctx):
        with Sim("--tpm", "150000", "--charge", "chars", "--latency-ms", "200") as sim:
            run = _run(client, ctx, sim.api, inp, tag, told,
                       ("--rpm", "1000000", "--tpm", "150000"))
            stats = sim.stats()
        answered = stats["by_status"].get("200", 0)
        if per_request is None and answered:
            per_request = stats["tokens_charged"] / answered  # the server's own count
        ideal = (per_request or 1.0) * n / (150000 / 60)
        rows.append(_row(name, run, stats, n, ideal, {"tokens": 150000},
                         f"; {per_request or 0:.0f} tokens charged per request by chars/4 "
                         f"(mlift's tokenizer: {stats['tokens_in'] / max(1, answered) + 100:.0f})"))
    return rows


def chars(ctx: Ctx) -> list[Row]:
    """Token-bound, the server charging characters / 4 + max_tokens; told the right tpm."""
    return _token_bound(ctx, "9 chars/4 accounting, told tpm", "chars", ("--tpm", "150000"))


def counted(ctx: Ctx) -> list[Row]:
    """rpm-bound, told twice the real limit, the server counting refused requests."""
    n = ctx.n(2000, 200)
    inp = ctx.workload("req", n)
    rows = []
    for client in _clients(ctx):
        with Sim("--rpm", "3000", "--count-refused", "--latency-ms", "400") as sim:
            run = _run(client, ctx, sim.api, inp, "counted", ("--rpm", "6000"),
                       ("--rpm", "6000", "--tpm", "1000000000"))
            rows.append(_row("10 told 2× rpm, refusals counted", run, sim.stats(), n, n / 50,
                             {"requests": 3000}))
    return rows


def told_nothing(ctx: Ctx) -> list[Row]:
    """Told nothing: rpm-bound (tokenizer accounting) and token-bound (chars / 4)."""
    n = ctx.n(2000, 200)
    inp = ctx.workload("req", n)
    rows = []
    with Sim("--rpm", "3000", "--latency-ms", "400") as sim:
        run = run_mlift(sim.api, inp, ctx.tmp / "nothing-rpm.out")
        rows.append(_row("11a told nothing, rpm-bound", run, sim.stats(), n, n / 50,
                         {"requests": 3000}))
    rows.extend(r for r in _token_bound(ctx, "11b told nothing, tpm-bound (chars/4)",
                                        "nothing-tpm", ()) if r.client == "mlift")
    return rows


def anthropic(ctx: Ctx) -> list[Row]:
    """Anthropic's separate input- and output-token limits, told nothing."""
    n = ctx.n(1000, 150)
    inp = ctx.workload("req", n)
    rows = []
    cases = (("12a Anthropic input-token bound", "input_tokens", ("--itpm", "100000",
                                                                   "--otpm", "200000")),
             ("12b Anthropic output-token bound", "output_tokens", ("--itpm", "1000000",
                                                                     "--otpm", "20000")))
    for name, bound, flags in cases:
        for client in ("mlift", "naive"):
            with Sim("--rpm", "4000", *flags, "--latency-ms", "200") as sim:
                run = _run(client, ctx, sim.url, inp, f"anth-{bound}", (), provider=ANTHROPIC)
                stats = sim.stats()
            itpm, otpm = float(flags[1]), float(flags[3])
            answered = max(1, stats["by_status"].get("200", 0))
            # What the server charged: input as counted, output as written.
            per_in, per_out = stats["tokens_in"] / answered, stats["tokens_out"] / answered
            ideal = max(per_in * n / itpm, per_out * n / otpm) * 60
            rows.append(_row(name, run, stats, n, ideal,
                             {"requests": 4000, "input_tokens": itpm, "output_tokens": otpm},
                             f"; {per_in:.0f} in + {per_out:.0f} out tokens per request"))
    return rows


def wrong_url(ctx: Ctx) -> list[Row]:
    """A wrong base URL (404 on every request) stops the run fast, naming it; then the fix."""
    n = ctx.n(500, 100)
    inp = ctx.workload("req", n)
    out = ctx.tmp / "wrong.out"
    out.unlink(missing_ok=True)
    with Sim("--latency-ms", "100") as sim:
        start = time.perf_counter()
        wrong = measure(mlift_command(sim.url, inp, out), env=ENV)
        seconds = time.perf_counter() - start
        stats_file = out.with_suffix(".stats.json")
        sent = (json.loads(stats_file.read_text())["accounting"]["totals"]["attempts"]
                if stats_file.exists() else "?")
        served = sim.stats()["requests"]  # the simulator counts the 404s it answered
        named = sim.url in wrong.stderr and "gpt-4o-mini" in wrong.stderr
        fixed = run_mlift(sim.api, inp, out)
    ok = wrong.returncode != 0 and seconds <= 10 and named and fixed.check.complete(n) \
        and fixed.check.errors == 0
    message = wrong.stderr.strip().splitlines()[-1][:160] if wrong.stderr.strip() else ""
    result = (f"exit {wrong.returncode} after {seconds:.1f}s (process, start-up included), "
              f"{served} requests reached the server ({sent} by mlift's count), "
              f"message names URL and model: {named} "
              f"({message!r}); "
              f"re-run with /v1: {fixed.check.lines - fixed.check.errors}/{n} answered")
    return [Row("13 wrong base URL", "mlift", result,
                "non-zero exit ≤ 10 s naming the URL; the fixed re-run answers every item", ok)]
