"""The eval run folder: every file an eval writes or reads goes through here.

Layout::

    manifest.json   identity: task, prompts, options that change answers, data,
                    and each model label's spec (a resume must match it)
    items.jsonl     one line per (model, item) answered: output, reference, scores
    failures.jsonl  provider failures; those items are retried on the next run
    invalid.jsonl   input rows that could not be used, with file, line and field
    summary.json    scores with bootstrap intervals, per language/direction and model
    run.json        configuration, data provenance, and a ledger of every invocation

Resuming is by (model label, item key): answered items are skipped, so a
re-run sends only what is missing, and the response cache makes a re-run in a
fresh folder free. Resuming with a different identity is refused with what
differs: a new folder, or the same folder after removing it, is the fix.
Adding a model label or a language to an existing folder is allowed (that is
how a second model joins a comparison); changing what a label points to is not.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from mlift.errors import ConfigError

MANIFEST, ITEMS, FAILURES, INVALID = "manifest.json", "items.jsonl", "failures.jsonl", \
    "invalid.jsonl"
SUMMARY, RUN = "summary.json", "run.json"
SCHEMA = "mlift-eval-v1"


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Complete lines of one of our JSONL files; a torn last line (a killed writer) is cut."""
    if not path.exists():
        return
    good = 0
    with path.open("rb") as fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                break
            try:
                record = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                break
            good += len(raw)
            yield record
    if good < path.stat().st_size:
        with path.open("r+b") as fh:
            fh.truncate(good)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    return data


def is_eval_folder(path: Path) -> bool:
    manifest = path / MANIFEST
    if not manifest.is_file():
        return False
    try:
        return read_json(manifest).get("schema") == SCHEMA
    except ConfigError:
        return False


class EvalFolder:
    """An eval run folder, opened for one invocation."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._files: dict[str, IO[str]] = {}

    # -- identity ---------------------------------------------------------

    def claim(self, identity: dict[str, Any], models: dict[str, str]) -> None:
        """Create the folder for ``identity``, or check an existing one matches it."""
        manifest = self.path / MANIFEST
        if manifest.exists():
            old = read_json(manifest)
            if old.get("schema") != SCHEMA:
                raise ConfigError(f"{self.path}: not an mlift eval folder; use a new --out")
            differs = [k for k in sorted(set(old["identity"]) | set(identity))
                       if old["identity"].get(k) != identity.get(k)]
            if differs:
                detail = "; ".join(f"{k}: was {old['identity'].get(k)!r}, now "
                                   f"{identity.get(k)!r}" for k in differs[:4])
                raise ConfigError(f"{self.path} holds an eval run that differs ({detail}). "
                                  "Its answers would not be comparable: use a new --out "
                                  "(answers already paid for come from the cache)")
            relabelled = [f"{label}: was {old['models'][label]}, now {spec}"
                          for label, spec in models.items()
                          if old["models"].get(label, spec) != spec]
            if relabelled:
                raise ConfigError(f"{self.path}: model label{'s' if len(relabelled) > 1 else ''}"
                                  f" already used for another model ({'; '.join(relabelled)}); "
                                  "give the new model another label (LABEL=NAME:MODEL)")
            models = {**old["models"], **models}
        self.path.mkdir(parents=True, exist_ok=True)
        _write_json(manifest, {"schema": SCHEMA, "identity": identity, "models": models})

    def manifest(self) -> dict[str, Any]:
        return read_json(self.path / MANIFEST)

    # -- records ----------------------------------------------------------

    def items(self) -> list[dict[str, Any]]:
        return list(read_jsonl(self.path / ITEMS))

    def failures(self) -> list[dict[str, Any]]:
        return list(read_jsonl(self.path / FAILURES))

    def done(self) -> set[tuple[str, str]]:
        """(model label, item key) of every answered item."""
        return {(r["model"], r["key"]) for r in self.items()}

    def _append(self, name: str, record: dict[str, Any]) -> None:
        fh = self._files.get(name)
        if fh is None:
            fh = self._files[name] = (self.path / name).open("a", encoding="utf-8")
        fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        fh.flush()

    def add_item(self, record: dict[str, Any]) -> None:
        self._append(ITEMS, record)

    def add_failure(self, record: dict[str, Any]) -> None:
        self._append(FAILURES, record)

    def write_invalid(self, records: list[dict[str, Any]]) -> None:
        """The unusable input rows of this invocation (replacing the last list)."""
        tmp = self.path / (INVALID + ".tmp")
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
                       encoding="utf-8")
        os.replace(tmp, self.path / INVALID)

    def close(self) -> None:
        for fh in self._files.values():
            fh.flush()
            os.fsync(fh.fileno())
            fh.close()
        self._files.clear()

    # -- summary and ledger -----------------------------------------------

    def write_summary(self, summary: dict[str, Any]) -> None:
        _write_json(self.path / SUMMARY, summary)

    def summary(self) -> dict[str, Any]:
        return read_json(self.path / SUMMARY)

    def record_invocation(self, run: dict[str, Any], invocation: dict[str, Any]) -> dict[str, Any]:
        """Write run.json: this invocation appended to the ledger, totals over all of them."""
        path = self.path / RUN
        ledger = read_json(path).get("invocations", []) if path.exists() else []
        ledger.append({"finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       **invocation})
        totals: dict[str, float] = {}
        for entry in ledger:
            for key, value in entry.get("totals", {}).items():
                if isinstance(value, int | float):
                    totals[key] = round(totals.get(key, 0) + value, 10)
        data = {**run, "totals": totals, "invocations": ledger}
        _write_json(path, data)
        return data
