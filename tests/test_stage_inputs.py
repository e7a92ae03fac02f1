"""Stages take typed inputs, not the manifest: a stage built from its inputs record alone (files on disk,
no manifest, no LoadedManifest) retrieves and generates exactly what the pipeline does, under the same
cache keys, and a recipe error it finds at run time names the right file:line and field."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from harness.cache import Cache
from harness.contracts import load_contracts
from harness.errors import InputError
from harness.generate.stage import EngineConfig, GenerationInputs, GenerationStage
from harness.golden import load_corpus, load_golden
from harness.hashing import sha256_file
from harness.index import IndexStore, normalize_recipe
from harness.manifest import LoadedManifest, load_manifest
from harness.pipeline import run_manifest, stage_inputs
from harness.prompts import PromptTemplate
from harness.retrieve import EmbeddingConfig, RecipeSource, RetrievalInputs, RetrievalStage, RetrieverConfig
from harness.storage import Layout
from harness.types import Manifest
from tests.conftest import add_generation, make_project


def forbid_manifest(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on, any call back into the manifest fails the test."""

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("a stage read the manifest")

    monkeypatch.setattr(LoadedManifest, "resolve", refuse)
    monkeypatch.setattr(Manifest, "artifact", refuse)


def _retrieval_inputs(root: Path, recipe_file: str = "flat.toml") -> RetrievalInputs:
    """The tiny project's retrieval inputs, written out by hand from its files."""
    recipe_path = root / "indexes" / recipe_file
    return RetrievalInputs(
        config=RetrieverConfig(k=5, text_fields=("title", "text")),
        embedding=EmbeddingConfig(backend="hashing", dim=64),
        recipe=normalize_recipe(tomllib.loads(recipe_path.read_text())),
        source=RecipeSource.read(root / "harness.toml", recipe_path, frozenset()),
        model_dir=None,
        corpus_pin=sha256_file(root / "golden" / "corpus.jsonl"),
    )


def test_edge_resolves_what_a_stage_is_handed(tmp_path: Path) -> None:
    root = tmp_path / "p"
    make_project(root)
    add_generation(root)
    inputs = stage_inputs(load_manifest(root / "harness.toml"))
    assert inputs.retrieval == _retrieval_inputs(root)
    assert inputs.generation is not None
    assert inputs.generation.engine == EngineConfig(name="extractive", n_passages=3)
    assert inputs.generation.args == {} and inputs.generation.contracts is inputs.contracts
    assert inputs.contracts is not None and set(inputs.contracts.contracts) == {"json_cited", "short_plain"}
    assert {s.artifact.kind: s.path for s in inputs.snapshots} == {
        "golden": root / "golden" / "cases.jsonl", "corpus": root / "golden" / "corpus.jsonl",
        "index_recipe": root / "indexes" / "flat.toml", "prompt": root / "prompts" / "answer.toml",
        "validators": root / "validators"}
    assert all(s.confine == root for s in inputs.snapshots)


def test_stages_built_from_their_inputs_alone_match_the_pipeline(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "p"
    make_project(root)
    add_generation(root)
    piped = run_manifest(root / "harness.toml").run
    forbid_manifest(monkeypatch)
    corpus = load_corpus(root / "golden" / "corpus.jsonl")
    cases = load_golden(root / "golden" / "cases.jsonl")
    docs = {d.id: d for d in corpus}

    fresh = Cache(tmp_path / "fresh.sqlite")
    retrieval = RetrievalStage(_retrieval_inputs(root), fresh, IndexStore(tmp_path / "indexes")).run(cases, corpus)
    assert retrieval.stats["cases_retrieved"] == len(cases) and not retrieval.errors
    assert {o.case_id: list(o.ranking) for o in piped.outputs} == retrieval.rankings

    gen_inputs = GenerationInputs(template=PromptTemplate.load(root / "prompts" / "answer.toml"),
                                  engine=EngineConfig(name="extractive", n_passages=3), args={},
                                  contracts=load_contracts(root / "validators"))
    generation = GenerationStage(gen_inputs, fresh).run(cases, retrieval.rankings, docs)
    assert generation.stats["generated"] == len(cases) and not generation.errors
    assert {o.case_id: o.answer for o in piped.outputs} == generation.answers
    assert {o.case_id: list(o.messages) for o in piped.outputs} == generation.messages
    fresh.close()

    # Same cache keys as the pipeline's: against its cache, nothing is retrieved or generated again.
    layout = Layout.for_manifest(root / "harness.toml")
    cache = Cache(layout.cache_db)
    again = RetrievalStage(_retrieval_inputs(root), cache, IndexStore(layout.index_store)).run(cases, corpus)
    assert again.stats["cases_retrieved"] == 0 and all(again.cache_hit.values())
    regen = GenerationStage(gen_inputs, cache).run(cases, again.rankings, docs)
    assert regen.stats["generated"] == 0 and regen.answers == generation.answers
    cache.close()


def test_recipe_error_at_run_time_names_the_recipe_file_line_and_field(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """IVF256 cannot be trained on 6 documents: found while building the index, reported at the recipe."""
    root = tmp_path / "p"
    make_project(root, lock=False)
    forbid_manifest(monkeypatch)
    (root / "indexes" / "ivf.toml").write_text('# too many lists\ntype = "factory"\nfactory = "IVF256,Flat"\n')
    stage = RetrievalStage(_retrieval_inputs(root, "ivf.toml"), Cache(tmp_path / "c.sqlite"),
                           IndexStore(tmp_path / "indexes"))
    corpus = load_corpus(root / "golden" / "corpus.jsonl")
    with pytest.raises(InputError) as info:
        stage.run(load_golden(root / "golden" / "cases.jsonl"), corpus)
    err = info.value
    assert (err.path, err.line, err.field) == (str(root / "indexes" / "ivf.toml"), 3, "factory")
    assert "cannot be trained on this corpus (6 documents)" in err.message


def test_recipe_key_set_in_the_manifest_is_reported_at_the_manifest(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The same error for a key the manifest's index params set over the recipe file: its line there."""
    root = tmp_path / "p"
    make_project(root, lock=False)
    forbid_manifest(monkeypatch)
    manifest = root / "harness.toml"
    overlay = 'params = { factory = "IVF256,Flat" }'
    manifest.write_text(manifest.read_text().replace('path = "indexes/flat.toml"',
                                                     f'path = "indexes/flat.toml"\n{overlay}'))
    inputs = _retrieval_inputs(root)
    inputs = RetrievalInputs(config=inputs.config, embedding=inputs.embedding,
                             recipe=normalize_recipe({"type": "factory", "factory": "IVF256,Flat"}),
                             source=RecipeSource.read(manifest, root / "indexes" / "flat.toml", frozenset({"factory"})),
                             model_dir=None, corpus_pin=inputs.corpus_pin)
    stage = RetrievalStage(inputs, Cache(tmp_path / "c.sqlite"), IndexStore(tmp_path / "indexes"))
    with pytest.raises(InputError) as info:
        stage.run(load_golden(root / "golden" / "cases.jsonl"), load_corpus(root / "golden" / "corpus.jsonl"))
    line = manifest.read_text().splitlines().index(overlay) + 1
    assert (info.value.path, info.value.line, info.value.field) == (str(manifest), line,
                                                                     "artifacts.index.params.factory")
