"""Selection (step 0) on one core against every core, in one run: records per second.

    python -m benchmarks.selection [--records 20000] [--rounds 3]

Reads a synthetic Hindi corpus (recombined sample sentences, written to a
temp file) with the pipeline's reader and selects it with the default
config (normalisation, bands, script check, exact and MinHash dedup,
py3langid), through ``select_stream`` with one process, then with the pool,
alternating rounds so machine noise hits both alike. Reports the median
rate of each and their ratio; the target is pool ≥ 1.7 × one core on 2 cores.

A third measurement says what the machine itself allows: as many independent
one-core selections as there are cores, run at the same time, each in its own
process with nothing shared — their summed rate over one core's is the
ceiling any pool could reach here (a VM's "2 cores" may deliver less than 2×).
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

from mlift.pipeline.parallel import INLINE_FIRST, machine_workers, select_stream
from mlift.pipeline.select import SelectConfig, Selector, default_identifier
from mlift.pipeline.sources import read_records

ROOT = Path(__file__).resolve().parent.parent


def make_corpus(path: Path, n: int, lang: str = "hi") -> None:
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_corpus.py"), "--per-lang",
                    str(n), "--langs", lang, "--out", str(path)], check=True)


def rate(path: Path, workers: int) -> float:
    selector = Selector(SelectConfig())
    start = time.perf_counter()
    # The pool as the pipeline runs it: the first INLINE_FIRST records here while
    # the workers start, then the workers.
    n = sum(1 for _ in select_stream(read_records(path), selector, workers=workers,
                                     inline_first=INLINE_FIRST if workers > 1 else 10**12))
    return n / (time.perf_counter() - start)


def ceiling(path: Path, n: int) -> float:
    """The summed rate of ``n`` independent one-core selections running at once."""
    code = ("import sys, time; from pathlib import Path; import benchmarks.selection as b; "
            "b.default_identifier(); print(b.rate(Path(sys.argv[1]), 1), flush=True)")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True) for _ in range(n)]
    return sum(float(p.communicate()[0]) for p in procs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    default_identifier()  # load the model once, outside the timings
    workers = machine_workers()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "hi.jsonl"
        make_corpus(corpus, args.records)
        runs: dict[str, list[float]] = {"one": [], "pool": [], "ceiling": []}
        order = list(runs)
        for i in range(args.rounds):
            random.Random(i).shuffle(order)
            for kind in order:
                runs[kind].append(ceiling(corpus, workers) if kind == "ceiling"
                                  else rate(corpus, 1 if kind == "one" else workers))
    one, pool, top = (statistics.median(runs[k]) for k in ("one", "pool", "ceiling"))
    result = {"records": args.records, "cores": workers,
              "one_core_per_s": round(one, 1), "pool_per_s": round(pool, 1),
              "ratio": round(pool / one, 2),
              "ceiling_per_s": round(top, 1), "ceiling_ratio": round(top / one, 2),
              "pool_of_ceiling": round(pool / top, 2),
              "rounds": {k: [round(x, 1) for x in v] for k, v in runs.items()}}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
