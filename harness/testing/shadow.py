"""A project and production traffic for testing the release checks (replay, canary, incident) offline.

:func:`write_shadow_project` writes a locked project over the synthetic stream's corpus
(:mod:`harness.monitor.synthetic`): the weightless hashing embedder, a flat index, an ``openai`` generator
pointed at a local :class:`~harness.testing.fake_openai.FakeOpenAIServer`, a JSON output contract, and
variants a release check must tell apart:

- ``harness.toml``: the baseline;
- ``variants/neutral.toml``: the prompt reworded, same contract (a neutral change: must pass);
- ``variants/format-broken.toml``: the prompt drops the contract's format line, so the answers stop being
  JSON (format failures up: must fail);
- ``variants/coarse-ivf.toml``: a coarse IVF index (many lists, one probed): retrieval scores and
  groundedness down (must fail);
- ``variants/same-seed-<n>.toml`` (``aa_variants``): the baseline with another generator ``seed``, i.e.
  another cache key and manifest id for the same system (A/A pairs; :func:`shadow_responder` with
  ``noisy=True`` makes the answer depend on the seed, as sampling would).

:func:`shadow_responder` answers like a chat model that follows the format line: JSON
``{"answer", "citations"}`` when the prompt asks for JSON, plain text otherwise, from the first passage.
:func:`logged_traffic` writes the synthetic stream as a JSONL log whose records carry the contract and
the manifest id that served them (a share of them served by a canary).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.monitor.synthetic import StreamSpec, corpus, golden_cases, records
from harness.testing.project import ProjectSpec, artifact_table, write_jsonl

__all__ = ["ShadowProject", "distractors", "logged_traffic", "shadow_responder", "write_shadow_project"]

CONTRACT = "json_cited"

CONTRACTS_TOML = '''[contracts.json_cited]
description = "A JSON object with the answer and the ids of the passages that support it."
format = "json"
answer_field = "answer"
citations_field = "citations"
prompt = """Reply with only a JSON object {"answer": "<answer>", "citations": ["<passage id>"]}."""
checks = [
  { type = "json", name = "parses" },
  { type = "citations", name = "cites_retrieved", field = "citations", min_citations = 1 },
]
'''

PROMPT_TOML = '''[[messages]]
role = "system"
content = "{system}"

[[messages]]
role = "user"
content = """Passages:
{{% for p in passages %}}[{{{{ p.id }}}}] {{{{ p.text }}}}
{{% endfor %}}
Question: {{{{ query }}}}
{format_line}"""
'''
FORMAT_LINE = "{% if contract %}Format: {{ contract.prompt }}{% endif %}"
SYSTEM = "Answer from the passages only."
SYSTEM_NEUTRAL = "Use only the passages given to answer; say so when they do not hold the answer."

_CITED = re.compile(r"\[([A-Za-z0-9_.:\-]+)\]\s*([^\n]*)")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


JSON_MARKER = "Reply with only a JSON object"
HALLUCINATION = "Yes, that is available on every plan and takes effect within 24 hours."
_WORD = re.compile(r"[a-z0-9]{4,}")


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def shadow_responder(*, noisy: bool = False, min_overlap: float = 0.2) -> Callable[[Mapping[str, Any]], str]:
    """A fake chat model for :class:`~harness.testing.fake_openai.FakeOpenAIServer` that behaves like one in
    the ways the release checks measure: it answers with the first sentence of the cited passage sharing
    most words with the question, cites it, and writes JSON exactly when the prompt carries the contract's
    format line. When no passage shares ``min_overlap`` of the question's words it answers from "memory"
    (:data:`HALLUCINATION`: fluent and unsupported), as a model shown the wrong passages does. ``noisy``
    picks the best or the second-best passage by a hash of the prompt and the request's ``seed``, so two
    seeds of one system disagree at random (A/A pairs)."""

    def respond(body: Mapping[str, Any]) -> str:
        prompt = "\n".join(str(m.get("content", "")) for m in body.get("messages") or () if isinstance(m, Mapping))
        question = prompt.rsplit("Question:", 1)[-1].split("\n", 1)[0]
        q = _words(question)
        cited = [(i, t.strip()) for i, t in _CITED.findall(prompt) if t.strip()]
        ranked = sorted(cited, key=lambda c: -len(q & _words(c[1])))
        pick = 0
        if noisy and len(ranked) > 1:
            pick = hashlib.sha256(f"{body.get('seed')}\n{prompt}".encode()).digest()[0] % 2
        if not ranked or not q or len(q & _words(ranked[pick][1])) < min_overlap * len(q):
            doc, sentence = (ranked[0][0] if ranked else ""), HALLUCINATION
        else:
            doc, text = ranked[pick]
            sentence = _SENTENCE_END.split(text, maxsplit=1)[0]
        if JSON_MARKER in prompt:
            return json.dumps({"answer": sentence, "citations": [doc] if doc else []})
        return f"{sentence} [{doc}]" if doc else sentence

    return respond


def distractors(spec: StreamSpec, n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` filler documents (``filler-<i>``) made of sentences drawn from the corpus, so an index has
    enough documents for coarse inverted lists to lose neighbours."""
    import random

    rng = random.Random(seed)
    sentences = [x for d in corpus(spec) for x in _SENTENCE_END.split(str(d["text"])) if x.strip()]
    return [{"id": f"filler-{i:05d}", "title": "Notes", "text": " ".join(rng.sample(sentences, 3))}
            for i in range(n)]


@dataclass(frozen=True)
class ShadowProject:
    root: Path
    baseline: Path  # harness.toml
    neutral: Path
    format_broken: Path
    coarse_ivf: Path
    aa: tuple[Path, ...] = field(default=())  # variants/same-seed-<n>.toml


def _manifest(name: str, *, prompt: str, index: str, generator: str, rel: str, segments: Sequence[str]) -> str:
    segs = ", ".join(json.dumps(s) for s in segments)
    extra = (artifact_table("prompt", "prompt", version=prompt, path=f"{rel}prompts/{prompt}.toml"),
             artifact_table("validators", "validators", version="1", path=f"{rel}validators"),
             artifact_table("generator", "generator", version="fake-chat", params=generator))
    return ProjectSpec(name=name, dim=256, recipe=index, prefix=rel, extra=extra,
                       tail=f"\n[monitor]\nsegments = [{segs}]\n").manifest()


def write_shadow_project(folder: str | Path, *, base_url: str, spec: StreamSpec | None = None,
                         concurrency: int = 16, aa_variants: int = 0,
                         segments: Sequence[str] = ("geo", "device"), n_distractors: int = 1500) -> ShadowProject:
    """Write and lock the project described in the module docstring into ``folder``; ``base_url`` is the
    fake server's (``FakeOpenAIServer.base_url``). Returns the manifests' paths."""
    from harness.manifest import lock

    spec = spec or StreamSpec(days=3, records_per_day=400)
    root = Path(folder)
    write_jsonl(root / "golden" / "corpus.jsonl", corpus(spec) + distractors(spec, n_distractors))
    write_jsonl(root / "golden" / "cases.jsonl", golden_cases(spec, 4))
    (root / "indexes").mkdir(exist_ok=True)
    (root / "indexes" / "flat.toml").write_text('type = "flat"\nmetric = "ip"\n')
    (root / "indexes" / "ivf-coarse.toml").write_text('type = "ivf"\nmetric = "ip"\nnlist = 32\nnprobe = 1\n')
    (root / "validators").mkdir(exist_ok=True)
    (root / "validators" / "contracts.toml").write_text(CONTRACTS_TOML)
    (root / "prompts").mkdir(exist_ok=True)
    for name, system, line in (("answer", SYSTEM, FORMAT_LINE), ("answer-neutral", SYSTEM_NEUTRAL, FORMAT_LINE),
                               ("answer-plain", SYSTEM, "")):
        (root / "prompts" / f"{name}.toml").write_text(PROMPT_TOML.format(system=system, format_line=line))

    def generator(seed: int) -> str:
        return (f'{{ name = "openai", model = "fake-chat", base_url = "{base_url}", temperature = 0, '
                f'seed = {seed}, max_tokens = 200, concurrency = {concurrency}, timeout_s = 30 }}')

    paths: dict[str, Path] = {}
    variants = {
        "baseline": ("harness.toml", "answer", "flat", 7),
        "neutral": ("variants/neutral.toml", "answer-neutral", "flat", 7),
        "format_broken": ("variants/format-broken.toml", "answer-plain", "flat", 7),
        "coarse_ivf": ("variants/coarse-ivf.toml", "answer", "ivf-coarse", 7),
    }
    for i in range(aa_variants):
        variants[f"aa{i}"] = (f"variants/same-seed-{i}.toml", "answer", "flat", 100 + i)
    for key, (rel_path, prompt, index, seed) in variants.items():
        path = root / rel_path
        path.parent.mkdir(parents=True, exist_ok=True)
        rel = "../" if "/" in rel_path else ""
        path.write_text(_manifest(f"shadow-{key}", prompt=prompt, index=index, generator=generator(seed), rel=rel,
                                  segments=segments))
        lock(path)
        paths[key] = path
    return ShadowProject(root=root, baseline=paths["baseline"], neutral=paths["neutral"],
                         format_broken=paths["format_broken"], coarse_ivf=paths["coarse_ivf"],
                         aa=tuple(paths[f"aa{i}"] for i in range(aa_variants)))


def logged_traffic(spec: StreamSpec, path: str | Path, *, manifest_id: str, canary_id: str | None = None,
                   canary_share: float = 0.0, canary_start_day: int = 0,
                   edit: Callable[[dict[str, Any], bool], dict[str, Any]] | None = None,
                   contract: str | None = CONTRACT, limit: int | None = None) -> Path:
    """The stream's records as a JSONL log: each names the contract its answer had to meet and the manifest
    id that served it. From day ``canary_start_day`` a seeded ``canary_share`` of records is served by
    ``canary_id``; ``edit(record, is_canary)`` may change a record (inject what a bad candidate does).
    Returns the path."""
    import random
    from datetime import date

    rng = random.Random(spec.seed + 7919)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    start = spec.start.toordinal()
    with out.open("w", encoding="utf-8") as fh:
        for n, rec in enumerate(records(spec)):
            if limit is not None and n >= limit:
                break
            ts = str(rec["timestamp"])
            day_index = date.fromisoformat(ts[:10]).toordinal() - start
            is_canary = (canary_id is not None and day_index >= canary_start_day
                         and rng.random() < canary_share)
            rec = dict(rec)
            rec["manifest_id"] = canary_id if is_canary else manifest_id
            if contract is not None:
                rec["contract"] = contract
                if contract == CONTRACT and isinstance(rec.get("answer"), str):
                    cited = [d["doc_id"] if isinstance(d, Mapping) else str(d) for d in rec.get("retrieved") or ()][:1]
                    rec["answer"] = json.dumps({"answer": rec["answer"], "citations": cited})
            if edit is not None:
                rec = edit(rec, is_canary)
            fh.write(json.dumps(rec, default=str) + "\n")
    return out
