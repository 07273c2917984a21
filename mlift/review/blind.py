"""Blind side-by-side comparison of two or three run folders, and the win rates it yields.

The deck pairs kept rows of the same language from two folders at a time
(with three folders, every two of them), in an order and with left/right
sides drawn from the seed, so a restarted server shows the same deck and a
labeller's finished comparisons are skipped. What the page gets of an item is
only its texts: no folder, id, task, score or source, nothing that says which
side is which. A choice is stored with what was shown and which run won.

Win rates are per language and per two runs: the share of non-tied
comparisons that run A won, with a 95 % Wilson interval, and the ties
counted beside it. A labeller's later choice on an item replaces their
earlier one.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlift.agree.stats import wilson_interval
from mlift.review.pairs import Pair
from mlift.review.store import Preference

DEFAULT_PER_LANG = 50


@dataclass(frozen=True, slots=True)
class Item:
    """One comparison: ``sides`` as shown, left to right, each ``(run name, pair)``."""

    key: str
    lang: str
    sides: tuple[tuple[str, Pair], ...]

    def public(self) -> dict[str, Any]:
        """What the page may see: the texts, in display order, and nothing else."""
        return {"key": self.key, "lang": self.lang, "sides": [
            {"instruction": p.instruction, "response": p.response} for _, p in self.sides]}


def _rank(seed: int, *parts: str) -> str:
    return hashlib.sha256("\x1f".join([str(seed), *parts]).encode()).hexdigest()


def comparable(pairs: Sequence[Pair]) -> dict[str, list[Pair]]:
    """Kept pairs with both texts, by language."""
    out: dict[str, list[Pair]] = {}
    for p in pairs:
        if p.status == "kept" and p.lang and p.instruction and p.response:
            out.setdefault(p.lang, []).append(p)
    return out


def build_deck(runs: Mapping[str, Sequence[Pair]], *, seed: int = 0,
               per_lang: int = DEFAULT_PER_LANG) -> list[Item]:
    """Up to ``per_lang`` comparisons per language and pair of runs, shuffled by ``seed``."""
    by_run = {name: comparable(pairs) for name, pairs in runs.items()}
    deck: list[Item] = []
    for a, b in itertools.combinations(sorted(by_run), 2):
        for lang in sorted(set(by_run[a]) & set(by_run[b])):
            left = sorted(by_run[a][lang], key=lambda p: _rank(seed, a, p.id))
            right = sorted(by_run[b][lang], key=lambda p: _rank(seed, b, p.id))
            for pa, pb in list(zip(left, right, strict=False))[:per_lang]:
                key = _rank(seed, lang, a, pa.id, b, pb.id)[:20]
                sides = ((a, pa), (b, pb))
                if int(key[-1], 16) % 2:  # left or right, a coin the key decides
                    sides = sides[::-1]
                deck.append(Item(key, lang, sides))
    random.Random(seed).shuffle(deck)
    return deck


def latest(preferences: Sequence[Preference]) -> dict[tuple[str, str], Preference]:
    """Each labeller's last choice per item."""
    out: dict[tuple[str, str], Preference] = {}
    for p in preferences:
        out[(p.item, p.labeller)] = p
    return out


@dataclass(frozen=True, slots=True)
class WinRate:
    lang: str
    a: str
    b: str
    a_wins: int
    b_wins: int
    ties: int

    @property
    def n(self) -> int:
        return self.a_wins + self.b_wins + self.ties

    @property
    def rate(self) -> float | None:
        """A's share of the comparisons that were not ties."""
        decided = self.a_wins + self.b_wins
        return self.a_wins / decided if decided else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson_interval(self.a_wins, self.a_wins + self.b_wins)

    def to_json(self) -> dict[str, Any]:
        return {"lang": self.lang, "a": self.a, "b": self.b, "a_wins": self.a_wins,
                "b_wins": self.b_wins, "ties": self.ties, "n": self.n, "a_rate": self.rate,
                "a_rate_95": list(self.interval) if self.interval else None}


def win_rates(preferences: Sequence[Preference]) -> list[WinRate]:
    """Per language and pair of runs (names in sorted order), from the latest choices."""
    counts: dict[tuple[str, str, str], list[int]] = {}
    for p in latest(preferences).values():
        a, b = sorted(p.runs)[:2]
        cell = counts.setdefault((p.lang, a, b), [0, 0, 0])
        cell[0 if p.winner == a else 1 if p.winner == b else 2] += 1
    return [WinRate(lang, a, b, *c) for (lang, a, b), c in sorted(counts.items())]


def format_win_rates(rates: Sequence[WinRate]) -> list[str]:
    """One line per language and pair of runs."""
    lines = []
    for r in rates:
        ci = r.interval
        rate = (f"{r.rate:.0%} [{ci[0]:.0%}–{ci[1]:.0%}]" if r.rate is not None and ci
                else "-")
        lines.append(f"  {r.lang}: {r.a} vs {r.b}: {r.a} preferred in {rate} of "
                     f"{r.a_wins + r.b_wins} decided ({r.a_wins}–{r.b_wins}, {r.ties} ties)")
    return lines
