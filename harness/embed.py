"""Embeddings with sentence-transformers, normalized, cached per text on disk.

The cache key of one vector is the hash of (model pin, max sequence length, prefix, text): exactly
what determines it. A second build over the same corpus embeds nothing new; a corpus that grew
embeds only its new documents. The model is loaded lazily, only when something is missing.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from harness.cache import Cache
from harness.hashing import sha256_parts
from harness.progress import NULL_PROGRESS, Progress

_CHUNK = 256  # texts per encode call between progress updates (after sorting by length)


class HashingEncoder:
    """A deterministic bag-of-words encoder (feature hashing, L2-normalized), with no model weights.

    It makes pipeline tests fast and exact, and serves as an offline lexical baseline. Tokens are
    lower-cased word characters; each token adds 1 to dimension ``blake2b(token) mod dim``.
    """

    def __init__(self, dim: int = 512) -> None:
        self.dim = dim

    def encode(self, texts: list[str], **_: Any) -> np.ndarray:
        import hashlib
        import re

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for tok in re.findall(r"\w+", text.lower()):
                h = int.from_bytes(hashlib.blake2b(tok.encode(), digest_size=8).digest(), "little")
                out[row, h % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)


class Embedder:
    def __init__(
        self,
        model_dir: Path | None,
        model_pin: str,
        cache: Cache,
        *,
        batch_size: int = 32,
        max_seq_length: int | None = None,
        backend: str = "sentence-transformers",
        dim: int = 512,
        progress: Progress = NULL_PROGRESS,
    ) -> None:
        self.backend = backend
        self.dim = dim
        self.model_dir = model_dir
        self.model_pin = model_pin
        self.cache = cache
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self.progress = progress
        self._model: Any = None
        self.encoded = 0
        self.encode_seconds = 0.0
        self.load_seconds = 0.0

    def _load(self) -> Any:
        if self._model is None:
            t0 = time.perf_counter()
            if self.backend == "hashing":
                self._model = HashingEncoder(self.dim)
                return self._model
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            hf_logging.set_verbosity_error()

            self._model = SentenceTransformer(str(self.model_dir), device="cpu")
            if self.max_seq_length is not None:
                self._model.max_seq_length = self.max_seq_length
            self.load_seconds = time.perf_counter() - t0
        return self._model

    def key(self, prefix: str, text: str) -> str:
        return sha256_parts(self.backend, self.model_pin, str(self.max_seq_length), prefix, text)

    def embed(self, texts: list[str], prefix: str = "", description: str = "embedding") -> np.ndarray:
        """Normalized float32 vectors, one row per text, from the cache where possible."""
        keys = [self.key(prefix, t) for t in texts]
        found = self.cache.get_many("embeddings", keys)
        missing = sorted({k: i for i, k in enumerate(keys) if k not in found}.values(),
                         key=lambda i: -len(texts[i]))
        if missing:
            model = self._load()
            t0 = time.perf_counter()
            with self.progress.task(description, len(missing)) as advance:
                for start in range(0, len(missing), _CHUNK):
                    idx = missing[start : start + _CHUNK]
                    new: dict[str, bytes] = {}
                    # one model batch per encode call, so the bar (rate, ETA) moves per batch
                    for b in range(0, len(idx), self.batch_size):
                        batch = idx[b : b + self.batch_size]
                        vecs = model.encode(
                            [prefix + texts[i] for i in batch],
                            batch_size=self.batch_size,
                            normalize_embeddings=True,
                            convert_to_numpy=True,
                            show_progress_bar=False,
                        ).astype(np.float32, copy=False)
                        new.update({keys[i]: vecs[j].tobytes() for j, i in enumerate(batch)})
                        advance(len(batch))
                    self.cache.put_many("embeddings", new)
                    found.update(new)
            self.encoded += len(missing)
            self.encode_seconds += time.perf_counter() - t0
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([np.frombuffer(found[k], dtype=np.float32) for k in keys])
