"""The report's plots, drawn with matplotlib into PNG bytes.

matplotlib is an optional dependency (``pip install 'mlift[report]'``); the
terminal report does not need it. Figures are built with the object API
(``matplotlib.figure.Figure``), which renders through Agg without touching
pyplot's global state or any display, so this works on a headless server and
from threads. Each function returns None when no dataset has data to plot
(a baseline folder has no scores).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlift.errors import ConfigError
from mlift.report.stats import THRESHOLDS, DatasetStats

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["length_plot", "require_matplotlib", "score_plot", "task_plot", "yield_plot"]

INSTALL_HINT = "pip install 'mlift[report]'"
_WIDTH = 7.5


def require_matplotlib() -> None:
    """Raise :class:`ConfigError` naming the install command if matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError(f"the HTML report draws its plots with matplotlib, which is not "
                          f"installed: {INSTALL_HINT}") from None


def _figure(height: float) -> Figure:
    require_matplotlib()
    from matplotlib.figure import Figure

    fig = Figure(figsize=(_WIDTH, height), dpi=100, layout="constrained")
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # A dataset name in a script the default font lacks draws as boxes; say nothing.
        warnings.filterwarnings("ignore", message="Glyph .* missing")
        fig.savefig(buf, format="png")
    return buf.getvalue()


def _bars(ax: Any, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]],
          ) -> None:
    """Grouped vertical bars: one group per label, one bar per series."""
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series):
        xs = [x + (i - (len(series) - 1) / 2) * width for x in range(len(labels))]
        ax.bar(xs, values, width=width, label=name)
    ax.set_xticks(range(len(labels)), labels)
    if len(series) > 1:
        ax.legend(fontsize="small")


def score_plot(stats: Sequence[DatasetStats]) -> bytes | None:
    """Judge score histogram (share of judged pairs per score), one bar per dataset."""
    scored = [s for s in stats if s.score_histogram]
    if not scored:
        return None
    fig = _figure(3.2)
    ax = fig.add_subplot()
    series = [(s.name, [s.score_histogram[k] / s.funnel.scored if s.funnel.scored else 0.0
                        for k in THRESHOLDS]) for s in scored if s.score_histogram]
    _bars(ax, [str(k) for k in THRESHOLDS], series)
    ax.set_xlabel("judge score")
    ax.set_ylabel("share of judged pairs")
    ax.set_title("Score histogram")
    return _png(fig)


def yield_plot(stats: Sequence[DatasetStats]) -> bytes | None:
    """Share of judged pairs kept at each threshold, one line per dataset."""
    scored = [s for s in stats if s.yields]
    if not scored:
        return None
    fig = _figure(3.2)
    ax = fig.add_subplot()
    for s in scored:
        if s.yields:
            ax.plot(list(THRESHOLDS), [s.yields[k] / s.funnel.scored if s.funnel.scored else 0.0
                                       for k in THRESHOLDS], marker="o", label=s.name)
        if s.min_score is not None:
            ax.axvline(s.min_score, color="grey", linestyle=":", linewidth=1)
    ax.set_xticks(list(THRESHOLDS))
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("minimum score (λ); dotted: the run's λ")
    ax.set_ylabel("share kept")
    ax.set_title("Yield vs threshold")
    ax.legend(fontsize="small")
    return _png(fig)


def length_plot(stats: Sequence[DatasetStats]) -> bytes | None:
    """Instruction and response length (characters) distributions, one step line per dataset."""
    if not any(s.instruction.char_values for s in stats):
        return None
    fig = _figure(3.4)
    axes = fig.subplots(1, 2)
    for ax, field in zip(axes, ("instruction", "response"), strict=True):
        values = [getattr(s, field).char_values for s in stats]
        top = max((max(v) for v in values if v), default=1)
        bins = [top * i / 30 for i in range(31)] if top > 0 else [0, 1]
        for s, v in zip(stats, values, strict=True):
            if v:
                ax.hist(v, bins=bins, histtype="step", linewidth=1.5, label=s.name)
        ax.set_xlabel(f"{field} length (characters)")
        ax.set_ylabel("rows")
        ax.set_title(f"{field.capitalize()} length")
    if len(stats) > 1:
        axes[1].legend(fontsize="small")
    return _png(fig)


def task_plot(stats: Sequence[DatasetStats]) -> bytes | None:
    """Share of rows per task, grouped by dataset."""
    if not any(s.tasks for s in stats):
        return None
    tasks = sorted({t for s in stats for t in s.tasks},
                   key=lambda t: -sum(s.tasks.get(t, 0) for s in stats))
    fig = _figure(max(2.5, 0.9 + 0.32 * len(tasks) * max(1, len(stats)) ** 0.5))
    ax = fig.add_subplot()
    height = 0.8 / len(stats)
    for i, s in enumerate(stats):
        ys = [y + (i - (len(stats) - 1) / 2) * height for y in range(len(tasks))]
        ax.barh(ys, [s.tasks.get(t, 0) / s.rows if s.rows else 0.0 for t in tasks],
                height=height, label=s.name)
    ax.set_yticks(range(len(tasks)), tasks)
    ax.invert_yaxis()
    ax.set_xlabel("share of rows")
    ax.set_title("Task spread")
    if len(stats) > 1:
        ax.legend(fontsize="small")
    return _png(fig)
