"""The human-labelled faithfulness sets the groundedness model is fit and measured on.

Rows are JSON lines with ``response``, ``context`` (a string or a list of passages), ``supported``
and optional ``meta``; the files live in the shared data folder beside the project
(``../shared/data/faithfulness``). The dev splits are the only data the model is fit on
(:mod:`harness.grounding.fit`); the test sets are only measured (``make bench grounding``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "faithfulness"

DEV_SETS: dict[str, list[str]] = {
    "attributionbench_dev_id": ["attributionbench/attributionbench_dev_id.jsonl"],
    "wice_claim_dev": ["wice/wice_claim_dev.jsonl"],
}
SUMMEDITS_DOMAINS = ["ectsum", "news", "podcast", "qmsumm", "sales_call", "sales_email", "samsum", "scitldr"]
TEST_SETS: dict[str, list[str]] = {
    "attributionbench_test_id": ["attributionbench/attributionbench_test_id_sampled500.jsonl"],
    "attributionbench_test_ood": ["attributionbench/attributionbench_test_ood.jsonl"],
    "wice_claim_test": ["wice/wice_claim_test.jsonl"],
    "qags_cnndm_sentences": ["qags/qags_cnndm_sentences.jsonl"],
    "qags_xsum_sentences": ["qags/qags_xsum_sentences.jsonl"],
    "summedits_pooled": [f"summedits/summedits_{d}.jsonl" for d in SUMMEDITS_DOMAINS],
    "begin": ["begin/begin.jsonl"],
}


def load_set(files: Sequence[str], cap: int | None, seed: int = 0) -> list[dict[str, Any]]:
    """Rows of the files, deterministically subsampled to ``cap`` (seeded permutation, file order kept)."""
    rows = [json.loads(line) for f in files for line in (DATA / f).open(encoding="utf-8")]
    if cap is not None and len(rows) > cap:
        keep = np.sort(np.random.default_rng(seed).permutation(len(rows))[:cap])
        rows = [rows[int(i)] for i in keep]
    return rows


def as_passages(context: str | list[str]) -> list[str]:
    """A row's context as a list of passages."""
    return [context] if isinstance(context, str) else [str(c) for c in context]
