"""The same workload through bespokelabs-curator, as an optional peer column.

Run with the Python of a separate virtualenv that has ``bespokelabs-curator``
installed (it pins its own dependencies; it is never a dependency of mlift):

    /path/to/curator-venv/bin/python benchmarks/curator_client.py IN.jsonl OUT.jsonl \
        --base-url SIM/v1 [--rpm N] [--tpm N]

Writes one result line per input line, in input order, in the same shape as
``benchmarks.naive`` (``{"line", "metadata", "response"|"error"}``), so the
same output check applies.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("input", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--rpm", type=int)
    parser.add_argument("--tpm", type=int)
    args = parser.parse_args()
    # Offline and quiet: no cost-map download, no telemetry, a throwaway cache.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("CURATOR_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TELEMETRY_ENABLED", "False")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ["CURATOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="curator-bench-")
    from bespokelabs import curator

    rows = [json.loads(line) for line in args.input.read_text().splitlines()]
    for i, row in enumerate(rows):
        row["_i"] = i

    class Ask(curator.LLM):  # type: ignore[misc, name-defined]
        def prompt(self, row: dict[str, Any]) -> list[dict[str, str]]:
            return list(row["messages"])

        def parse(self, row: dict[str, Any], response: str) -> dict[str, Any]:
            return {"_i": row["_i"], "content": response}

    backend: dict[str, Any] = {"base_url": args.base_url, "api_key": "sk-bench"}
    if args.rpm:
        backend["max_requests_per_minute"] = args.rpm
    if args.tpm:
        backend["max_tokens_per_minute"] = args.tpm
    llm = Ask(model_name="gpt-4o-mini", backend="openai", backend_params=backend,
              generation_params={"max_tokens": rows[0].get("max_tokens", 100)})
    start = time.monotonic()
    answers: dict[int, str] = {}
    try:
        result = llm([{"messages": r["messages"], "_i": r["_i"]} for r in rows])
        dataset = getattr(result, "dataset", result)
        for item in dataset:
            answers[int(item["_i"])] = item["content"]
    except Exception as exc:  # curator raises when some rows failed
        print(f"curator: {type(exc).__name__}: {exc}", file=sys.stderr)
    elapsed = time.monotonic() - start
    with args.output.open("w", encoding="utf-8") as out:
        for i, row in enumerate(rows):
            record: dict[str, Any] = {"line": i + 1, "metadata": row.get("metadata")}
            if i in answers:
                record["response"] = {"content": answers[i]}
            else:
                record["error"] = {"type": "missing", "message": "no answer from curator"}
            out.write(json.dumps(record) + "\n")
    print(json.dumps({"elapsed_s": elapsed}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
