"""The cumulative ledger: what every invocation on a run folder spent.

``ledger.jsonl`` gets one line when an invocation starts and a checkpoint
line every few seconds while it runs, each with that invocation's accounting
so far (an ``Accounting.snapshot()``), and a final line when it ends. The
run's totals are the sum, over invocations, of each one's latest line — so
a run killed with ``kill -9`` loses at most one checkpoint interval of its
bill, and ``--max-cost`` caps what the whole run spent, not only the last
invocation.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlift.records import JsonlWriter, iter_json_lines

LEDGER = "ledger.jsonl"


def merge_snapshots(snapshots: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Sum accounting snapshots key by key (latency histograms are not additive: dropped)."""
    out: dict[str, Any] = {}
    for snap in snapshots:
        _add(out, snap)
    return out


def _add(into: dict[str, Any], other: Mapping[str, Any]) -> None:
    for key, value in other.items():
        if key in ("latency_s", "cells"):
            continue
        if isinstance(value, bool) or value is None:
            into.setdefault(key, value)
        elif isinstance(value, int | float):
            into[key] = into.get(key, 0) + value
        elif isinstance(value, Mapping):
            _add(into.setdefault(key, {}), value)


def _stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass(slots=True)
class Invocation:
    """One command run on the folder, as the ledger has it."""

    number: int
    command: str
    started_at: str
    finished_at: str | None = None
    stopped: str | None = None
    accounting: dict[str, Any] | None = None
    final: bool = False

    @property
    def cost_usd(self) -> float:
        totals = (self.accounting or {}).get("totals", {})
        return float(totals.get("cost_usd", 0.0))

    def to_json(self) -> dict[str, Any]:
        totals = (self.accounting or {}).get("totals", {})
        return {"invocation": self.number, "command": self.command,
                "started_at": self.started_at, "finished_at": self.finished_at,
                "complete": self.final, "stopped_early": self.stopped,
                "cost_usd": round(self.cost_usd, 10),
                "requests": totals.get("requests", 0),
                "cache_hits": totals.get("cache_hits", 0),
                "input_tokens": totals.get("input_tokens", 0),
                "output_tokens": totals.get("output_tokens", 0)}


class Ledger:
    """Reads the folder's ledger and appends this invocation's lines."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / LEDGER
        self.invocations: dict[int, Invocation] = {}
        for _line, entry in iter_json_lines(self.path):
            number = entry.get("invocation")
            if not isinstance(number, int):
                continue
            inv = self.invocations.get(number)
            if inv is None:
                inv = self.invocations[number] = Invocation(
                    number, str(entry.get("command", "?")), str(entry.get("at", "")))
            if isinstance(entry.get("accounting"), dict):
                inv.accounting = entry["accounting"]
            if entry.get("event") == "end":
                inv.final, inv.finished_at = True, entry.get("at")
                inv.stopped = entry.get("stopped_early")
        self.current: Invocation | None = None
        self._writer: JsonlWriter | None = None

    def cost_except(self, number: int | None, *, command: str | None = None) -> float:
        """Dollars spent by every invocation but ``number`` (only ``command``'s, if given)."""
        return sum(inv.cost_usd for n, inv in self.invocations.items()
                   if n != number and (command is None or inv.command == command))

    @property
    def prior_cost(self) -> float:
        """Dollars spent by every invocation before the running one (all, once it ended)."""
        return self.cost_except(self.current.number if self.current is not None else None)

    def begin(self, command: str) -> Invocation:
        number = max(self.invocations, default=0) + 1
        inv = Invocation(number, command, _stamp())
        self.invocations[number] = self.current = inv
        self._writer = JsonlWriter(self.path)
        self._write({"invocation": number, "event": "start", "command": command,
                     "at": inv.started_at})
        return inv

    def checkpoint(self, accounting: dict[str, Any]) -> None:
        """Record this invocation's accounting so far (cheap; call every few seconds)."""
        if self.current is None:
            return
        self.current.accounting = accounting
        self._write({"invocation": self.current.number, "event": "checkpoint",
                     "at": _stamp(), "accounting": accounting})

    def end(self, accounting: dict[str, Any], stopped: str | None) -> None:
        if self.current is None:
            return
        inv = self.current
        inv.accounting, inv.final, inv.stopped = accounting, True, stopped
        inv.finished_at = _stamp()
        self._write({"invocation": inv.number, "event": "end", "at": inv.finished_at,
                     "stopped_early": stopped, "accounting": accounting})
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self.current = None

    def _write(self, entry: dict[str, Any]) -> None:
        assert self._writer is not None
        self._writer.write(entry)
        self._writer.flush()

    def totals(self) -> dict[str, Any]:
        """The run's accounting: every invocation's latest snapshot, summed."""
        return merge_snapshots(inv.accounting for inv in self.invocations.values()
                               if inv.accounting)

    def history(self) -> list[dict[str, Any]]:
        return [self.invocations[n].to_json() for n in sorted(self.invocations)]
