"""Scenarios 5–8: per-request overhead, cache hits, memory, and the full pipeline.

Overhead is measured with the limits off and a 20 ms simulated latency, so
the client's own CPU is what limits throughput; CPU per request excludes the
process's start-up (measured on a one-line input). A py-spy profile of the
mlift run says where that CPU goes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks.clients import ENV, ClientRun, run_mlift, run_naive
from benchmarks.common import Ctx, Row
from benchmarks.procs import MLIFT, Sim, measure
from benchmarks.profile import breakdown, format_breakdown

SAMPLES = ["samples/hi.jsonl", "samples/te.jsonl", "samples/ja.jsonl", "samples/es.jsonl"]


def _startup_cpu(ctx: Ctx, api: str) -> dict[str, float]:
    one = ctx.workload("one", 1)
    return {"mlift": run_mlift(api, one, ctx.tmp / "one.out").measured.cpu_s,
            "naive": run_naive(api, one, ctx.tmp / "one-naive.out").measured.cpu_s}


def _rate(run: ClientRun, n: int, startup_cpu: float) -> tuple[float, float]:
    """(requests/s on the client's own clock, CPU ms per request after start-up)."""
    return n / run.elapsed_s, 1000 * max(0.0, run.measured.cpu_s - startup_cpu) / n


def overhead_and_cache(ctx: Ctx) -> list[Row]:
    n = ctx.n(5000, 500)
    inp = ctx.workload("req", n)
    rows: list[Row] = []
    best: dict[str, float] = {}
    with Sim("--latency-ms", "20") as sim:
        startup = _startup_cpu(ctx, sim.api)
        cache = ctx.tmp / "cache-overhead"
        shutil.rmtree(cache, ignore_errors=True)
        runs: list[tuple[str, ClientRun]] = [
            ("mlift", run_mlift(sim.api, inp, ctx.tmp / "ovh64.out", "--concurrency", "64",
                                cache_dir=cache, label="mlift c=64"))]
        # Fewer lines at 128/256: the per-request figures compare the same way, in less time.
        n_more = ctx.n(3000, 500)
        more = ctx.workload("req", n_more)
        runs.extend(("mlift", run_mlift(sim.api, more, ctx.tmp / f"ovh{c}.out",
                                        "--concurrency", str(c),
                                        cache_dir=ctx.tmp / f"cache-ovh{c}",
                                        label=f"mlift c={c}")) for c in (128, 256))
        # The lean aiohttp transport: same engine, the SDK's per-request work gone.
        runs.extend(("mlift", run_mlift(sim.api, inp if c == 64 else more,
                                        ctx.tmp / f"ovh{c}-http.out", "--concurrency", str(c),
                                        "--transport", "aiohttp",
                                        cache_dir=ctx.tmp / f"cache-ovh{c}-http",
                                        label=f"mlift aiohttp c={c}")) for c in (64, 256))
        runs.append(("naive", run_naive(sim.api, inp, ctx.tmp / "ovh-naive.out",
                                        label="naive c=64")))
        for kind, run in runs:
            rps, cpu_ms = _rate(run, run.check.lines, startup[kind])
            best[kind] = max(best.get(kind, 0.0), rps)
            rows.append(Row("5 overhead", run.client,
                            f"{rps:.0f} req/s, {cpu_ms:.2f} ms CPU/request (start-up "
                            f"{startup[kind]:.1f} s CPU not counted), peak RSS "
                            f"{run.measured.rss_mib:.0f} MiB, errors {run.check.errors}"))
        ratio = best["mlift"] / best["naive"]
        rows.append(Row("5 overhead", "mlift best / naive", f"{ratio:.2f}× req/s",
                        "≥ 2×", ratio >= 2.0))
        rows.append(_profile(ctx, sim.api))
        rows.append(_cache_rerun(ctx, sim, inp, cache, runs[0][1], n))
    return rows


def _profile(ctx: Ctx, api: str) -> Row:
    spy = Path(sys.executable).parent / "py-spy"
    if not spy.exists():
        return Row("5 profile", "mlift c=64", "py-spy not installed: pip install py-spy")
    inp = ctx.workload("req", ctx.n(2000, 300))
    raw = ctx.tmp / "mlift-profile.txt"
    out = ctx.tmp / "profile.out"
    out.unlink(missing_ok=True)
    cmd = [str(spy), "record", "--format", "raw", "-r", "100", "-o", str(raw), "--",
           *MLIFT, "requests", str(inp), "--out", str(out), "--provider", "openai:gpt-4o-mini",
           "--base-url", api, "--no-cache", "-q"]
    subprocess.run(cmd, env={**os.environ, **ENV},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    shares = breakdown(raw)
    ctx.notes["profile"] = shares
    return Row("5 profile", "mlift c=64 (py-spy)", format_breakdown(shares))


def _tokenizer_load_s() -> float:
    """Seconds a fresh process takes to load gpt-4o-mini's tokenizer (median of 3)."""
    code = ("import time; from mlift.tokens import warm_up; t = time.perf_counter(); "
            "warm_up('gpt-4o-mini'); print(time.perf_counter() - t)")
    runs = sorted(float(subprocess.run([sys.executable, "-c", code], env={**os.environ, **ENV},
                                       capture_output=True, text=True, check=True).stdout)
                  for _ in range(3))
    return runs[1]


def _cache_rerun(ctx: Ctx, sim: Sim, inp: Path, cache: Path, first: ClientRun,
                 n: int) -> Row:
    # Medians of three first runs (each with a cache of its own) and three re-runs (each
    # to a new output): on this machine either varies by a fifth from one run to the next.
    firsts = [first]
    for i in range(2):
        fresh = ctx.tmp / f"cache-first{i}"
        shutil.rmtree(fresh, ignore_errors=True)
        firsts.append(run_mlift(sim.api, inp, ctx.tmp / f"ovh64-first{i}.out", "--concurrency",
                                "64", cache_dir=fresh, label="mlift c=64"))
    first = sorted(firsts, key=lambda r: r.elapsed_s)[1]
    sim.reset()
    reruns = sorted((run_mlift(sim.api, inp, ctx.tmp / f"ovh64-again{i}.out", "--concurrency",
                               "64", cache_dir=cache, label="mlift cache re-run")
                     for i in range(3)), key=lambda r: r.elapsed_s)
    run = reruns[1]
    new_requests = sim.stats()["requests"]
    # The first run's clock includes loading the tokenizer (its first request waits for
    # it; a re-run from the cache never loads one). Taken out, the ratio compares the
    # work of the two runs alone, which is what the target is about.
    load = _tokenizer_load_s()
    speed = (first.elapsed_s - load) / run.elapsed_s
    process = first.measured.wall_s / run.measured.wall_s
    hits = min(r.stats["accounting"]["totals"]["cache_hits"] for r in reruns)
    result = (f"{n / run.elapsed_s:.0f} items/s; speedup {speed:.1f}× on the engine's clock "
              f"(median first run {first.elapsed_s:.2f}s of "
              f"{', '.join(f'{r.elapsed_s:.2f}' for r in firsts)}, less its {load:.2f}s "
              f"tokenizer load; "
              f"median re-run {run.elapsed_s:.3f}s of "
              f"{', '.join(f'{r.elapsed_s:.3f}' for r in reruns)}; "
              f"{first.elapsed_s / run.elapsed_s:.1f}× with the load), "
              f"{process:.1f}× process wall ({run.measured.wall_s:.1f}s incl. "
              f"{run.startup_s:.1f}s start-up); cache hits {hits}/{n}; sim saw "
              f"{new_requests} new requests")
    ok = (speed >= 20 and new_requests == 0 and hits == n
          and all(r.check.complete(n) for r in reruns))
    return Row("6 cache", run.client, result, "≥ 20× first run, 0 new requests", ok)


def memory(ctx: Ctx) -> list[Row]:
    small, large = (ctx.n(10000, 300), ctx.n(100000, 3000))
    rss: dict[int, float] = {}
    results = []
    with Sim() as sim:
        for n in (small, large):
            inp = ctx.workload("tiny", n, words=3, max_tokens=5)
            run = run_mlift(sim.api, inp, ctx.tmp / f"mem{n}.out", "--concurrency", "128",
                            "--transport", "aiohttp")
            rss[n] = run.measured.rss_mib
            results.append(f"{n:,} lines: peak RSS {rss[n]:.0f} MiB, {n / run.elapsed_s:.0f} "
                           f"req/s, complete {run.check.complete(n)}")
    ratio = rss[large] / rss[small]
    return [Row("7 memory", "mlift --no-cache", "; ".join(results) + f"; ratio {ratio:.2f}",
                f"RSS({large:,}) / RSS({small:,}) ≤ 1.2", ratio <= 1.2)]


def pipeline(ctx: Ctx) -> list[Row]:
    out = ctx.tmp / "pipeline"
    shutil.rmtree(out, ignore_errors=True)
    with Sim() as sim:
        cmd = [*MLIFT, "run", *SAMPLES, "--out", str(out), "--provider", "openai:gpt-4o-mini",
               "--base-url", sim.api, "--cache-dir", str(ctx.tmp / "cache-pipeline"), "-q"]
        m = measure(cmd, env=ENV)
        sim_requests = sim.stats()["requests"]
    if m.returncode not in (0, 4):
        raise RuntimeError(f"mlift run exited {m.returncode}: {m.stderr[-2000:]}")
    report = json.loads((out / "run.json").read_text())
    funnel, totals = report["funnel"], report["accounting"]["totals"]
    kept = max(1, funnel["kept"])
    result = (f"{funnel['input']} items in {report['elapsed_s']:.1f}s = "
              f"{funnel['input'] / report['elapsed_s']:.1f} items/s (process "
              f"{m.wall_s:.1f}s); funnel {funnel['input']} → kept {funnel['kept']} + below λ "
              f"{funnel['below_threshold']} + rejected {funnel['rejected']}; "
              f"{totals['requests'] / kept:.2f} requests per kept item "
              f"({totals['requests']} engine requests, sim saw {sim_requests}); "
              f"peak RSS {m.rss_mib:.0f} MiB")
    return [Row("8 pipeline", "mlift run (samples)", result, "funnel balanced",
                bool(funnel.get("balanced")))]
