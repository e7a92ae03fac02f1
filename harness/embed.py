"""Embeddings with sentence-transformers, normalized, cached per text on disk.

The cache key of one vector is the hash of (model pin, max sequence length, prefix, text): exactly
what determines it. A second build over the same corpus embeds nothing new; a corpus that grew
embeds only its new documents. The model is loaded lazily, only when something is missing.

Where the missing vectors are computed is not part of their identity: this process, or a
:class:`RemoteEncoder` (the Ray engine, :mod:`harness.engine`) whose workers load the model with the same
:class:`EncoderSpec` and encode with the same :func:`encode_batch`; the vectors land in the same cache
under the same keys either way, so a run on one engine warms the other.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from harness.cache import Cache
from harness.hashing import sha256_parts
from harness.progress import NULL_PROGRESS, Progress

_CHUNK = 256  # texts per encode call between progress updates (after sorting by length)


class HashingEncoder:
    """A deterministic bag-of-words encoder (feature hashing, L2-normalized), with no model weights.

    It makes pipeline tests fast and exact, and serves as an offline lexical baseline. Tokens are
    lower-cased word characters; each token adds 1 to dimension ``blake2b(token) mod dim``. A token's
    dimension is hashed once per encoder (up to :data:`_BUCKETS_MAX` distinct tokens remembered; the memo is
    emptied when full) and a batch's counts are one ``bincount``: the same vectors, bit for bit, as adding 1
    token by token (a count of at most 2**24 is exact in float32).
    """

    def __init__(self, dim: int = 512) -> None:
        self.dim = dim
        self._buckets = _Buckets(dim)

    def __getstate__(self) -> dict[str, Any]:
        return {"dim": self.dim}  # the memo is rebuilt where it is used

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["dim"])  # type: ignore[misc]

    def encode(self, texts: list[str], **_: Any) -> np.ndarray:
        n, dim = len(texts), self.dim
        if n == 0:
            return np.zeros((0, dim), dtype=np.float32)
        lookup = self._buckets.__getitem__
        findall = _WORD.findall
        lengths = np.empty(n, dtype=np.int64)
        flat: list[int] = []
        for row, text in enumerate(texts):
            buckets = list(map(lookup, findall(text.lower())))
            lengths[row] = len(buckets)
            flat.extend(buckets)
        cells = np.asarray(flat, dtype=np.int64) + np.repeat(np.arange(n, dtype=np.int64) * dim, lengths)
        out = np.bincount(cells, minlength=n * dim).reshape(n, dim).astype(np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)


_WORD = re.compile(r"\w+")
_BUCKETS_MAX = 1 << 20
"""Distinct tokens a :class:`HashingEncoder` remembers the dimension of (about 100 MB at most)."""


class _Buckets(dict[str, int]):
    """token -> ``blake2b(token) mod dim``, computed on first sight."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def __missing__(self, token: str) -> int:
        if len(self) >= _BUCKETS_MAX:
            self.clear()
        bucket = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little") % self.dim
        self[token] = bucket
        return bucket


@dataclass(frozen=True)
class EncoderSpec:
    """What loading an encoder takes, picklable so a remote worker loads the very model this process would."""

    backend: str
    model_dir: str | None
    max_seq_length: int | None
    dim: int
    batch_size: int

    def load(self) -> Any:
        """The encoder: the hashing encoder, or the sentence-transformers model on the CPU."""
        if self.backend == "hashing":
            return HashingEncoder(self.dim)
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        model = SentenceTransformer(str(self.model_dir), device="cpu")
        if self.max_seq_length is not None:
            model.max_seq_length = self.max_seq_length
        return model


def encode_batch(model: Any, texts: list[str], batch_size: int) -> np.ndarray:
    """Normalized float32 vectors of ``texts`` (prefix included), as every engine computes them."""
    return np.asarray(model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                                   show_progress_bar=False), dtype=np.float32)


class RemoteEncoder(Protocol):
    """Encodes texts elsewhere (a Ray cluster): yields (positions in ``texts``, their vectors) batch by batch,
    in any order; a failure is raised as a :class:`~harness.errors.HarnessError`."""

    def encode(self, texts: Sequence[str], spec: EncoderSpec) -> Iterator[tuple[np.ndarray, np.ndarray]]: ...


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
        remote: RemoteEncoder | None = None,
    ) -> None:
        self.backend = backend
        self.remote = remote
        self.dim = dim
        self.model_dir = model_dir
        self.model_pin = model_pin
        self.cache = cache
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self.progress = progress
        self._model: Any = None
        self.encoded = 0
        self.encoded_remote = 0
        self.encode_seconds = 0.0
        self.load_seconds = 0.0

    @property
    def spec(self) -> EncoderSpec:
        return EncoderSpec(self.backend, None if self.model_dir is None else str(self.model_dir), self.max_seq_length,
                           self.dim, self.batch_size)

    def _load(self) -> Any:
        if self._model is None:
            t0 = time.perf_counter()
            self._model = self.spec.load()
            self.load_seconds = time.perf_counter() - t0
        return self._model

    def key(self, prefix: str, text: str) -> str:
        return sha256_parts(self.backend, self.model_pin, str(self.max_seq_length), prefix, text)

    def embed(self, texts: list[str], prefix: str = "", description: str = "embedding", *,
              remote_min: int | None = None) -> np.ndarray:
        """Normalized float32 vectors, one row per text, from the cache where possible. With a remote encoder
        and ``remote_min`` set, at least that many missing texts are encoded remotely (else here)."""
        keys = [self.key(prefix, t) for t in texts]
        found = self.cache.get_many("embeddings", keys)
        missing = sorted({k: i for i, k in enumerate(keys) if k not in found}.values(),
                         key=lambda i: -len(texts[i]))
        if missing:
            t0 = time.perf_counter()
            if self.remote is not None and remote_min is not None and len(missing) >= remote_min:
                self._embed_remote(texts, keys, missing, prefix, description, found)
            else:
                self._embed_here(texts, keys, missing, prefix, description, found)
            self.encoded += len(missing)
            self.encode_seconds += time.perf_counter() - t0
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([np.frombuffer(found[k], dtype=np.float32) for k in keys])

    def _embed_here(self, texts: list[str], keys: list[str], missing: list[int], prefix: str, description: str,
                    found: dict[str, bytes]) -> None:
        model = self._load()
        with self.progress.task(description, len(missing)) as advance:
            for start in range(0, len(missing), _CHUNK):
                idx = missing[start : start + _CHUNK]
                new: dict[str, bytes] = {}
                # one model batch per encode call, so the bar (rate, ETA) moves per batch
                for b in range(0, len(idx), self.batch_size):
                    batch = idx[b : b + self.batch_size]
                    vecs = encode_batch(model, [prefix + texts[i] for i in batch], self.batch_size)
                    new.update({keys[i]: vecs[j].tobytes() for j, i in enumerate(batch)})
                    advance(len(batch))
                self.cache.put_many("embeddings", new)
                found.update(new)

    def _embed_remote(self, texts: list[str], keys: list[str], missing: list[int], prefix: str, description: str,
                      found: dict[str, bytes]) -> None:
        """The missing texts (longest first, as here) through the remote encoder; each batch that comes back is
        written to the cache at once, so a failure later keeps what was done."""
        assert self.remote is not None
        with self.progress.task(f"{description} (ray)", len(missing)) as advance:
            for pos, vecs in self.remote.encode([prefix + texts[i] for i in missing], self.spec):
                new = {keys[missing[int(p)]]: np.asarray(v, dtype=np.float32).tobytes()
                       for p, v in zip(pos.tolist(), vecs, strict=True)}
                self.cache.put_many("embeddings", new)
                found.update(new)
                self.encoded_remote += len(new)
                advance(len(new))
        lost = [i for i in missing if keys[i] not in found]
        if lost:  # a remote encoder that drops rows is broken: never an index with holes
            from harness.errors import HarnessError

            raise HarnessError(f"remote embedding returned no vector for {len(lost)} of {len(missing)} texts "
                               f"(first: {texts[lost[0]][:60]!r})")
