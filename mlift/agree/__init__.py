"""How far to trust the judge (``mlift judge``, ``mlift agree``).

* :mod:`~mlift.agree.stats` — weighted κ, Kendall τ-b, Spearman ρ, exact and ±1
  agreement, the confusion matrix, the Wilson interval: small functions;
* :mod:`~mlift.agree.judge` — a second judge on a seeded sample, through the
  pipeline's own judge stage, estimated before it is sent;
* :mod:`~mlift.agree.compare` — every two raters of a run folder compared,
  overall, per language and per task;
* :mod:`~mlift.agree.render` — the terminal table and the report's HTML section.
"""
