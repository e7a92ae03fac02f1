"""Build small locked projects for tests and benchmarks: a golden set, a corpus, index recipes and a manifest
whose retrieval artifacts (golden, corpus, the weightless hashing embedder, an index recipe, a retriever) are
the same five tables everywhere.

:class:`ProjectSpec` renders the manifest; :func:`write_project` writes it with its files and locks it;
:func:`artifact_table` renders one ``[artifacts.<role>]`` table (for the generation artifacts a caller adds);
:func:`write_jsonl` writes rows a line at a time, so a generator of a million cases is never held whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

__all__ = ["ProjectSpec", "artifact_table", "write_jsonl", "write_project"]


def write_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """One JSON object a line, the folder made first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")


def artifact_table(role: str, kind: str, *, version: str | None = None, path: str | None = None,
                   params: str | None = None) -> str:
    """``[artifacts.<role>]`` with the keys given, in the order kind, version, path, params (an inline TOML
    table, as written)."""
    lines = [f"[artifacts.{role}]", f'kind = "{kind}"']
    lines += [f'{key} = "{value}"' for key, value in (("version", version), ("path", path)) if value is not None]
    if params is not None:
        lines.append(f"params = {params}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ProjectSpec:
    """A manifest over ``golden/cases.jsonl``, ``golden/corpus.jsonl``, ``<index_dir><recipe>.toml`` (paths
    behind ``prefix``, e.g. ``../`` for a variant manifest one folder down), the hashing embedder of ``dim``
    dimensions and a top-``k`` retriever; then ``extra`` artifact tables, ``[metrics] retrieval`` and ``tail``
    (raw TOML after the metrics: gates, ``[monitor]``)."""

    name: str
    comment: str | None = None
    golden_version: str = "1"
    dim: int = 64
    recipe: str = "flat"
    index_dir: str = "indexes/"
    k: int = 5
    metrics: Sequence[str] = ("ndcg@10", "recall@5")
    prefix: str = ""
    extra: Sequence[str] = ()
    tail: str = ""

    def artifacts(self) -> list[str]:
        p = self.prefix
        return [
            artifact_table("golden", "golden", version=self.golden_version, path=f"{p}golden/cases.jsonl"),
            artifact_table("corpus", "corpus", version="1", path=f"{p}golden/corpus.jsonl"),
            artifact_table("embedding", "embedding_model", version=f"hashing-{self.dim}",
                           params=f'{{ backend = "hashing", dim = {self.dim} }}'),
            artifact_table("index", "index_recipe", version=self.recipe,
                           path=f"{p}{self.index_dir}{self.recipe}.toml"),
            artifact_table("retriever", "retriever", version="1",
                           params=f'{{ k = {self.k}, text_fields = ["title", "text"] }}'),
            *self.extra,
        ]

    def manifest(self) -> str:
        head = (f"# {self.comment}\n" if self.comment else "") + f'schema_version = 1\nname = "{self.name}"\n'
        metrics = "[metrics]\nretrieval = [" + ", ".join(json.dumps(m) for m in self.metrics) + "]\n"
        return "\n".join([head, *self.artifacts(), metrics]) + self.tail

    def template(self, *fields: str) -> str:
        """The manifest as a ``str.format`` template with the string ``fields`` (e.g. ``recipe``) left open."""
        marks: dict[str, Any] = {f: f"\0{f}\0" for f in fields}
        text = replace(self, **marks).manifest().replace("{", "{{").replace("}", "}}")
        for f, mark in marks.items():
            text = text.replace(mark, "{" + f + "}")
        return text


def write_project(root: Path, spec: ProjectSpec, *, docs: Iterable[Mapping[str, Any]],
                  cases: Iterable[Mapping[str, Any]], recipes: Mapping[str, str], lock: bool = True) -> Path:
    """Write ``docs`` and ``cases`` (the corpus first, so ``cases`` may be a generator that reads what ``docs``
    produced), each of ``recipes`` (name -> TOML) under ``spec.index_dir`` and ``harness.toml``; lock it unless
    told not to. Returns the manifest's path."""
    write_jsonl(root / "golden" / "corpus.jsonl", docs)
    write_jsonl(root / "golden" / "cases.jsonl", cases)
    for name, text in recipes.items():
        path = root / spec.index_dir / f"{name}.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    manifest = root / "harness.toml"
    manifest.write_text(spec.manifest())
    if lock:
        from harness.manifest import lock as do_lock

        do_lock(manifest)
    return manifest
