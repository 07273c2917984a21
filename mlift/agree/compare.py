"""How far to trust the judge: agreement of judges with each other and with people.

A run folder holds up to three kinds of scores of its pairs (1–5):

* the run's own judge, in ``scored.jsonl``;
* other judges (``mlift judge``), in ``judge_scores.jsonl``;
* people (``mlift review``), in ``labels.jsonl`` — each labeller's latest label.

Every two raters with items in common are compared — judge vs judge, judge
vs each labeller and vs all labellers pooled (one observation per label),
and labeller vs labeller (the ceiling a judge can hope for) — over all their
common items, per language and per task. Each figure comes with the number
of items behind it, and any group with fewer than :data:`MIN_ITEMS` is
flagged: a κ or τ from a handful of items says little.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlift.agree import stats
from mlift.records import ScoredPair
from mlift.review import blind, store
from mlift.review.pairs import load_pairs
from mlift.review.store import JudgeScore, Label, Preference
from mlift.runfolder import RunFolder

# Below this many items a figure is shown but flagged: even at 30 items the
# standard error of a κ is still about 0.1–0.15, so a κ of 0.5 could be 0.25
# or 0.75. Ranking judges against each other needs more (Kiln asks for at
# least 160 human-rated items).
MIN_ITEMS = 30
THRESHOLDS = (1, 2, 3, 4, 5)
HUMANS = "humans (all labellers)"

Obs = tuple[str, int, int]  # (pair id, score of a, score of b)


@dataclass(frozen=True, slots=True)
class Figures:
    """Agreement of two raters over ``n`` items."""

    n: int
    kappa: float | None  # quadratic weights
    kappa_linear: float | None
    tau_b: float | None
    spearman: float | None
    exact: float | None
    within_one: float | None
    confusion: list[list[int]]
    yield_a: dict[int, float]  # share of the items each rater scores ≥ λ
    yield_b: dict[int, float]
    same_keep: dict[int, float]  # share where both keep, or both drop, at λ

    @property
    def few(self) -> bool:
        return self.n < MIN_ITEMS

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "few_items": self.few, "kappa_quadratic": self.kappa,
                "kappa_linear": self.kappa_linear, "kendall_tau_b": self.tau_b,
                "spearman": self.spearman, "exact": self.exact, "within_one": self.within_one,
                "confusion": self.confusion,
                "yield_a": {str(k): v for k, v in self.yield_a.items()},
                "yield_b": {str(k): v for k, v in self.yield_b.items()},
                "same_keep": {str(k): v for k, v in self.same_keep.items()}}


def yields(scores: Sequence[int]) -> dict[int, float]:
    """Share of ``scores`` at or above each threshold λ."""
    n = len(scores)
    return {t: sum(s >= t for s in scores) / n for t in THRESHOLDS} if n else {}


def figures(a: Sequence[int], b: Sequence[int]) -> Figures:
    n = len(a)
    same = ({t: sum((x >= t) == (y >= t) for x, y in zip(a, b, strict=True)) / n
             for t in THRESHOLDS} if n else {})
    return Figures(n, stats.weighted_kappa(a, b), stats.weighted_kappa(a, b, weights="linear"),
                   stats.kendall_tau_b(a, b), stats.spearman_rho(a, b),
                   stats.exact_agreement(a, b), stats.within_one(a, b), stats.confusion(a, b),
                   yields(a), yields(b), same)


@dataclass(frozen=True, slots=True)
class Comparison:
    a: str
    b: str
    kind: str  # "judge vs judge", "judge vs human", "human vs human"
    groups: dict[str, Figures]  # "all", "lang hi", "task explain"

    def to_json(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "kind": self.kind,
                "groups": {g: f.to_json() for g, f in self.groups.items()}}


@dataclass(frozen=True, slots=True)
class Rater:
    name: str
    scores: dict[str, list[int]]  # pair id -> scores (several only for the pooled humans)

    @property
    def n(self) -> int:
        return sum(len(v) for v in self.scores.values())

    def flat(self) -> list[int]:
        return [s for v in self.scores.values() for s in v]


@dataclass(slots=True)
class Agreement:
    run: str
    raters: list[Rater] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    win_rates: list[blind.WinRate] = field(default_factory=list)
    meta: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.comparisons and not self.win_rates

    def rater_yields(self) -> dict[str, dict[str, Any]]:
        """Per rater: items, and yield at each λ over all of them and per language."""
        out = {}
        for r in self.raters:
            by_lang: dict[str, list[int]] = {}
            for pid, scores in r.scores.items():
                by_lang.setdefault(self.meta.get(pid, (None, None))[0] or "?", []).extend(scores)
            out[r.name] = {"n": r.n, "yield": yields(r.flat()), "by_lang": {
                lang: {"n": len(s), "yield": yields(s)} for lang, s in sorted(by_lang.items())}}
        return out

    def to_json(self) -> dict[str, Any]:
        return {"run": self.run, "min_items": MIN_ITEMS,
                "raters": {name: {"n": v["n"], "yield": {str(k): x for k, x in v["yield"].items()},
                                  "by_lang": {lang: {"n": d["n"], "yield": {
                                      str(k): x for k, x in d["yield"].items()}}
                                      for lang, d in v["by_lang"].items()}}
                           for name, v in self.rater_yields().items()},
                "comparisons": [c.to_json() for c in self.comparisons],
                "win_rates": [w.to_json() for w in self.win_rates]}


def _is_score(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 5


def _raters(folder: RunFolder) -> tuple[list[Rater], list[Rater]]:
    """(judges, humans) of a run folder; the pooled humans come last among the humans."""
    run_dir = folder.path
    primary: dict[str, dict[str, list[int]]] = {}
    for pair in folder.records(ScoredPair):
        name = f"judge {pair.models.get('judge') or 'of the run'}"
        if _is_score(pair.score):
            primary.setdefault(name, {}).setdefault(pair.id, [pair.score])
    second: dict[tuple[str, str], dict[str, list[int]]] = {}
    for s in store.read(run_dir, JudgeScore):  # the latest verdict per pair wins
        if s.score is not None:
            second.setdefault((s.judge, s.prompt), {})[s.id] = [s.score]
    judges = [Rater(name, scores) for name, scores in primary.items()]
    judge_specs = {spec for spec, _ in second}
    for (spec, prompt), scores in second.items():
        clash = f"judge {spec}" in primary or sum(s == spec for s in judge_specs) > 1
        name = f"judge {spec}" + (f" ({prompt})" if clash else "")
        judges.append(Rater(name, scores))
    latest: dict[tuple[str, str], Label] = {}
    for label in store.read(run_dir, Label):
        latest[(label.labeller, label.id)] = label
    people: dict[str, dict[str, list[int]]] = {}
    pooled: dict[str, list[int]] = {}
    for (who, pid), label in sorted(latest.items()):
        if label.score is not None:
            people.setdefault(f"human {who}", {})[pid] = [label.score]
            pooled.setdefault(pid, []).append(label.score)
    humans = [Rater(name, scores) for name, scores in sorted(people.items())]
    if len(humans) > 1:
        humans.append(Rater(HUMANS, pooled))
    return judges, humans


def _observations(a: Rater, b: Rater) -> list[Obs]:
    """Each common item once per score of the pooled side (a judge has one score per item)."""
    out = []
    for pid in sorted(set(a.scores) & set(b.scores)):
        out += [(pid, x, y) for x in a.scores[pid] for y in b.scores[pid]]
    return out


def _groups(obs: Iterable[Obs], meta: dict[str, tuple[str | None, str | None]]
            ) -> dict[str, Figures]:
    buckets: dict[str, list[Obs]] = {"all": []}
    for o in obs:
        lang, task = meta.get(o[0], (None, None))
        buckets["all"].append(o)
        buckets.setdefault(f"lang {lang or '?'}", []).append(o)
        buckets.setdefault(f"task {task or '?'}", []).append(o)
    order = sorted(buckets, key=lambda g: (g != "all", not g.startswith("lang"), g))
    return {g: figures([o[1] for o in buckets[g]], [o[2] for o in buckets[g]]) for g in order}


def agreement(run_dir: Path) -> Agreement:
    """Every comparison the folder's scores allow, and the blind comparison's win rates."""
    folder = RunFolder.load(run_dir)
    meta = {p.id: (p.lang, p.task) for p in load_pairs(folder)}
    judges, humans = _raters(folder)
    result = Agreement(str(run_dir), judges + humans, meta=meta)
    individuals = [h for h in humans if h.name != HUMANS]
    pairs = ([(a, b, "judge vs judge") for a, b in itertools.combinations(judges, 2)]
             + [(j, h, "judge vs human") for j in judges for h in humans]
             + [(a, b, "human vs human") for a, b in itertools.combinations(individuals, 2)])
    for a, b, kind in pairs:
        obs = _observations(a, b)
        if obs:
            result.comparisons.append(Comparison(a.name, b.name, kind, _groups(obs, meta)))
    result.win_rates = blind.win_rates(store.read(run_dir, Preference))
    return result
