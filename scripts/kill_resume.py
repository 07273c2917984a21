"""kill -9 `mlift run` at random moments, resume, and compare with an uninterrupted run.

Checks the pipeline's reliability contract: after N kills and a final
re-run, the dataset equals an uninterrupted run's (same ids and content,
no duplicates), and the requests that reached the provider are at most the
uninterrupted run's plus those in flight at the kills. The provider is
`mlift sim serve` in another process, posing as OpenAI through --base-url.

With ``--batch`` the killed runs are `mlift run --batch` against the
simulator's batch API (a ``sim`` profile at its URL): the dataset must equal
the uninterrupted online run's, and no batch line may reach the provider
twice (its ``resubmitted`` counter stays 0 and it saw exactly as many lines
as the online run sent requests).

    python scripts/make_corpus.py --per-lang 125 --out /tmp/corpus.jsonl
    python scripts/kill_resume.py /tmp/corpus.jsonl --kills 5
    python scripts/kill_resume.py /tmp/corpus.jsonl --kills 5 --batch --batch-delay-s 3
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

MLIFT = [sys.executable, "-m", "mlift"]


def start_sim(latency_ms: int, batch_delay_s: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([*MLIFT, "sim", "serve", "--port", "0", "--latency-ms",
                             str(latency_ms), "--jitter-ms", str(latency_ms // 2),
                             "--batch-validate-s", "0.2", "--batch-finalize-s", "0.2",
                             "--batch-delay-s", str(batch_delay_s)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:\d+", line)
    if not match:
        proc.kill()
        raise SystemExit(f"simulator did not start: {line!r}")
    return proc, match.group(0)


def stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/stats") as r:
        data: dict[str, Any] = json.load(r)
    return data


def reset(url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(url + "/stats/reset", method="POST")).close()


def run_cmd(corpus: Path, out: Path, cache: Path, url: str, config: Path | None = None,
            batch: bool = False) -> list[str]:
    if config is None:
        return [*MLIFT, "run", str(corpus), "--out", str(out), "--cache-dir", str(cache),
                "--provider", "openai:gpt-4o-mini", "--base-url", url + "/v1", "-q"]
    # Batch lines carry the prompt's route only for the sim kind: a sim profile at the URL.
    return [*MLIFT, "run", str(corpus), "--out", str(out), "--cache-dir", str(cache),
            "--config", str(config), "--provider", "simk:gpt-4o-mini", "-q",
            *(["--batch", "--batch-poll", "0.2"] if batch else [])]


def rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def comparable(row: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in row.items() if k != "usage"}, sort_keys=True,
                      ensure_ascii=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--latency-ms", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", action="store_true",
                        help="kill `mlift run --batch` runs instead of online ones")
    parser.add_argument("--batch-delay-s", type=float, default=3.0,
                        help="seconds the simulator takes to process a batch (default 3)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    env = {**os.environ, "OPENAI_API_KEY": "sk-kill-test"}
    sim, url = start_sim(args.latency_ms, args.batch_delay_s)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            config = None
            if args.batch:
                config = work / "mlift.toml"
                config.write_text(f'[providers.simk]\nkind = "sim"\nbase_url = "{url}"\n')
            start = time.monotonic()
            subprocess.run(run_cmd(args.corpus, work / "full", work / "c1", url, config),
                           env=env, check=True)
            full_s = time.monotonic() - start
            full_requests = stats(url)["requests"]
            expected = sorted(map(comparable, rows(work / "full" / "dataset.jsonl")))
            if args.batch:  # the reference ran online; time a batch run for the kills
                start = time.monotonic()
                subprocess.run(run_cmd(args.corpus, work / "timed", work / "c3", url, config,
                                       batch=True), env=env, check=True)
                full_s = time.monotonic() - start
            reset(url)
            out, cache = work / "killed", work / "c2"
            cmd = run_cmd(args.corpus, out, cache, url, config, batch=args.batch)
            kills: list[float] = []
            for _ in range(args.kills):
                proc = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL)
                delay = rng.uniform(2.0, max(3.0, full_s * 0.6))
                time.sleep(delay)
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills.append(round(delay, 1))
            subprocess.run(cmd, env=env, check=True)
            after = stats(url)
            total = after["requests"]
            got = rows(out / "dataset.jsonl")
            ids = [r["id"] for r in got]
            run = json.loads((out / "run.json").read_text())
            report: dict[str, Any] = {
                "items": run["funnel"]["input"], "kills_after_s": kills,
                "uninterrupted_requests": full_requests, "interrupted_requests": total,
                "extra_requests": total - full_requests,
                "dataset_rows": len(got), "duplicate_ids": len(ids) - len(set(ids)),
                "dataset_equal": sorted(map(comparable, got)) == expected,
                "balanced": run["funnel"]["balanced"],
            }
            if args.batch:
                lines = after["batch"]
                report.update({
                    "interrupted_requests": total + lines["lines_submitted"],
                    "extra_requests": total + lines["lines_submitted"] - full_requests,
                    "batch_lines_submitted": lines["lines_submitted"],
                    "batch_lines_resubmitted": lines["resubmitted"],
                    "batches": lines["batches"], "files_uploaded": lines["files_uploaded"],
                    # what the ledger booked over all invocations (a kill loses what was
                    # booked since the last checkpoint) against an uninterrupted batch run
                    "cost_usd_booked": run["accounting"]["totals"]["cost_usd"],
                    "cost_usd_uninterrupted": json.loads(
                        (work / "timed" / "run.json").read_text())["accounting"]["totals"][
                            "cost_usd"]})
    finally:
        sim.terminate()
        sim.wait()
    print(json.dumps(report, indent=2))
    # The ledger may book twice what a kill caught being handed over, never lose a cost.
    booked_all = report.get("cost_usd_booked", 0.0) >= report.get(
        "cost_usd_uninterrupted", 0.0) * (1 - 1e-9)
    ok = report["dataset_equal"] and not report["duplicate_ids"] and report["balanced"] \
        and not report.get("batch_lines_resubmitted") and booked_all
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
