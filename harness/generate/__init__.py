"""The generation stage: rendered requests in, one cached, retried, counted result per case out.

``generate_all(generator, requests, cache)`` is the engine (see :mod:`harness.generate.engine`);
generators register in :data:`GENERATORS` and are rebuilt from their ``{"name", "args"}`` spec.
"""

from harness.generate.base import (
    FATAL_KINDS,
    GENERATORS,
    RETRYABLE_KINDS,
    GenerationError,
    GenerationRequest,
    GenerationResult,
    Generator,
)
from harness.generate.engine import RetryPolicy, agenerate_all, cache_key, generate_all
from harness.generate.openai_gen import OpenAIGenerator, parse_retry_after

__all__ = [
    "FATAL_KINDS",
    "GENERATORS",
    "RETRYABLE_KINDS",
    "GenerationError",
    "GenerationRequest",
    "GenerationResult",
    "Generator",
    "OpenAIGenerator",
    "RetryPolicy",
    "agenerate_all",
    "cache_key",
    "generate_all",
    "parse_retry_after",
]
