"""kill -9 `mlift run` at random moments, resume, and compare with an uninterrupted run.

Checks the pipeline's reliability contract: after N kills and a final
re-run, the dataset equals an uninterrupted run's (same ids and content,
no duplicates), and the requests that reached the provider are at most the
uninterrupted run's plus those in flight at the kills. The provider is
`mlift sim serve` in another process, posing as OpenAI through --base-url.

    python scripts/make_corpus.py --per-lang 125 --out /tmp/corpus.jsonl
    python scripts/kill_resume.py /tmp/corpus.jsonl --kills 5
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


def start_sim(latency_ms: int) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([*MLIFT, "sim", "serve", "--port", "0", "--latency-ms",
                             str(latency_ms), "--jitter-ms", str(latency_ms // 2)],
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


def run_cmd(corpus: Path, out: Path, cache: Path, url: str) -> list[str]:
    return [*MLIFT, "run", str(corpus), "--out", str(out), "--cache-dir", str(cache),
            "--provider", "openai:gpt-4o-mini", "--base-url", url + "/v1", "-q"]


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
    args = parser.parse_args()
    rng = random.Random(args.seed)
    env = {**os.environ, "OPENAI_API_KEY": "sk-kill-test"}
    sim, url = start_sim(args.latency_ms)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            start = time.monotonic()
            subprocess.run(run_cmd(args.corpus, work / "full", work / "c1", url), env=env,
                           check=True)
            full_s = time.monotonic() - start
            full_requests = stats(url)["requests"]
            expected = sorted(map(comparable, rows(work / "full" / "dataset.jsonl")))
            reset(url)
            out, cache = work / "killed", work / "c2"
            kills: list[float] = []
            for _ in range(args.kills):
                proc = subprocess.Popen(run_cmd(args.corpus, out, cache, url), env=env,
                                        stderr=subprocess.DEVNULL)
                delay = rng.uniform(2.0, max(3.0, full_s * 0.6))
                time.sleep(delay)
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills.append(round(delay, 1))
            subprocess.run(run_cmd(args.corpus, out, cache, url), env=env, check=True)
            total = stats(url)["requests"]
            got = rows(out / "dataset.jsonl")
            ids = [r["id"] for r in got]
            run = json.loads((out / "run.json").read_text())
            report = {
                "items": run["funnel"]["input"], "kills_after_s": kills,
                "uninterrupted_requests": full_requests, "interrupted_requests": total,
                "extra_requests": total - full_requests,
                "dataset_rows": len(got), "duplicate_ids": len(ids) - len(set(ids)),
                "dataset_equal": sorted(map(comparable, got)) == expected,
                "balanced": run["funnel"]["balanced"],
            }
    finally:
        sim.terminate()
        sim.wait()
    print(json.dumps(report, indent=2))
    ok = report["dataset_equal"] and not report["duplicate_ids"] and report["balanced"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
