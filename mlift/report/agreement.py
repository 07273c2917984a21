"""The report's agreement section: judges against each other and against people.

Shown for each folder that holds something to compare — a second judge's
scores (``mlift judge``), human labels or blind choices (``mlift review``) —
and left out for the rest, so a report of plain run folders is unchanged.
The figures are :mod:`mlift.agree`'s, as ``mlift agree`` prints them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mlift.agree.compare import Agreement, agreement
from mlift.agree.render import render_html, render_text
from mlift.review.store import JudgeScore, Label, Preference

__all__ = ["agreement_html", "agreement_text", "agreements"]


def agreements(dirs: Sequence[Path]) -> list[Agreement]:
    """The agreement of each folder that has labels, second-judge scores or blind choices."""
    out = []
    for d in dirs:
        if any((Path(d) / cls.FILE).is_file() for cls in (JudgeScore, Label, Preference)):
            result = agreement(Path(d))
            if not result.empty:
                out.append(result)
    return out


def agreement_text(found: Sequence[Agreement]) -> str:
    return "".join("\n" + render_text(a) for a in found)


def agreement_html(found: Sequence[Agreement]) -> str:
    return "\n".join(render_html(a) for a in found)
