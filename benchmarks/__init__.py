"""Benchmarks of the mlift engine against the simulator in a separate process.

Run by hand (``make bench`` or ``python -m benchmarks.run [--quick]``), never by
pytest; the latest full run's figures are kept in ``benchmarks/RESULTS.md``.
"""
