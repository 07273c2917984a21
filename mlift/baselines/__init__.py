"""The two baselines the method is compared against (DESIGN.md §2).

- :mod:`mlift.baselines.translate`: translate an English IFT dataset
  (instruction and response) into the target language through the engine;
- :mod:`mlift.baselines.template`: fill instruction templates written in the
  target language with the fields of an NLP dataset; no model calls.

Both write the same run folder as ``mlift run`` (``dataset.jsonl``,
``rejects.jsonl``, ``run.json``), keep its invariant (every input line ends in
exactly one of dataset / rejects) and resume by skipping finished ids.
"""

from mlift.baselines.template import (
    TemplateOptions,
    TemplateSet,
    draw_template,
    load_templates,
    run_template_baseline,
)
from mlift.baselines.translate import IftFields, TranslateBaseline, TranslateOptions

__all__ = ["IftFields", "TemplateOptions", "TemplateSet", "TranslateBaseline",
           "TranslateOptions", "draw_template", "load_templates", "run_template_baseline"]
