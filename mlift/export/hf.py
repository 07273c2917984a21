"""The ``hf`` export: a Hugging Face ``datasets`` folder and the same rows as Parquet.

``datasets`` and ``pyarrow`` are optional (``pip install 'mlift[export]'``).
The dataset is built from an in-memory list with an explicit schema, so
nothing is downloaded and nothing goes to the user's ``datasets`` cache.
Layout of OUT::

    OUT/dataset_info.json, state.json, data-*.arrow   datasets.load_from_disk(OUT)
    OUT/data/train-00000-of-00001.parquet             the Hub's layout (README configs)
    OUT/README.md                                     the dataset card
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlift.errors import ConfigError
from mlift.export.formats import HF_COLUMNS

__all__ = ["INSTALL_HINT", "PARQUET_PATH", "write_hf"]

INSTALL_HINT = "pip install 'mlift[export]'"
PARQUET_PATH = "data/train-00000-of-00001.parquet"


def _datasets() -> Any:
    try:
        importlib.import_module("pyarrow")
        # datasets ships no type information; import_module keeps mypy from needing stubs.
        return importlib.import_module("datasets")
    except ImportError as exc:
        raise ConfigError(f"the hf export needs the datasets and pyarrow packages "
                          f"({exc.name} is missing): {INSTALL_HINT}") from None


def require_datasets() -> None:
    """Raise :class:`ConfigError` naming the install command if ``datasets`` is missing."""
    _datasets()


def write_hf(records: Sequence[dict[str, Any]], out: Path) -> list[str]:
    """Save ``records`` (from :func:`mlift.export.formats.to_hf`) under ``out``; returns files."""
    ds_mod = _datasets()
    features = ds_mod.Features({
        **{name: ds_mod.Value(kind) for name, kind in HF_COLUMNS.items()},
        "messages": [{"role": ds_mod.Value("string"), "content": ds_mod.Value("string")}],
    })
    bars = ds_mod.is_progress_bar_enabled()
    ds_mod.disable_progress_bars()
    try:
        dataset = ds_mod.Dataset.from_list(list(records), features=features)
        dataset.save_to_disk(str(out))
        parquet = out / PARQUET_PATH
        parquet.parent.mkdir(parents=True, exist_ok=True)
        dataset.to_parquet(str(parquet))
    finally:
        if bars:
            ds_mod.enable_progress_bars()
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
