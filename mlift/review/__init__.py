"""Human review of run folders (``mlift review``): browse, filter, search and label pairs,
and compare two or three folders blind, side by side.

* :mod:`~mlift.review.store` — the labels, preferences and second-judge scores a
  run folder gains, and the one place that reads and appends them;
* :mod:`~mlift.review.pairs` — every item of a folder (kept, below λ, rejected) as one view;
* :mod:`~mlift.review.blind` — the seeded comparison deck and its win rates;
* :mod:`~mlift.review.guard` — what every request must pass (Host, token, Origin);
* :mod:`~mlift.review.app` — the aiohttp server; its page lives in ``static/``.
"""
