"""Make a larger synthetic corpus from the bundled samples, for resume and estimate checks.

Each item joins a few sentences drawn (seeded) from different sample
paragraphs of one language, so items are distinct and not near-duplicates,
yet natural text in that language. Usage:

    python scripts/make_corpus.py --per-lang 125 --out /tmp/corpus.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
# Sentence ends: Latin, Devanagari danda, Japanese full stop; keep the mark.
_SENTENCE = re.compile(r"[^.!?。！？।]+[.!?。！？।]+")


def sentences(lang: str) -> list[str]:
    out: list[str] = []
    for line in (SAMPLES / f"{lang}.jsonl").read_text(encoding="utf-8").splitlines():
        text = json.loads(line)["text"]
        out.extend(s.strip() for s in _SENTENCE.findall(text) if len(s.strip()) > 15)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-lang", type=int, default=125)
    parser.add_argument("--langs", default="hi,te,ja,es")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with args.out.open("w", encoding="utf-8") as fh:
        for lang in args.langs.split(","):
            pool = sentences(lang)
            joiner = "" if lang in ("ja", "zh") else " "
            for i in range(args.per_lang):
                picked = rng.sample(pool, rng.randint(4, 7))
                record = {"id": f"{lang}-syn-{i:05d}", "lang": lang, "text": joiner.join(picked),
                          "license": "CC0-1.0", "source": "mlift-samples (recombined)"}
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
