"""Cost and wall-time estimates of a run before it is run (``mlift estimate``).

* :mod:`~mlift.estimate.priors` — what is assumed before anything is sent;
* :mod:`~mlift.estimate.dryrun` — the real stages on an engine that books instead of sending;
* :mod:`~mlift.estimate.ledger` — what was booked, tagged with the factors it scales with;
* :mod:`~mlift.estimate.model` — dollars, tokens and time with a propagated 95 % range;
* :mod:`~mlift.estimate.pilot` — ``--pilot N``: measure the assumptions on N real items;
* :mod:`~mlift.estimate.estimator` — ``estimate()``, tying them together;
* :mod:`~mlift.estimate.report` — the human table.
"""

from mlift.estimate.estimator import SCHEMA, estimate, estimate_vs_actual

__all__ = ["SCHEMA", "estimate", "estimate_vs_actual"]
