"""mlift: multilingual instruction-finetuning data from natural text.

The public surface, listed once. Names are imported on first use so that
``import mlift`` (and the CLI's start-up) stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    # values passed between engine, providers and stages
    "Request": "mlift.types", "Message": "mlift.types", "Completion": "mlift.types",
    "Usage": "mlift.types", "RateLimitInfo": "mlift.types", "OutputSchema": "mlift.types",
    # the engine
    "Engine": "mlift.engine.core", "RateLimiter": "mlift.engine.limiter",
    "RetryPolicy": "mlift.engine.retry", "TimeoutPolicy": "mlift.engine.retry",
    "Scheduler": "mlift.engine.scheduler", "ResponseCache": "mlift.engine.cache",
    "cache_key": "mlift.engine.cachekey", "Accounting": "mlift.engine.accounting",
    "Budget": "mlift.engine.accounting", "Price": "mlift.prices", "PriceTable": "mlift.prices",
    # providers and config
    "Endpoint": "mlift.providers.base", "Provider": "mlift.providers.base",
    "create_provider": "mlift.providers.registry", "load_config": "mlift.config",
    "resolve_endpoint": "mlift.config",
    # prompts
    "load_prompts": "mlift.prompts", "render": "mlift.prompts", "draw": "mlift.prompts",
    "PromptLibrary": "mlift.prompts", "PromptTemplate": "mlift.prompts",
    # the pipeline
    "Pipeline": "mlift.pipeline.runner", "RunOptions": "mlift.pipeline.runner",
    "Models": "mlift.pipeline.stages", "read_records": "mlift.pipeline.sources",
    "Selector": "mlift.pipeline.select", "get_language": "mlift.langs",
    # run folders and their records
    "RunFolder": "mlift.runfolder", "Run": "mlift.runfolder",
    "RunReport": "mlift.runfolder.report", "DatasetRow": "mlift.records",
    "ScoredPair": "mlift.records", "Reject": "mlift.records",
    "RequestResult": "mlift.records", "iter_records": "mlift.records",
    "RunFolderError": "mlift.errors",
    # the simulator
    "SimServer": "mlift.sim", "SimConfig": "mlift.sim",
    # errors
    "MliftError": "mlift.errors", "ConfigError": "mlift.errors",
    "UnknownNameError": "mlift.errors", "InputError": "mlift.errors",
    "PromptError": "mlift.errors", "BudgetExceeded": "mlift.errors",
    "ProviderError": "mlift.errors", "AuthError": "mlift.errors",
    "PermanentError": "mlift.errors", "TransientError": "mlift.errors",
    "RateLimited": "mlift.errors", "ServerError": "mlift.errors",
    "ProviderTimeout": "mlift.errors", "ConnectionFailed": "mlift.errors",
    "MalformedResponse": "mlift.errors", "EndpointUnusable": "mlift.errors",
}

__all__ = [
    "Accounting",
    "AuthError",
    "Budget",
    "BudgetExceeded",
    "Completion",
    "ConfigError",
    "ConnectionFailed",
    "DatasetRow",
    "Endpoint",
    "EndpointUnusable",
    "Engine",
    "InputError",
    "MalformedResponse",
    "Message",
    "MliftError",
    "Models",
    "OutputSchema",
    "PermanentError",
    "Pipeline",
    "Price",
    "PriceTable",
    "PromptError",
    "PromptLibrary",
    "PromptTemplate",
    "Provider",
    "ProviderError",
    "ProviderTimeout",
    "RateLimitInfo",
    "RateLimited",
    "RateLimiter",
    "Reject",
    "Request",
    "RequestResult",
    "ResponseCache",
    "RetryPolicy",
    "Run",
    "RunFolder",
    "RunFolderError",
    "RunOptions",
    "RunReport",
    "Scheduler",
    "ScoredPair",
    "Selector",
    "ServerError",
    "SimConfig",
    "SimServer",
    "TimeoutPolicy",
    "TransientError",
    "UnknownNameError",
    "Usage",
    "__version__",
    "cache_key",
    "create_provider",
    "draw",
    "get_language",
    "iter_records",
    "load_config",
    "load_prompts",
    "read_records",
    "render",
    "resolve_endpoint",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mlift' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from mlift.config import load_config, resolve_endpoint
    from mlift.engine.accounting import Accounting, Budget
    from mlift.engine.cache import ResponseCache
    from mlift.engine.cachekey import cache_key
    from mlift.engine.core import Engine
    from mlift.engine.limiter import RateLimiter
    from mlift.engine.retry import RetryPolicy, TimeoutPolicy
    from mlift.engine.scheduler import Scheduler
    from mlift.errors import (
        AuthError,
        BudgetExceeded,
        ConfigError,
        ConnectionFailed,
        EndpointUnusable,
        InputError,
        MalformedResponse,
        MliftError,
        PermanentError,
        PromptError,
        ProviderError,
        ProviderTimeout,
        RateLimited,
        RunFolderError,
        ServerError,
        TransientError,
        UnknownNameError,
    )
    from mlift.langs import get_language
    from mlift.pipeline.runner import Pipeline, RunOptions
    from mlift.pipeline.select import Selector
    from mlift.pipeline.sources import read_records
    from mlift.pipeline.stages import Models
    from mlift.prices import Price, PriceTable
    from mlift.prompts import PromptLibrary, PromptTemplate, draw, load_prompts, render
    from mlift.providers.base import Endpoint, Provider
    from mlift.providers.registry import create_provider
    from mlift.records import DatasetRow, Reject, RequestResult, ScoredPair, iter_records
    from mlift.runfolder import Run, RunFolder
    from mlift.runfolder.report import RunReport
    from mlift.sim import SimConfig, SimServer
    from mlift.types import Completion, Message, RateLimitInfo, Request, Usage
