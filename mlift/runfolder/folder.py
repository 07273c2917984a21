"""The run folder: its identity, what it already holds, its files.

Every command that writes a run folder opens it here (``RunFolder.open``):
a new folder gets a ``manifest.json`` with the command and the identity of
the run (:mod:`mlift.runfolder.identity`); an existing one is resumed only
if the identity matches, else :class:`~mlift.errors.RunFolderError` says what
differs and what to do — a new ``--out``, or ``--new-generation``, which
moves the old results into ``generations/N/`` and starts afresh, so rows from
two settings never mix in one file. Commands that only read a folder
(``filter``, ``report``, ``export``, ``review``) use ``RunFolder.load``.

The files are the record types of :mod:`mlift.records`; ``scan`` reads what
is finished (the torn last line of a killed writer cut off first), and
``retry_failed`` moves rejects caused by provider failures aside, so the
next run tries those items again.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from mlift import __version__
from mlift.errors import RunFolderError
from mlift.records import (
    DatasetRow,
    JsonlWriter,
    RecordBase,
    Reject,
    ScoredPair,
    iter_records,
    repair_torn_tail,
    rewrite,
    write_json,
)
from mlift.runfolder.identity import compare
from mlift.runfolder.ledger import LEDGER, Ledger

MANIFEST, RUN = "manifest.json", "run.json"
GENERATIONS = "generations"
RETRIED = "rejects.retried.jsonl"
SCHEMA = "mlift-run-folder-v1"
R = TypeVar("R", bound=RecordBase)


@dataclass(slots=True)
class Finished:
    """Ids already in each output file (scores kept for the scored ones)."""

    kept: set[str] = field(default_factory=set)
    rejected: set[str] = field(default_factory=set)
    scores: dict[str, int] = field(default_factory=dict)
    reasons: Counter[str] = field(default_factory=Counter)
    provider_failures: set[str] = field(default_factory=set)

    def done(self, item_id: str, min_score: int | None = None) -> bool:
        if item_id in self.kept or item_id in self.rejected:
            return True
        score = self.scores.get(item_id)
        return score is not None and min_score is not None and score < min_score

    def below(self, min_score: int) -> set[str]:
        return {i for i, s in self.scores.items()
                if s < min_score and i not in self.kept and i not in self.rejected}

    def add(self, record: RecordBase) -> None:
        if isinstance(record, DatasetRow):
            self.kept.add(record.id)
        elif isinstance(record, ScoredPair):
            self.scores.setdefault(record.id, record.score)
        elif isinstance(record, Reject) and record.id not in self.rejected:
            self.rejected.add(record.id)
            self.reasons[f"{record.stage}:{record.code}"] += 1
            if record.retry:
                self.provider_failures.add(record.id)


class RunFolder:
    """One run folder on disk (see the module docstring)."""

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = path
        self.manifest = manifest

    # -- opening ------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, *, command: str, identity: dict[str, Any],
             new_generation: bool = False) -> RunFolder:
        """Create ``path`` as a run folder of ``command``, or resume it if it is the same run."""
        if path.exists() and not path.is_dir():
            raise RunFolderError(f"{path} exists and is not a folder; pick another --out")
        path.mkdir(parents=True, exist_ok=True)
        old = _read_manifest(path)
        holds = _holds_results(path)
        generation = 1
        if old is None and holds:
            old = _legacy_manifest(path)
        if old is not None:
            generation = int(old.get("generation", 1))
            diffs = ([] if old.get("command") in (command, None) else
                     [f"command: was mlift {old.get('command')}, now mlift {command}"])
            diffs += [str(d) for d in compare(_comparable(old, identity), identity)]
            if diffs and new_generation:
                _archive(path, generation)
                generation += 1
            elif diffs:
                raise RunFolderError(_refusal(path, command, diffs))
            elif new_generation and holds:
                _archive(path, generation)
                generation += 1
        manifest = {"schema": SCHEMA, "command": command, "generation": generation,
                    "created_at": (old or {}).get("created_at") if old and not new_generation
                    else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "mlift_version": __version__, "identity": identity}
        write_json(path / MANIFEST, manifest)
        return cls(path, manifest)

    @staticmethod
    def known_inputs(path: Path) -> list[dict[str, Any]] | None:
        """The input fingerprints a folder's manifest holds (to skip re-hashing unchanged files)."""
        try:
            manifest = _read_manifest(path) if path.is_dir() else None
        except RunFolderError:
            return None
        inputs = (manifest or {}).get("identity", {}).get("inputs")
        return inputs if isinstance(inputs, list) else None

    @classmethod
    def load(cls, path: Path, *, expect: str | None = None) -> RunFolder:
        """An existing run folder, for commands that read it (``expect``: the command it is of)."""
        if not path.is_dir():
            raise RunFolderError(f"{path}: no such folder (expected an mlift run folder)")
        manifest = _read_manifest(path)
        if manifest is None:
            if not _holds_results(path) and not (path / RUN).is_file():
                raise RunFolderError(f"{path}: not an mlift run folder (no {MANIFEST}, "
                                     f"{RUN} or output files)")
            manifest = _legacy_manifest(path)
        folder = cls(path, manifest)
        if expect is not None and folder.command != expect:
            raise RunFolderError(f"{path} was made by `mlift {folder.command}`; this command "
                                 f"works on folders of `mlift {expect}`")
        return folder

    # -- what it holds --------------------------------------------------------

    @property
    def command(self) -> str:
        """The command that made the folder (``run`` when an old folder doesn't say)."""
        return str(self.manifest.get("command") or "run")

    @property
    def identity(self) -> dict[str, Any]:
        identity: dict[str, Any] = self.manifest.get("identity", {})
        return identity

    @property
    def generation(self) -> int:
        return int(self.manifest.get("generation", 1))

    def file(self, record: type[RecordBase]) -> Path:
        return self.path / record.FILE

    def records(self, cls: type[R]) -> Iterator[R]:
        return iter_records(self.file(cls), cls)

    def summary(self) -> dict[str, Any]:
        """``run.json`` as last written ({} if none yet)."""
        path = self.path / RUN
        if not path.is_file():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise RunFolderError(f"{path}: not valid JSON ({exc}); delete it (the next run "
                                 "writes it again)") from None
        return data if isinstance(data, dict) else {}

    def scan(self, *, repair: bool = False) -> Finished:
        """What is finished, from the files; ``repair`` first cuts torn last lines off."""
        finished = Finished()
        for cls in (DatasetRow, Reject, ScoredPair):
            if repair:
                repair_torn_tail(self.file(cls))
            for record in self.records(cls):
                finished.add(record)
        return finished

    def retry_failed(self) -> int:
        """Move rejects caused by provider failures aside so their items run again; how many."""
        path = self.file(Reject)
        if not path.is_file():
            return 0
        repair_torn_tail(path)
        keep: list[RecordBase] = []
        retry: list[RecordBase] = []
        for reject in self.records(Reject):
            (retry if reject.retry else keep).append(reject)
        if retry:
            history = JsonlWriter(self.path / RETRIED)
            try:
                for record in retry:
                    history.write(record)
            finally:
                history.close()
            rewrite(path, keep)
        return len(retry)

    def ledger(self) -> Ledger:
        return Ledger(self.path)

    def write_summary(self, data: dict[str, Any]) -> None:
        write_json(self.path / RUN, data)


# ------------------------------------------------------------------ helpers

def _read_manifest(path: Path) -> dict[str, Any] | None:
    file = path / MANIFEST
    if not file.is_file():
        return None
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise RunFolderError(f"{file}: not valid JSON ({exc}); the folder's identity is "
                             "unknown — restore the file or start a new --out folder") from None
    if not isinstance(data, dict):
        raise RunFolderError(f"{file}: expected a JSON object")
    return data


def _holds_results(path: Path) -> bool:
    return any((path / cls.FILE).is_file() and (path / cls.FILE).stat().st_size > 0
               for cls in (DatasetRow, ScoredPair, Reject))


def _legacy_manifest(path: Path) -> dict[str, Any]:
    """The manifest of a folder written before manifests existed (from its run.json).

    Only the models and the judge prompt can be read back, so only those are
    compared when such a folder is resumed.
    """
    summary = RunFolder(path, {}).summary()
    config = summary.get("config", {}) if isinstance(summary.get("config"), dict) else {}
    # Without run.json the command is unknown (None): any command may adopt the folder.
    command: str | None = "run" if summary else None
    if summary.get("baseline"):
        command = f"baseline {summary['baseline']}"
    identity: dict[str, Any] = {}
    return {"schema": SCHEMA, "command": command, "generation": 1, "legacy": True,
            "identity": identity, "legacy_config": config}


def _comparable(old: dict[str, Any], identity: dict[str, Any]) -> dict[str, Any]:
    """The old identity to compare with; for a legacy folder, the new one with what it recorded."""
    if not old.get("legacy"):
        return dict(old.get("identity", {}))
    config = old.get("legacy_config", {})
    merged = dict(identity)
    if isinstance(config.get("models"), dict) and "models" in identity:
        merged["models"] = config["models"]
    if isinstance(config.get("judge_prompt"), str) and "judge_prompt" in identity.get(
            "params", {}):
        merged["params"] = {**identity["params"], "judge_prompt": config["judge_prompt"]}
    return merged


def _refusal(path: Path, command: str, diffs: list[str]) -> str:
    shown = "\n".join(f"  {d}" for d in diffs[:12])
    more = f"\n  … and {len(diffs) - 12} more" if len(diffs) > 12 else ""
    return (f"{path} holds a run made with other settings:\n{shown}{more}\n"
            f"Resuming would mix rows made both ways in one dataset. To fix: pick a new "
            f"--out folder, or add --new-generation to move the old results into "
            f"{path / GENERATIONS}/N/ and start afresh in {path}.")


def _archive(path: Path, generation: int) -> None:
    """Move everything but older generations into ``generations/<generation>/``."""
    target = path / GENERATIONS / str(generation)
    target.mkdir(parents=True, exist_ok=False)
    for entry in sorted(path.iterdir()):
        if entry.name == GENERATIONS:
            continue
        shutil.move(os.fspath(entry), os.fspath(target / entry.name))


__all__ = ["GENERATIONS", "LEDGER", "MANIFEST", "RETRIED", "RUN", "Finished", "RunFolder"]
