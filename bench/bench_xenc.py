"""Cost of the grounding cross-encoder (harness.grounding.xenc): file size, load time and seconds per
claim (window choice + model), against the bundled MiniLM bi-encoder embedding the same claims and
windows in the same run (the reference the groundedness checker already pays).

    python -m bench.bench_xenc [--model FILE] [--claims 200] [--threads 1]

Reads only dev rows (AttributionBench dev_id, WiCE claim_dev). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from harness.grounding import xenc


def bench(model_path: Path, n_claims: int) -> dict[str, Any]:
    from harness.grounding.claims import split_claims
    from harness.grounding.embedder import minilm_embedder
    from harness.grounding.sets import as_passages

    t0 = time.perf_counter()
    model = xenc.load_cross_encoder(model_path)
    load = time.perf_counter() - t0
    if model is None:
        raise SystemExit(f"{model_path}: no model file")
    items: list[tuple[str, list[str]]] = []
    for _, row in xenc._dev_rows():
        for claim in split_claims(row["response"]) or [row["response"]]:
            items.append((claim, as_passages(row["context"])))
        if len(items) >= n_claims:
            break
    items = items[:n_claims]
    t0 = time.perf_counter()
    windows = [xenc.best_window(c, p) for c, p in items]
    t_window = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.logits(list(zip([c for c, _ in items], windows, strict=True)))
    t_model = time.perf_counter() - t0
    embed = minilm_embedder()
    t0 = time.perf_counter()
    embed.embed([c for c, _ in items] + windows)
    t_embed = time.perf_counter() - t0
    return {
        "model": str(model_path), "bytes": model_path.stat().st_size, "layers": model.num_layers,
        "load_seconds": load, "claims": len(items), "window_seconds_per_claim": t_window / len(items),
        "model_seconds_per_claim": t_model / len(items),
        "seconds_per_claim": (t_window + t_model) / len(items),
        "minilm_embed_seconds_per_claim": t_embed / len(items),
        "ratio_to_minilm_embedding": (t_window + t_model) / max(t_embed, 1e-9), "threads": xenc.TORCH_THREADS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(xenc.DEFAULT_MODEL_PATH))
    parser.add_argument("--claims", type=int, default=200)
    parser.add_argument("--threads", type=int, default=xenc.TORCH_THREADS)
    args = parser.parse_args()
    xenc.set_threads(args.threads)
    print(json.dumps(bench(Path(args.model), args.claims), indent=1))


if __name__ == "__main__":
    main()
