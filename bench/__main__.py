"""`make bench`: performance targets printed as ratios against references measured in the same run.

Nothing here asserts on time; the numbers are for people (and the issue notes).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

BENCHES = {
    "metrics": ("bench.bench_metrics", "bench_metrics"),
    "scifact": ("bench.scifact", "bench_scifact"),
    "generation": ("bench.bench_generation", "bench_generation"),
    "scorers": ("bench.bench_scorers", "bench_scorers"),
    "grounding": ("bench.bench_grounding", "bench_grounding"),
    "monitor": ("bench.bench_monitor", "bench_monitor"),
    "replay": ("bench.bench_replay", "bench_replay"),
    "runs": ("bench.bench_runs", "bench_runs"),
    "scaling": ("bench.bench_scaling", "bench_scaling"),
    "store": ("bench.bench_run_store", "bench_run_store"),
    "ray-scoring": ("bench.bench_ray_scoring", "bench_ray_scoring"),
    "corpus": ("bench.bench_corpus", "bench_corpus"),
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="make bench")
    parser.add_argument("only", nargs="*", help=f"benches to run, of {', '.join(BENCHES)} (default: all)")
    args = parser.parse_args()
    unknown = [n for n in args.only if n not in BENCHES]
    if unknown:
        parser.error(f"unknown bench {unknown[0]!r}; choose from {', '.join(BENCHES)}")
    from harness.errors import HarnessError

    results = {}
    for name in args.only or list(BENCHES):
        module, attr = BENCHES[name]
        print(f"== {name}", file=sys.stderr, flush=True)
        try:
            results[name] = getattr(importlib.import_module(module), attr)()
        except HarnessError as exc:  # bad settings (e.g. GROUNDING_JUDGE): one line, exit 2
            print(f"error: bench {name}: {exc}", file=sys.stderr)
            sys.exit(2)
        print(json.dumps({name: results[name]}, indent=2), flush=True)


if __name__ == "__main__":
    main()
