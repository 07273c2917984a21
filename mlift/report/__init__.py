"""Dataset statistics, comparison table and HTML report of run folders (``mlift report``).

``load_folder(dir)`` reads a run folder (``mlift run`` or a baseline),
``dataset_stats(folder)`` computes its statistics, ``render_text(stats)``
lays several side by side for a terminal and ``render_html(stats)`` makes a
self-contained page with plots (needs matplotlib: ``pip install 'mlift[report]'``).
"""

from __future__ import annotations

from mlift.report.html import render_html
from mlift.report.load import FolderView, load_folder
from mlift.report.stats import TOKEN_MODEL, DatasetStats, dataset_stats
from mlift.report.table import render_text, summary_rows

__all__ = ["TOKEN_MODEL", "DatasetStats", "FolderView", "dataset_stats",
           "load_folder", "render_html", "render_text", "summary_rows"]
