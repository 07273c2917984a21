"""MinHash signatures and LSH band keys for near-duplicate detection (see ``select``'s docstring).

``MinHasher.keys`` is pure (seeded permutations, no state), so band keys can be
computed in any process; ``NearDupIndex`` is the stateful part, kept where the
records are decided in input order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import numpy as np


@lru_cache(maxsize=8)
def _lsh_shape(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) minimising the false-positive plus false-negative area at ``threshold``."""
    s = np.linspace(0.0, 1.0, 1001)
    below = s < threshold
    best = (float("inf"), 1, 1)
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            p = 1.0 - (1.0 - s**rows) ** bands  # chance that some band matches at Jaccard s
            # Riemann sums of the false-positive area below and false-negative area above.
            err = float(np.where(below, p, 1.0 - p).sum()) / (len(s) - 1)
            if err < best[0]:
                best = (err, bands, rows)
    return best[1], best[2]


_ROLL = np.uint64(0x9E3779B97F4A7C15)  # odd multiplier of the rolling shingle hash


def _mix64(x: np.ndarray[Any, np.dtype[np.uint64]]) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """MurmurHash3's 64-bit finaliser, so every bit of a shingle hash depends on every input bit.

    Array arithmetic wraps modulo 2**64 silently, which is what hashing wants.
    """
    x = x ^ (x >> np.uint64(33))
    x = x * np.uint64(0xFF51AFD7ED558CCD)
    x = x ^ (x >> np.uint64(33))
    x = x * np.uint64(0xC4CEB9FE1A85EC53)
    return x ^ (x >> np.uint64(33))


def _shingle_hashes(text: str, width: int) -> np.ndarray[Any, np.dtype[np.uint32]]:
    """The distinct 32-bit hashes of the text's ``width``-character shingles, vectorised."""
    folded = " ".join(text.casefold().split())
    points = np.frombuffer(folded.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    count = max(1, len(points) - width + 1)
    rolled = np.zeros(count, dtype=np.uint64)
    for j in range(min(width, len(points))):  # polynomial hash of each window, mod 2**64
        rolled = rolled * _ROLL + points[j:j + count]
    return np.unique(_mix64(rolled) >> np.uint64(32)).astype(np.uint32)


class MinHasher:
    """MinHash signatures reduced to LSH band keys; nothing is stored, signatures least of all.

    Permutation i is the multiply-shift hash ``a_i * x + b_i mod 2**32`` (odd
    ``a_i``) of the well-mixed shingle hash ``x``. Over the sample texts its
    Jaccard estimates were unbiased (mean error -0.003, sd 0.033 at 128
    permutations, the binomial limit). Plain affine hashes of unmixed 32-bit
    CRCs were not: they inflated a 0.61 Jaccard to 0.84.
    """

    def __init__(self, threshold: float, num_perm: int, seed: int) -> None:
        self.bands, self.rows = _lsh_shape(threshold, num_perm)
        rng = np.random.default_rng(seed)
        top = np.iinfo(np.uint32).max
        self._a = rng.integers(0, top, size=(num_perm, 1), dtype=np.uint32, endpoint=True)
        self._a |= np.uint32(1)
        self._b = rng.integers(0, top, size=(num_perm, 1), dtype=np.uint32, endpoint=True)

    def keys(self, text: str, width: int) -> list[int]:
        signature = (_shingle_hashes(text, width) * self._a + self._b).min(axis=1)
        r = self.rows
        return [int.from_bytes(hashlib.blake2b(signature[i * r:(i + 1) * r].tobytes(),
                                               digest_size=8, salt=i.to_bytes(2)).digest())
                for i in range(self.bands)]



class NearDupIndex:
    """LSH band buckets of the records kept so far: band key -> the first record's id."""

    def __init__(self) -> None:
        self._buckets: dict[int, str] = {}

    def find(self, keys: Iterable[int]) -> str | None:
        return next((self._buckets[k] for k in keys if k in self._buckets), None)

    def add(self, keys: Iterable[int], record_id: str) -> None:
        for k in keys:
            self._buckets.setdefault(k, record_id)

    def __len__(self) -> int:
        return len(self._buckets)
