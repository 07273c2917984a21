"""Benchmark rows from local JSONL/Parquet files or from the Hugging Face hub.

Every task reads plain rows (dicts) in its public dataset's own field names
(see each task's module) and validates them itself; this module only gets the
rows and records where they came from, so a run folder can say exactly what
was evaluated:

* a local file: its path, format, size and sha256;
* the hub: dataset id, config, split, the revision asked for and the commit
  it resolved to (needs ``datasets``: ``pip install 'mlift[export]'``). A
  local folder laid out like a hub dataset works the same way, offline.

Files are small next to a corpus (XL-Sum's largest test split is ~40 MB), so
rows are read whole. A line that is not a JSON object is an invalid row, not
a crash: :class:`Rows` carries it with its file and line for the run folder's
``invalid.jsonl``; a file that cannot be read at all is a ``ConfigError``.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlift.errors import ConfigError, InputError

EXPORT_HINT = "pip install 'mlift[export]'"


@dataclass(slots=True)
class Rows:
    """Rows of one source, each with its 1-based line (row for Parquet and the hub)."""

    provenance: dict[str, Any]
    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    invalid: list[InputError] = field(default_factory=list)
    lang: str | None = None  # the language every row is in, when the source says so

    @property
    def where(self) -> str:
        return str(self.provenance.get("path") or self.provenance.get("dataset"))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_file(path: Path, lang: str | None = None) -> Rows:
    """All rows of a ``.jsonl`` (``.json``, ``.ndjson``) or ``.parquet`` file."""
    if not path.is_file():
        raise ConfigError(f"--data {path}: no such file")
    suffix = path.suffix.lower()
    fmt = ("parquet" if suffix in (".parquet", ".pq") else
           "jsonl" if suffix in (".jsonl", ".json", ".ndjson") else None)
    if fmt is None:
        raise ConfigError(f"--data {path}: unknown format {suffix or '(no extension)'!r}; "
                          "give a .jsonl or .parquet file")
    out = Rows({"kind": "file", "path": str(path), "format": fmt,
                "bytes": path.stat().st_size, "sha256": _sha256(path)}, lang=lang)
    if fmt == "parquet":
        _parquet(path, out)
    else:
        _jsonl(path, out)
    return out


def _jsonl(path: Path, out: Rows) -> None:
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                out.invalid.append(InputError(f"not UTF-8 ({exc.reason} at byte {exc.start})",
                                              file=str(path), line=lineno, code="bad_utf8"))
                continue
            except (json.JSONDecodeError, RecursionError) as exc:
                out.invalid.append(InputError(f"not valid JSON ({exc})", file=str(path),
                                              line=lineno, code="bad_json"))
                continue
            if not isinstance(obj, dict):
                out.invalid.append(InputError(f"expected a JSON object, got "
                                              f"{type(obj).__name__}", file=str(path),
                                              line=lineno, code="bad_json"))
                continue
            out.rows.append((lineno, obj))


def _parquet(path: Path, out: Rows) -> None:
    try:
        pq = importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise ConfigError(f"{path}: reading Parquet needs pyarrow: {EXPORT_HINT}") from None
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid/OSError for a broken file
        raise ConfigError(f"{path}: not a readable Parquet file: {exc}") from exc
    out.rows.extend(enumerate(table.to_pylist(), 1))


def read_hub(dataset: str, config: str | None, split: str, revision: str | None,
             lang: str | None = None) -> Rows:
    """Rows of one split of a hub dataset (or a local folder laid out like one)."""
    try:
        datasets = importlib.import_module("datasets")
    except ImportError:
        raise ConfigError(f"--hub needs the datasets library: {EXPORT_HINT}") from None
    try:
        ds = datasets.load_dataset(dataset, config, split=split, revision=revision)
    except Exception as exc:  # datasets raises many kinds; all mean "cannot load this"
        raise ConfigError(f"--hub {dataset} (config {config!r}, split {split!r}"
                          f"{f', revision {revision!r}' if revision else ''}): "
                          f"cannot load it: {type(exc).__name__}: {exc}") from exc
    out = Rows({"kind": "hub", "dataset": dataset, "config": config, "split": split,
                "revision": revision, "resolved_revision": _resolved_revision(dataset, revision),
                "fingerprint": getattr(ds, "_fingerprint", None), "rows": len(ds)}, lang=lang)
    out.rows.extend(enumerate((dict(r) for r in ds), 1))
    return out


def _resolved_revision(dataset: str, revision: str | None) -> str | None:
    """The commit a hub revision points to now (None offline or for a local folder)."""
    if Path(dataset).exists():
        return None
    try:
        hub = importlib.import_module("huggingface_hub")
        return str(hub.HfApi().dataset_info(dataset, revision=revision).sha)
    except Exception:  # offline, gated or renamed: the requested revision is still recorded
        return None
