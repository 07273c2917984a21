"""chrF++ and spBLEU, computed by sacrebleu, as the FLORES-200 papers report them.

* **chrF++**: sacrebleu's ``CHRF(word_order=2)`` (character 6-grams plus word
  bigrams, β = 2), signature ``nrefs:1|case:mixed|eff:yes|nc:6|nw:2|space:no``.
* **spBLEU**: sacrebleu's ``BLEU`` over pieces of the FLORES-200 SentencePiece
  model (``tok:flores200``), so one tokenization serves every script.

sacrebleu would *download* that SentencePiece model the first time
``tokenize="flores200"`` is asked for; mlift never downloads at run time, and
offline it could not. No package on PyPI ships the model, so the user
supplies it once (:func:`find_spm_model`: ``--spm-model FILE``, or the file
sacrebleu itself keeps at ``$SACREBLEU/models/flores200sacrebleuspm`` after an
online run), and :class:`SpBleu` hands sacrebleu a tokenizer that loads that
file instead of one that fetches it. Everything else — n-gram counting,
smoothing, the signature — is sacrebleu's own code path.

Corpus scores are not means of sentence scores, so the bootstrap
(:mod:`mlift.eval.bootstrap`) resamples sacrebleu's per-sentence sufficient
statistics and recomputes the corpus score from their sum — the same two
metric methods sacrebleu's own paired-bootstrap test uses
(``_extract_corpus_statistics`` and ``_compute_score_from_stats``).
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlift.errors import ConfigError

INSTALL_HINT = "pip install 'mlift[eval]'"
SPM_NAME = "flores200"
# Where sacrebleu keeps the model it downloaded (its cache name is the URL's basename).
SACREBLEU_CACHE_NAME = "flores200sacrebleuspm"
Array = np.ndarray[Any, np.dtype[np.float64]]


def _sacrebleu() -> Any:
    try:
        return importlib.import_module("sacrebleu")
    except ImportError:
        raise ConfigError(f"chrF++ and spBLEU need sacrebleu: {INSTALL_HINT}") from None


def spm_download_url() -> str:
    """The URL sacrebleu would fetch the FLORES-200 model from (for the error message)."""
    try:
        spm = importlib.import_module("sacrebleu.tokenizers.tokenizer_spm")
        return str(spm.SPM_MODELS[SPM_NAME]["url"])
    except (ImportError, KeyError):
        return "https://tinyurl.com/flores200sacrebleuspm"


def sacrebleu_cache_path() -> Path | None:
    """``$SACREBLEU/models/flores200sacrebleuspm`` (sacrebleu's own download location)."""
    try:
        utils = importlib.import_module("sacrebleu.utils")
    except ImportError:
        return None
    return Path(utils.SACREBLEU_DIR) / "models" / SACREBLEU_CACHE_NAME


def missing_spm_message() -> str:
    cache = sacrebleu_cache_path()
    return ("spBLEU needs the FLORES-200 SentencePiece model, which sacrebleu downloads on "
            "first use; mlift never downloads at run time. Fetch it once "
            f"({spm_download_url()}, ~5 MB) and pass --spm-model FILE"
            + (f" (or save it as {cache}, where sacrebleu looks)" if cache else "")
            + "; or evaluate chrF++ only with --metrics chrf++")


def find_spm_model(explicit: Path | None) -> Path | None:
    """The FLORES-200 SentencePiece model to use: ``explicit``, else sacrebleu's cached copy."""
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"--spm-model {explicit}: no such file. {missing_spm_message()}")
        return explicit
    cache = sacrebleu_cache_path()
    return cache if cache is not None and cache.is_file() else None


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _Metric:
    """A sacrebleu corpus metric: per-sentence statistics, and the score of their sum."""

    name = ""

    def __init__(self, metric: Any) -> None:
        self._metric = metric

    @property
    def signature(self) -> str:
        return str(self._metric.get_signature())

    def statistics(self, hypotheses: Sequence[str], references: Sequence[str]) -> Array:
        """One row of sufficient statistics per (hypothesis, reference) pair."""
        rows = self._metric._extract_corpus_statistics(list(hypotheses), [list(references)])
        return np.asarray(rows, dtype=np.float64).reshape(len(hypotheses), -1)

    def score(self, summed: Array) -> float:
        """The corpus score (0–100) of summed statistics."""
        return float(self._metric._compute_score_from_stats(list(summed)).score)

    def corpus(self, hypotheses: Sequence[str], references: Sequence[str]) -> float:
        """sacrebleu's corpus score, as its ``corpus_score`` computes it."""
        return float(self._metric.corpus_score(list(hypotheses), [list(references)]).score)

    def sentence(self, hypothesis: str, reference: str) -> float:
        return float(self._metric.sentence_score(hypothesis, [reference]).score)


class ChrFpp(_Metric):
    name = "chrf++"

    def __init__(self) -> None:
        super().__init__(_sacrebleu().CHRF(word_order=2))


class SpBleu(_Metric):
    """BLEU over FLORES-200 SentencePiece pieces, from a local model file."""

    name = "spbleu"

    def __init__(self, model_path: Path) -> None:
        sacrebleu = _sacrebleu()
        try:
            spm_module = importlib.import_module("sacrebleu.tokenizers.tokenizer_spm")
            sentencepiece = importlib.import_module("sentencepiece")
        except ImportError:
            raise ConfigError(f"spBLEU needs sentencepiece: {INSTALL_HINT}") from None
        processor = sentencepiece.SentencePieceProcessor()
        try:
            processor.Load(str(model_path))
        except (OSError, RuntimeError) as exc:
            raise ConfigError(f"--spm-model {model_path}: not a SentencePiece model ({exc})"
                              ) from None

        class LocalFlores200(spm_module.TokenizerSPM):  # type: ignore[misc,name-defined]
            # sacrebleu's tokenizer with the model handed in: its __init__
            # would download the file; its __call__ (encode to pieces) is kept.
            def __init__(self) -> None:
                self.name = SPM_NAME
                self.sp = processor

        bleu = sacrebleu.BLEU(tokenize="none")
        bleu.tokenizer = LocalFlores200()
        bleu.tokenizer_signature = bleu.tokenizer.signature()
        super().__init__(bleu)
        self.model_path = model_path
        self.vocab_size = int(processor.GetPieceSize())
