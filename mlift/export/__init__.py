"""Export a run folder's dataset for fine-tuning tools and APIs (``mlift export``).

Formats: ``hf`` (a Hugging Face ``datasets`` folder plus Parquet; needs
``pip install 'mlift[export]'``), ``openai-chat`` (OpenAI chat fine-tuning
JSONL, checked by :func:`validate_openai_chat`), ``alpaca`` and ``sharegpt``.
Each export gets a dataset card (README.md) beside it.
"""

from __future__ import annotations

from mlift.export.card import dataset_card
from mlift.export.core import FORMATS, ExportResult, export
from mlift.export.validate import validate_openai_chat

__all__ = ["FORMATS", "ExportResult", "dataset_card", "export", "validate_openai_chat"]
