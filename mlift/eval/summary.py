"""Scores per group (language or direction) and model, with intervals, and model deltas.

Computed from everything a run folder holds (every invocation's answers), so
a model added later joins the comparison. For each group and model: every
metric's corpus score with its bootstrap interval; for each model after the
first: its paired-bootstrap difference to the first (the baseline) on the
items both answered, with p-value. Items a model has no answer for (provider
failures still to retry) are counted and left out of that model's scores,
never scored as wrong; ``complete`` says whether anything is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mlift.eval.base import Task
from mlift.eval.bootstrap import LEVEL, RESAMPLES, interval, paired_delta
from mlift.eval.runner import item_from_record
from mlift.eval.store import EvalAnswer, EvalFailure

SUMMARY_SCHEMA = "mlift-eval-summary-v1"


def summarize(task: Task, records: Sequence[EvalAnswer], failures: Sequence[EvalFailure],
              models: dict[str, str], *, seed: int = 0,
              resamples: int = RESAMPLES) -> dict[str, Any]:
    """The summary dict written to ``summary.json`` and shown by ``mlift report``.

    ``models`` maps labels to specs, the baseline first.
    """
    answered: dict[tuple[str, str], EvalAnswer] = {}
    for r in records:
        answered[(r.model, r.key)] = r  # a key answered twice: the last answer counts
    groups: dict[str, dict[str, Any]] = {}
    everything: list[EvalAnswer | EvalFailure] = [*records, *failures]
    for seen in everything:
        g = groups.setdefault(seen.direction or seen.lang,
                              {"lang": seen.lang, "direction": seen.direction, "keys": set()})
        g["keys"].add(seen.key)
    labels = list(models)
    baseline = labels[0] if labels else None
    out_groups = []
    for name in sorted(groups):
        g = groups[name]
        keys = sorted(g["keys"])
        per_model: dict[str, Any] = {}
        stats: dict[str, dict[str, Any]] = {}
        for label in labels:
            got = [(k, answered[(label, k)]) for k in keys if (label, k) in answered]
            if not got:
                continue
            items = [item_from_record(r) for _, r in got]
            outputs = [r.output for _, r in got]
            metrics = task.group_metrics(items, outputs)
            stats[label] = {"keys": [k for k, _ in got], "metrics": metrics}
            per_model[label] = {
                "answered": len(got), "missing": len(keys) - len(got),
                "truncated": sum(r.finish_reason == "length" for _, r in got),
                "structured": sum(bool(r.structured) for _, r in got),
                "cost_usd": round(sum(r.cost_usd for _, r in got), 8),
                "metrics": {m.name: interval(m.stats, m.score, seed=seed,
                                             resamples=resamples).to_json() for m in metrics}}
        deltas: dict[str, Any] = {}
        if baseline in stats:
            base = stats[baseline]
            for label in labels[1:]:
                if label in stats:
                    deltas[label] = _deltas(base, stats[label], seed, resamples)
        out_groups.append({"group": name, "lang": g["lang"], "direction": g["direction"],
                           "items": len(keys), "models": per_model, "deltas": deltas})
    complete = all(m["missing"] == 0 for g in out_groups for m in g["models"].values()) and \
        all(label in g["models"] for g in out_groups for label in labels)
    return {"schema": SUMMARY_SCHEMA, "task": task.name, "metrics": list(task.metric_names),
            "models": models, "baseline": baseline, "complete": complete,
            "bootstrap": {"resamples": resamples, "seed": seed, "level": LEVEL,
                          "paired": "same resampled items for both models"},
            "groups": out_groups, "average": _average(out_groups, labels, task.metric_names),
            "signatures": task.signatures()}


def _deltas(base: dict[str, Any], other: dict[str, Any], seed: int,
            resamples: int) -> dict[str, Any]:
    """other − base on the items both answered, per metric."""
    at_base = {k: i for i, k in enumerate(base["keys"])}
    at_other = {k: i for i, k in enumerate(other["keys"])}
    common = sorted(set(at_base) & set(at_other))
    ib, io = [at_base[k] for k in common], [at_other[k] for k in common]
    out = {}
    for mb, mo in zip(base["metrics"], other["metrics"], strict=True):
        d = paired_delta(np.asarray(mo.stats)[io], np.asarray(mb.stats)[ib], mb.score,
                         seed=seed, resamples=resamples)
        out[mb.name] = d.to_json()
    return out


def _average(groups: list[dict[str, Any]], labels: list[str],
             metrics: Sequence[str]) -> dict[str, Any]:
    """Each model's unweighted mean over groups (as papers average over languages)."""
    out: dict[str, Any] = {}
    for label in labels:
        cells = [g["models"][label]["metrics"] for g in groups if label in g["models"]]
        if cells and len(cells) == len(groups):
            out[label] = {m: round(sum(c[m]["value"] for c in cells) / len(cells), 4)
                          for m in metrics}
    return out
