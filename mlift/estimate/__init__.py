"""Cost and wall-time estimates of a run before it is run (``mlift estimate``).

* :mod:`~mlift.estimate.priors` — what is assumed before anything is sent;
* :mod:`~mlift.estimate.plan` — every item's requests, built as the stages build them;
* :mod:`~mlift.estimate.model` — dollars, tokens and time with a propagated 95 % range;
* :mod:`~mlift.estimate.pilot` — ``--pilot N``: measure the assumptions on N real items;
* :mod:`~mlift.estimate.estimator` — ``estimate()``, tying them together;
* :mod:`~mlift.estimate.report` — the human table.
"""

from mlift.estimate.estimator import SCHEMA, estimate, estimate_vs_actual

__all__ = ["SCHEMA", "estimate", "estimate_vs_actual"]
