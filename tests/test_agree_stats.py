"""Agreement statistics equal values worked out by hand on fixed scores (ties included).

The nine items below (rater a, rater b) are small enough to check on paper;
the working is in the comments next to each expected value.
"""

from __future__ import annotations

import math

import pytest

from mlift.agree.stats import (
    average_ranks,
    confusion,
    exact_agreement,
    kendall_tau_b,
    spearman_rho,
    weighted_kappa,
    wilson_interval,
    within_one,
)

A = [1, 2, 3, 3, 4, 5, 5, 2, 1]
B = [1, 3, 3, 2, 4, 5, 4, 2, 3]


def test_confusion_counts_rows_of_a_and_columns_of_b() -> None:
    assert confusion(A, B) == [
        [1, 0, 1, 0, 0],
        [0, 1, 1, 0, 0],
        [0, 1, 1, 0, 0],
        [0, 0, 0, 1, 0],
        [0, 0, 0, 1, 1],
    ]


def test_exact_and_within_one() -> None:
    # Same score on items 1, 3, 5, 6, 8; only item 9 (1 vs 3) is two apart.
    assert exact_agreement(A, B) == pytest.approx(5 / 9)
    assert within_one(A, B) == pytest.approx(8 / 9)


def test_quadratic_kappa_by_hand() -> None:
    # Observed Σw·O: (1,3) 4/16 + (2,3),(3,2),(5,4) 1/16 each = 7/16.
    # Marginals a = [2,2,2,1,2], b = [1,2,3,2,1]; Σ r_i Σ_j (i-j)² c_j = 279,
    # so expected Σw·E = 279 / (16·9) and κ = 1 - (7/16)/(279/144) = 24/31.
    assert weighted_kappa(A, B) == pytest.approx(24 / 31)


def test_linear_kappa_by_hand() -> None:
    # Observed: 2/4 + 3·(1/4) = 5/4; Σ r_i Σ_j |i-j| c_j = 121 → expected 121/36.
    # κ = 1 - (5/4)/(121/36) = 76/121.
    assert weighted_kappa(A, B, weights="linear") == pytest.approx(76 / 121)


def test_kendall_tau_b_by_hand_with_ties() -> None:
    # 36 pairs: 24 concordant, 3 discordant, 4 tied in a only, 5 tied in b only.
    # τ-b = (24 - 3) / √((36 - 4)(36 - 5)) = 21 / √992.
    assert kendall_tau_b(A, B) == pytest.approx(21 / math.sqrt(992))


def test_average_ranks_share_the_mean_of_tied_ranks() -> None:
    assert average_ranks(A) == [1.5, 3.5, 5.5, 5.5, 7, 8.5, 8.5, 3.5, 1.5]
    assert average_ranks(B) == [1, 5, 5, 2.5, 7.5, 9, 7.5, 2.5, 5]


def test_spearman_by_hand_with_ties() -> None:
    # Ranks above, both with mean 5: Σdx·dy = 44.25, Σdx² = 58, Σdy² = 57.
    assert spearman_rho(A, B) == pytest.approx(44.25 / math.sqrt(58 * 57))


def test_perfect_and_reversed_order() -> None:
    up, down = [1, 2, 3, 4, 5], [5, 4, 3, 2, 1]
    assert weighted_kappa(up, up) == pytest.approx(1.0)
    assert kendall_tau_b(up, up) == pytest.approx(1.0)
    assert kendall_tau_b(up, down) == pytest.approx(-1.0)
    assert spearman_rho(up, down) == pytest.approx(-1.0)
    # Quadratic κ of a full reversal: observed Σw·O = (16+4+0+4+16)/16 = 2.5; uniform
    # marginals give expected Σ_ij (i-j)² / (16·5) = 100/80 = 1.25, so κ = 1 - 2.5/1.25 = -1.
    assert weighted_kappa(up, down) == pytest.approx(-1.0)


def test_undefined_figures_are_none_not_a_number() -> None:
    flat = [4, 4, 4, 4]
    assert kendall_tau_b(flat, [1, 2, 3, 4]) is None
    assert spearman_rho(flat, [1, 2, 3, 4]) is None
    assert weighted_kappa(flat, flat) is None  # chance predicts no disagreement at all
    assert weighted_kappa([], []) is None and exact_agreement([], []) is None
    assert kendall_tau_b([3], [3]) is None


def test_a_constant_rater_against_a_varied_one_has_kappa_zero() -> None:
    # One rater's marginal is a single category, so observed = expected exactly.
    assert weighted_kappa([3, 3, 3, 3], [1, 2, 4, 5]) == pytest.approx(0.0)


def test_wilson_interval_of_seven_in_ten() -> None:
    low, high = wilson_interval(7, 10) or (0, 0)
    assert (low, high) == (pytest.approx(0.3968, abs=1e-4), pytest.approx(0.8922, abs=1e-4))
    assert wilson_interval(0, 0) is None
    low, high = wilson_interval(0, 5) or (1, 1)
    assert low == 0.0 and 0 < high < 0.5


def test_length_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        kendall_tau_b([1, 2], [1])
