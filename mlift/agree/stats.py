"""Agreement between two raters on the 1–5 score scale, as small, checkable functions.

Each function takes two equally long sequences of scores, ``a[i]`` and
``b[i]`` being two raters' scores of the same item, and returns ``None``
where the figure is undefined (no items, or a rater who gave one score to
everything, which leaves a correlation with no variance to explain).

* :func:`weighted_kappa` — Cohen's κ with quadratic (default) or linear
  disagreement weights over the fixed categories 1..5: chance-corrected
  agreement that counts a 4-vs-5 as a smaller miss than a 1-vs-5.
* :func:`kendall_tau_b` — Kendall's τ-b, which corrects for ties (scores on a
  five-point scale are mostly ties); computed from the contingency table, so
  it costs the same for ten items as for a million.
* :func:`spearman_rho` — Pearson's r of the average ranks (ties share the
  mean of the ranks they span).
* :func:`exact_agreement`, :func:`within_one` — shares of items scored the
  same, and at most one point apart.
* :func:`confusion` — the 5×5 count matrix, rows ``a``, columns ``b``.
* :func:`wilson_interval` — a 95 % interval of a proportion that stays
  inside [0, 1] and is sensible for small counts (blind-comparison win rates).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

SCALE = (1, 2, 3, 4, 5)
Z95 = 1.959964


def _check(a: Sequence[int], b: Sequence[int]) -> None:
    if len(a) != len(b):
        raise ValueError(f"rater sequences differ in length: {len(a)} vs {len(b)}")


def confusion(a: Sequence[int], b: Sequence[int],
              scale: Sequence[int] = SCALE) -> list[list[int]]:
    """``m[i][j]`` = items ``a`` scored ``scale[i]`` and ``b`` scored ``scale[j]``."""
    _check(a, b)
    index = {v: i for i, v in enumerate(scale)}
    m = [[0] * len(scale) for _ in scale]
    for x, y in zip(a, b, strict=True):
        m[index[x]][index[y]] += 1
    return m


def exact_agreement(a: Sequence[int], b: Sequence[int]) -> float | None:
    _check(a, b)
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a) if a else None


def within_one(a: Sequence[int], b: Sequence[int]) -> float | None:
    _check(a, b)
    return sum(abs(x - y) <= 1 for x, y in zip(a, b, strict=True)) / len(a) if a else None


def weighted_kappa(a: Sequence[int], b: Sequence[int], *, weights: str = "quadratic",
                   scale: Sequence[int] = SCALE) -> float | None:
    """Cohen's weighted κ = 1 − Σ w·observed / Σ w·expected (expected from the marginals).

    ``w[i][j]`` is ``((i − j) / (k − 1))²`` (quadratic) or ``|i − j| / (k − 1)``
    (linear). Undefined when chance alone predicts no disagreement at all
    (both raters gave every item the same single score).
    """
    if weights not in ("quadratic", "linear"):
        raise ValueError(f"weights must be 'quadratic' or 'linear', got {weights!r}")
    m = confusion(a, b, scale)
    n, k = len(a), len(scale)
    if n == 0:
        return None
    power = 2 if weights == "quadratic" else 1
    rows = [sum(r) for r in m]
    cols = [sum(m[i][j] for i in range(k)) for j in range(k)]
    observed = expected = 0.0
    for i in range(k):
        for j in range(k):
            w = (abs(i - j) / (k - 1)) ** power
            observed += w * m[i][j]
            expected += w * rows[i] * cols[j] / n
    if expected == 0:
        return None
    return 1.0 - observed / expected


def kendall_tau_b(a: Sequence[int], b: Sequence[int]) -> float | None:
    """τ-b = (concordant − discordant) / √((n₀ − tiesₐ)(n₀ − ties_b)), n₀ = n(n − 1)/2.

    A pair of items is concordant when both raters order them the same way,
    discordant when oppositely; pairs tied in either rater are neither, and
    the denominator leaves out each rater's tied pairs.
    """
    _check(a, b)
    n = len(a)
    if n < 2:
        return None
    cells = sorted(Counter(zip(a, b, strict=True)).items())
    concordant = discordant = 0
    for (x1, y1), c1 in cells:
        for (x2, y2), c2 in cells:
            if x2 > x1:
                if y2 > y1:
                    concordant += c1 * c2
                elif y2 < y1:
                    discordant += c1 * c2
    n0 = n * (n - 1) // 2
    ties_a = sum(t * (t - 1) // 2 for t in Counter(a).values())
    ties_b = sum(t * (t - 1) // 2 for t in Counter(b).values())
    denominator = math.sqrt((n0 - ties_a) * (n0 - ties_b))
    if denominator == 0:
        return None
    return (concordant - discordant) / denominator


def average_ranks(values: Sequence[int]) -> list[float]:
    """1-based ranks; tied values share the mean of the ranks they occupy."""
    counts = Counter(values)
    rank_of: dict[int, float] = {}
    below = 0
    for v in sorted(counts):
        rank_of[v] = below + (counts[v] + 1) / 2
        below += counts[v]
    return [rank_of[v] for v in values]


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    if len(x) != len(y):
        raise ValueError(f"sequences differ in length: {len(x)} vs {len(y)}")
    n = len(x)
    if n < 2:
        return None
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((p - mx) * (q - my) for p, q in zip(x, y, strict=True))
    sxx = sum((p - mx) ** 2 for p in x)
    syy = sum((q - my) ** 2 for q in y)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)


def spearman_rho(a: Sequence[int], b: Sequence[int]) -> float | None:
    _check(a, b)
    return pearson(average_ranks(a), average_ranks(b))


def wilson_interval(successes: float, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of ``successes / n`` (95 % by default); None when n is 0."""
    if n <= 0:
        return None
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)
