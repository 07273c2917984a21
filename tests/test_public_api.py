"""The public surface listed in mlift.__all__ resolves, and stays importable."""

from __future__ import annotations

import mlift


def test_every_name_in_all_resolves() -> None:
    missing = [name for name in mlift.__all__ if getattr(mlift, name, None) is None]
    assert missing == []


def test_the_error_tree_is_rooted_in_mlift_error() -> None:
    for name in ("ConfigError", "InputError", "ProviderError", "AuthError", "RateLimited",
                 "ProviderTimeout", "BudgetExceeded"):
        assert issubclass(getattr(mlift, name), mlift.MliftError)
    assert issubclass(mlift.ProviderTimeout, TimeoutError)
    assert issubclass(mlift.ConnectionFailed, ConnectionError)


def test_all_lists_exactly_the_lazy_exports() -> None:
    assert set(mlift.__all__) == {"__version__", *mlift._EXPORTS}
