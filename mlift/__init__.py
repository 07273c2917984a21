"""mlift: multilingual instruction-finetuning data from natural text."""

__version__ = "0.1.0"
