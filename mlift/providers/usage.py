"""Token usage a server did not report: counted locally, with one warning per provider.

Some compatible servers omit ``usage``. Counting locally (``mlift.tokens``:
exact for OpenAI models, a script-aware approximation otherwise) keeps cost
and the limiter's token accounting honest where 0 would look free.
"""

from __future__ import annotations

import logging

from mlift.providers.base import Endpoint
from mlift.tokens import count_chat_tokens, count_tokens
from mlift.types import Request, Usage

log = logging.getLogger("mlift.providers")


class LocalUsage:
    """Counts a call's tokens locally; warns once per provider instance that it does."""

    def __init__(self, endpoint: Endpoint) -> None:
        self._endpoint = endpoint
        self._warned = False

    def count(self, request: Request, text: str) -> Usage:
        if not self._warned:
            log.warning("%s returned no usage; counting tokens locally (an estimate)",
                        self._endpoint.spec)
            self._warned = True
        model = self._endpoint.model
        return Usage(count_chat_tokens(request.messages, model), count_tokens(text, model))
