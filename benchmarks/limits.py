"""Scenarios 1–4: throughput at the rate limit, limits discovered, and faults.

Each starts a fresh simulator process, runs mlift (and where it teaches
something, the naive baseline) against it, and returns result rows. Windows
and 429 counts come from the simulator's own exact counters (``/stats``).
"""

from __future__ import annotations

from typing import Any

from benchmarks.clients import ClientRun, run_mlift, run_naive
from benchmarks.common import Ctx, Row
from benchmarks.procs import Sim


def _s429(stats: dict[str, Any]) -> int:
    return int(stats["by_status"].get("429", 0))


def _limit_row(name: str, run: ClientRun, sim: dict[str, Any], n: int, ideal_s: float,
               wall_factor: float, *, rpm: float | None, tpm: float | None,
               max_429: float | None = 0.005) -> Row:
    ratio = run.elapsed_s / ideal_s
    over60 = ((rpm is not None and sim["max_requests_60s"] > rpm)
              or (tpm is not None and sim["max_tokens_60s"] > tpm))
    r429 = _s429(sim) / n
    windows = []
    if rpm is not None:
        windows.append(f"max req/60s {sim['max_requests_60s']}/{rpm:.0f}, "
                       f"max req/1s {sim['max_requests_1s']}")
    if tpm is not None:
        windows.append(f"max tok/60s {sim['max_tokens_60s']}/{tpm:.0f}, "
                       f"max tok/1s {sim['max_tokens_1s']}")
    answered = run.check.lines - run.check.errors
    result = (f"wall {run.elapsed_s:.1f}s / ideal {ideal_s:.1f}s = {ratio:.3f} "
              f"(process {run.measured.wall_s:.1f}s); {'; '.join(windows)}; "
              f"429s {_s429(sim)} ({r429:.2%}); answered {answered}/{n}")
    ok = ratio <= wall_factor and not over60 and answered == n and run.check.in_order
    target = f"wall ≤ {wall_factor}× ideal, no 60 s window over limit, all answered"
    if max_429 is not None:
        ok = ok and r429 <= max_429
        target += f", 429s ≤ {max_429:.1%}"
    return Row(name, run.client, result, target, ok)


def rpm_bound(ctx: Ctx) -> list[Row]:
    n = ctx.n(2000, 200)
    inp = ctx.workload("req", n)
    rows = []
    with Sim("--rpm", "3000", "--latency-ms", "400") as sim:
        run = run_mlift(sim.api, inp, ctx.tmp / "rpm.out", "--rpm", "3000")
        rows.append(_limit_row("1 rpm-bound", run, sim.stats(), n, n / 50, 1.03,
                               rpm=3000, tpm=None))
    with Sim("--rpm", "3000", "--latency-ms", "400") as sim:
        run = run_naive(sim.api, inp, ctx.tmp / "rpm-naive.out")
        rows.append(_limit_row("1 rpm-bound", run, sim.stats(), n, n / 50, 1.03,
                               rpm=3000, tpm=None))
    return rows


def tpm_bound(ctx: Ctx) -> list[Row]:
    n = ctx.n(1000, 100)
    inp = ctx.workload("req", n)
    with Sim("--tpm", "150000", "--latency-ms", "200") as sim:
        run = run_mlift(sim.api, inp, ctx.tmp / "tpm.out", "--tpm", "150000")
        stats = sim.stats()
    answered = stats["by_status"].get("200", 0)
    charged = stats["tokens_in"] + 100 * answered  # prompt + max_tokens, as the sim charges
    ideal = charged / (150000 / 60)
    row = _limit_row("2 tpm-bound", run, stats, n, ideal, 1.05, rpm=None, tpm=150000)
    row.result += f"; {charged / max(answered, 1):.0f} tokens charged per request"
    return [row]


def discovered(ctx: Ctx) -> list[Row]:
    n = ctx.n(2000, 200)
    inp = ctx.workload("req", n)
    rows = []
    for label, flags in (("3a told nothing", ()), ("3b told --rpm 6000", ("--rpm", "6000"))):
        with Sim("--rpm", "3000", "--latency-ms", "400") as sim:
            run = run_mlift(sim.api, inp, ctx.tmp / "disc.out", *flags)
            rows.append(_limit_row(label, run, sim.stats(), n, n / 50, 1.15, rpm=3000,
                                   tpm=None, max_429=None))
    return rows


def faults(ctx: Ctx) -> list[Row]:
    n = ctx.n(2000, 300)
    hang = ctx.n(90, 20)  # quick: a shorter hang, so the baseline's wait stays short too
    inp = ctx.workload("req", n)
    flags = ("--error-rate", "0.10", "--timeout-rate", "0.01", "--hang-s", str(hang),
             "--drop-rate", "0.01", "--malformed-rate", "0.01", "--latency-ms", "100",
             "--seed", "1")
    rows = []
    for client in ("mlift", "naive"):
        with Sim(*flags) as sim:
            run = (run_mlift(sim.api, inp, ctx.tmp / "faults.out") if client == "mlift"
                   else run_naive(sim.api, inp, ctx.tmp / "faults-naive.out"))
            stats = sim.stats()
        c = run.check
        result = (f"{c.lines}/{n} result lines, in order: {c.in_order}, error records "
                  f"{c.errors}; wall {run.elapsed_s:.1f}s; sim faults {stats['faults']}")
        ok = c.complete(n) and c.errors <= n // 1000 and run.elapsed_s < hang / 2
        rows.append(Row("4 faults", run.client, result,
                        f"one line per input in order, ~0 errors, wall ≪ hang {hang} s", ok))
    return rows
