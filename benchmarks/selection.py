"""Selection (step 0) on one core against every core, in one run: records per second.

    python -m benchmarks.selection [--records 4000] [--rounds 3]

Reads a synthetic Hindi corpus (recombined sample sentences, written to a
temp file) with the pipeline's reader and selects it with the default
config (normalisation, bands, script check, exact and MinHash dedup,
py3langid), through ``select_stream`` with one process, then with the pool,
alternating rounds so machine noise hits both alike. Reports the median
rate of each and their ratio; the target is pool ≥ 1.7 × one core on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlift.pipeline.parallel import machine_workers, select_stream
from mlift.pipeline.select import SelectConfig, Selector, default_identifier
from mlift.pipeline.sources import read_records

ROOT = Path(__file__).resolve().parent.parent


def make_corpus(path: Path, n: int, lang: str = "hi") -> None:
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_corpus.py"), "--per-lang",
                    str(n), "--langs", lang, "--out", str(path)], check=True)


def rate(path: Path, workers: int) -> float:
    selector = Selector(SelectConfig())
    start = time.perf_counter()
    n = sum(1 for _ in select_stream(read_records(path), selector, workers=workers,
                                     inline_first=0 if workers > 1 else 10**12))
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    default_identifier()  # load the model once, outside the timings
    workers = machine_workers()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "hi.jsonl"
        make_corpus(corpus, args.records)
        one, pool = [], []
        order = [1, workers]
        for i in range(args.rounds):
            random.Random(i).shuffle(order)
            for w in order:
                (one if w == 1 else pool).append(rate(corpus, w))
    result = {"records": args.records, "cores": workers,
              "one_core_per_s": round(statistics.median(one), 1),
              "pool_per_s": round(statistics.median(pool), 1),
              "ratio": round(statistics.median(pool) / statistics.median(one), 2),
              "rounds": {"one": [round(x, 1) for x in one], "pool": [round(x, 1) for x in pool]}}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
