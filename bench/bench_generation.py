"""Generation engine throughput against the fake OpenAI server answering in a fixed 200 ms.

Reference: the ideal wall time of N requests at concurrency C with latency L is N / C * L (the
server does no work, so anything above it is the engine's and the client's overhead: scheduling,
HTTP, JSON, cache writes). Target: elapsed / ideal <= 1.2 for 300 requests at concurrency 16,
fresh cache, through the real ``openai`` client.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path


def bench_generation(n: int = 300, concurrency: int = 16, latency_s: float = 0.2) -> dict[str, float]:
    import openai  # noqa: F401 - a one-time import (~0.7 s) is start-up, like the interpreter's: not timed

    from harness.cache import Cache
    from harness.generate import GENERATORS, GenerationRequest, generate_all
    from harness.testing import FakeOpenAIServer

    requests = [
        GenerationRequest(case_id=f"q{i}", messages=(
            {"role": "system", "content": "Answer from the passages; cite them as [id]."},
            {"role": "user", "content": f"[d{i}] Passage {i} says the answer is {i}.\nQuestion {i}?"},
        ))
        for i in range(n)
    ]
    os.environ.pop("OPENAI_BASE_URL", None)
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAIServer(latency_s=latency_s) as srv:
        generator = GENERATORS.build("openai", {"base_url": srv.base_url, "model": "fake-model", "temperature": 0})
        cache = Cache(Path(tmp) / "cache.sqlite")
        try:
            t0 = time.perf_counter()
            results = generate_all(generator, requests, cache, concurrency=concurrency)
            elapsed = time.perf_counter() - t0
        finally:
            cache.close()
        errors = sum(r.error is not None for r in results)
        max_in_flight = srv.max_in_flight
    ideal = n / concurrency * latency_s
    return {"elapsed_s": round(elapsed, 3), "ideal_s": round(ideal, 3), "ratio": round(elapsed / ideal, 3),
            "errors": float(errors), "max_in_flight": float(max_in_flight)}


if __name__ == "__main__":
    import json

    print(json.dumps(bench_generation(), indent=2))
