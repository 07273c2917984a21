"""``export(run_dir, fmt, out)``: a run folder's dataset in a fine-tuning format, with a card.

Every format is written to a temporary name and moved into place, so a failed
export never leaves half a file where a good one was expected. An existing
output is replaced only with ``overwrite``; a README.md next to a file export
is replaced when mlift wrote it (it carries :data:`~mlift.export.card.CARD_MARK`)
or with ``overwrite``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlift.errors import ConfigError, InputError
from mlift.export import formats, hf
from mlift.export.card import CARD_MARK, dataset_card
from mlift.records import DatasetRow
from mlift.report.load import FolderView, load_folder

__all__ = ["FORMATS", "ExportResult", "export"]

FORMATS = ("hf", "openai-chat", "alpaca", "sharegpt")
CARD = "README.md"


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What an export wrote: the output (file or folder), its card and the row count."""

    format: str
    out: Path
    card: Path
    rows: int
    files: tuple[str, ...]


def _check_rows(folder: FolderView) -> None:
    if not folder.rows:
        raise ConfigError(f"{folder.path / DatasetRow.FILE}: no rows to export")
    for line, row in zip(folder.row_lines, folder.rows, strict=True):
        for key in ("instruction", "response"):
            value = row.get(key)
            if not isinstance(value, str) or not value.strip():
                raise InputError("missing or empty; every exported pair needs both texts",
                                 file=str(folder.path / DatasetRow.FILE), line=line, field=key)


def _write_atomic(path: Path, chunks: Iterable[str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.writelines(chunks)
    os.replace(tmp, path)


def _jsonl(records: Iterable[dict[str, Any]]) -> Iterable[str]:
    return (json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def _json_array(records: Iterable[dict[str, Any]]) -> Iterable[str]:
    yield "["
    for i, r in enumerate(records):
        yield ("\n" if i == 0 else ",\n") + json.dumps(r, ensure_ascii=False, indent=None)
    yield "\n]\n"


def _file_export(folder: FolderView, fmt: str, out: Path, system: str | None) -> None:
    convert: Callable[[dict[str, Any]], dict[str, Any]]
    if fmt == "openai-chat":
        def convert(row: dict[str, Any]) -> dict[str, Any]:
            return formats.to_openai_chat(row, system)
    elif fmt == "sharegpt":
        def convert(row: dict[str, Any]) -> dict[str, Any]:
            return formats.to_sharegpt(row, system)
    else:
        convert = formats.to_alpaca
    records = (convert(r) for r in folder.rows)
    as_lines = fmt == "openai-chat" or out.suffix == ".jsonl"
    _write_atomic(out, _jsonl(records) if as_lines else _json_array(records))


def _claim(path: Path, overwrite: bool, what: str) -> None:
    if path.exists() and not overwrite:
        raise ConfigError(f"{path} exists; pass --overwrite to replace {what}")


def export(run_dir: str | Path, fmt: str, out: str | Path, *, system: str | None = None,
           overwrite: bool = False) -> ExportResult:
    """Export ``run_dir``'s ``dataset.jsonl`` as ``fmt`` (one of :data:`FORMATS`) to ``out``.

    ``out`` is a file for ``openai-chat`` (JSONL), ``alpaca`` (JSON array) and
    ``sharegpt`` (JSONL if it ends in ``.jsonl``, else a JSON array), and a
    folder for ``hf``. ``system`` adds a system message to each chat example
    (not available for ``alpaca``, which has no place for one).
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if system is not None and fmt == "alpaca":
        raise ConfigError("--system has no place in the alpaca format; use openai-chat, "
                          "sharegpt or hf")
    if system is not None and not system.strip():
        raise ConfigError("--system must not be empty")
    folder = load_folder(run_dir)
    _check_rows(folder)
    target = Path(out)
    if fmt == "hf":
        hf.require_datasets()
        _claim(target, overwrite, "the folder")
        staging = target.with_name(target.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        files = hf.write_hf([formats.to_hf(r, system) for r in folder.rows], staging)
        (staging / CARD).write_text(dataset_card(folder, fmt=fmt, files=files,
                                                 data_files=hf.PARQUET_PATH, system=system),
                                    encoding="utf-8")
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        os.replace(staging, target)
        return ExportResult(fmt, target, target / CARD, len(folder.rows), (*files, CARD))
    if target.is_dir():
        raise ConfigError(f"{target} is a folder; the {fmt} export is one file "
                          f"(e.g. {target / ('train.jsonl' if fmt != 'alpaca' else 'train.json')})")
    target.parent.mkdir(parents=True, exist_ok=True)
    _claim(target, overwrite, "the file")
    card = target.parent / CARD
    if card.exists() and not overwrite and CARD_MARK not in card.read_text(encoding="utf-8",
                                                                           errors="replace"):
        raise ConfigError(f"{card} exists and was not written by mlift; pass --overwrite "
                          "to replace it with the dataset card")
    _file_export(folder, fmt, target, system)
    _write_atomic(card, [dataset_card(folder, fmt=fmt, files=[target.name], system=system)])
    return ExportResult(fmt, target, card, len(folder.rows), (target.name, CARD))
