"""Workload files: OpenAI Chat Completions bodies of about 200 prompt tokens each.

The text is natural-ish English assembled from a seeded vocabulary, so every
line differs (nothing is cached by accident) while the token count per line
stays close to the target.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

_SUBJECTS = ["The river", "A farmer", "The old library", "Our neighbour", "The city council",
             "A young teacher", "The night train", "Every spring the village", "The museum",
             "A local baker", "The research team", "My grandmother", "The harbour",
             "A small bookshop", "The mountain road", "The football club", "A retired sailor"]
_VERBS = ["carried", "remembered", "described", "repaired", "painted", "celebrated",
          "questioned", "measured", "collected", "explained", "welcomed", "protected",
          "crossed", "planted", "recorded", "shared", "discovered", "organised"]
_OBJECTS = ["the wooden bridge", "a basket of ripe mangoes", "the history of the valley",
            "a broken clock", "the festival lanterns", "letters from distant cousins",
            "the rising water", "an unusual bird", "the morning market", "a map of the coast",
            "the first harvest", "stories about the monsoon", "a quiet garden",
            "the evening news", "a recipe for lentil soup", "the school choir"]
_TAILS = ["before the rain arrived", "while the children watched", "with great patience",
          "after a long winter", "for the third time that year", "as the sun went down",
          "despite the cold wind", "in front of the whole street", "without saying a word",
          "because nobody else would", "during the long holiday", "near the old station"]
_ASKS = ["Summarise the passage in two sentences.", "What is the main idea of this text?",
         "Write a short question that this passage answers.",
         "Explain the passage to a ten-year-old.", "List three facts from the passage."]


def _sentence(rng: random.Random) -> str:
    return (f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} "
            f"{rng.choice(_TAILS)}.")


def prompt_text(index: int, words: int = 155, seed: int = 0) -> str:
    """A distinct passage of about ``words`` words (≈ 200 tokens for 155 words)."""
    rng = random.Random(seed * 1_000_003 + index)
    parts = [f"Passage {index}:"]
    count = 0
    while count < words:
        s = _sentence(rng)
        parts.append(s)
        count += len(s.split())
    parts.append(rng.choice(_ASKS))
    return " ".join(parts)


def write_requests(path: Path, n: int, *, max_tokens: int = 100, words: int = 155,
                   seed: int = 0) -> Path:
    """Write ``n`` request bodies (one JSON object per line) to ``path``."""
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            body = {"messages": [{"role": "user", "content": prompt_text(i, words, seed)}],
                    "max_tokens": max_tokens, "metadata": {"i": i}}
            fh.write(json.dumps(body) + "\n")
    return path
