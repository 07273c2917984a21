"""``python -m benchmarks.run [--quick] [--only NAME[,NAME]]``: every scenario, one table.

Each scenario starts its own simulator process (``mlift sim serve``), runs the
clients as measured subprocesses, prints its rows as it goes, and at the end
one markdown table of results against targets, with date, machine and the
exact commands. A full run writes that table to ``benchmarks/RESULTS.md``;
``--quick`` (small N, for smoke testing) never does.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import accounting, limits, peers, sim_limits, speed
from benchmarks.clients import ENV
from benchmarks.common import Ctx, Row

SCENARIOS: dict[str, Callable[[Ctx], list[Row]]] = {
    "simlimits": lambda ctx: sim_limits.check(ctx.quick),
    "rpm": limits.rpm_bound,
    "tpm": limits.tpm_bound,
    "discovered": limits.discovered,
    "faults": limits.faults,
    "chars": accounting.chars,               # servers that count differently (issue 10)
    "counted": accounting.counted,
    "nothing": accounting.told_nothing,
    "anthropic": accounting.anthropic,
    "wrongurl": accounting.wrong_url,
    "overhead": speed.overhead_and_cache,   # also scenario 6 (cache re-run, same simulator)
    "memory": speed.memory,
    "pipeline": speed.pipeline,
    "peers": peers.curator,                 # optional: only with --curator PYTHON
}

RESULTS = Path(__file__).with_name("RESULTS.md")

COMMANDS = """\
simulator (one fresh process per scenario):
  mlift sim serve --host 127.0.0.1 --port 0 [--rpm N] [--tpm N] [--latency-ms MS] [fault rates]
      [--charge chars] [--count-refused] [--itpm N --otpm N] (scenarios 9-12)
mlift:
  OPENAI_API_KEY=sk-bench mlift requests IN.jsonl --out OUT.jsonl \\
      --provider openai:gpt-4o-mini --base-url SIM/v1 [--rpm N] [--tpm N] [--concurrency C] \\
      (--cache-dir DIR | --no-cache) --stats-json FILE -q
  mlift run samples/{hi,te,ja,es}.jsonl --out DIR --provider openai:gpt-4o-mini \\
      --base-url SIM/v1 --cache-dir DIR -q
  scenario 12 uses --provider anthropic:claude-3-5-haiku-latest --base-url SIM (no /v1)
naive baseline (AsyncOpenAI, SDK retries on, Semaphore + gather; --anthropic: AsyncAnthropic):
  python -m benchmarks.naive IN.jsonl OUT.jsonl --base-url SIM/v1 --concurrency 64
profile:
  py-spy record --format raw -r 100 -o FILE -- python -m mlift requests ... --no-cache
"""


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}; load average at the end {load}")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def table(rows: list[Row]) -> str:
    lines = ["| scenario | client | result | target | verdict |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        verdict = "—" if r.ok is None else ("**pass**" if r.ok else "**MISS**")
        lines.append(f"| {r.scenario} | {_cell(r.client)} | {_cell(r.result)} | "
                     f"{_cell(r.target)} | {verdict} |")
    return "\n".join(lines)


def report(rows: list[Row], quick: bool, wall_s: float, extra: str = "") -> str:
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    mode = "quick (small N, smoke test)" if quick else "full"
    return (f"# mlift engine benchmarks\n\n{when}; {mode} run, {wall_s / 60:.1f} min.\n"
            f"Machine: {machine()}.\n\n{table(rows)}\n\n{extra}"
            f"Commands:\n\n```\n{COMMANDS}```\n")


ANALYSIS = "## Analysis"


def kept_analysis(path: Path) -> str:
    """The hand-written ``## Analysis`` section of the previous RESULTS.md, kept across runs."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    at = old.find("\n" + ANALYSIS)
    return "" if at < 0 else old[at:]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small N (~2 min); never writes "
                   "RESULTS.md")
    p.add_argument("--only", help=f"comma-separated scenarios: {', '.join(SCENARIOS)}")
    p.add_argument("--results", type=Path, default=RESULTS, help="where a full run writes")
    p.add_argument("--curator", metavar="PYTHON",
                   help="a virtualenv's python with bespokelabs-curator, for the peer column")
    args = p.parse_args(argv)
    names = args.only.split(",") if args.only else list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        p.error(f"unknown scenario {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    os.environ.update({k: v for k, v in ENV.items() if k == "TIKTOKEN_CACHE_DIR"})
    # A TERM (kill PID) unwinds like Ctrl-C, so every simulator process is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    start = time.perf_counter()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="mlift-bench-") as tmp:
        ctx = Ctx(Path(tmp), args.quick)
        ctx.notes["curator_python"] = args.curator
        for name in names:
            t0 = time.perf_counter()
            print(f"== {name} ...", file=sys.stderr, flush=True)
            got = SCENARIOS[name](ctx)
            for r in got:
                print(f"   {r.scenario} | {r.client} | {r.result} | "
                      f"{'' if r.ok is None else ('pass' if r.ok else 'MISS')}", flush=True)
            print(f"   ({time.perf_counter() - t0:.0f}s)", file=sys.stderr, flush=True)
            rows.extend(got)
    text = report(rows, args.quick, time.perf_counter() - start)
    print("\n" + text)
    if not args.quick and not args.only:
        args.results.write_text(text + kept_analysis(args.results), encoding="utf-8")
        print(f"written to {args.results}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
