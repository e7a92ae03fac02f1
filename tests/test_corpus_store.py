"""The corpus streams: it is validated a batch at a time (harness.corpus.scan_corpus), kept on disk by content in
a passage store that the index reads in batches and generation and the scorers read by id, never loaded whole
by a run. Oracles: harness.golden.load_corpus (the whole-file reader) and a run with the corpus in one batch."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import harness.corpus as corpus_mod
import harness.pipeline as pipeline
from harness.cli import cli
from harness.corpus import DocIds, MemoryCorpus, StoredCorpus, open_corpus, read_docs, scan_corpus, stored_summary
from harness.errors import InputError, IntegrityError
from harness.golden import load_corpus
from harness.manifest import lock
from harness.storage import Layout
from tests.conftest import add_generation, make_project, write_jsonl


@pytest.fixture(autouse=True)
def _no_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARNESS_HOME", raising=False)
    monkeypatch.delenv("HARNESS_CACHE_DIR", raising=False)


def _docs(n: int) -> list[dict]:
    out = []
    for i in range(n):
        d: dict = {"id": f"doc-{i:04d}", "text": f"passage {i} about {['backups', 'tls', 'quota'][i % 3]} {i * 7}"}
        if i % 3:
            d["title"] = f"Title {i}"
        if i % 5 == 0:
            d["metadata"] = {"source": f"s{i % 2}", "year": 2000 + i}
        out.append(d)
    return out


def _file(tmp_path: Path, docs: list[dict]) -> Path:
    path = tmp_path / "corpus.jsonl"
    write_jsonl(path, docs)
    return path


def test_scan_summarises_what_load_corpus_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(corpus_mod, "CORPUS_BATCH", 7)  # several batches, the last one short
    path = _file(tmp_path, _docs(40))
    whole = load_corpus(path)
    summary = scan_corpus(path)
    assert summary.count == len(summary) == len(whole) == 40
    assert summary.first == whole[0]
    assert summary.fields == MemoryCorpus(whole).fields == {"text", "title", "source", "year"}
    assert all(d.id in summary.ids for d in whole)
    assert "doc-9999" not in summary.ids and "" not in summary.ids and 3 not in summary.ids
    assert read_docs(path, ["doc-0039", "nope", "doc-0002"]) == {"doc-0039": whole[39], "doc-0002": whole[2]}
    assert scan_corpus(_file(tmp_path, [{"id": "a", "text": "t"}])).fields == {"text"}


def test_scan_reports_the_first_bad_record_as_load_corpus_does(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(corpus_mod, "CORPUS_BATCH", 4)
    for broken in ({"id": "doc-0003", "text": "again"}, {"id": "x"}, {"id": "y", "text": 3}):
        docs = _docs(12)
        docs.insert(9, broken)
        path = _file(tmp_path, docs)
        with pytest.raises(InputError) as whole:
            load_corpus(path)
        with pytest.raises(InputError) as scanned:
            scan_corpus(path)
        assert str(scanned.value) == str(whole.value)
        assert ":10" in str(scanned.value)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=12), max_size=60, unique=True), st.lists(st.text(max_size=12)))
def test_doc_ids_membership_is_set_membership(ids: list[str], probes: list[str]) -> None:
    members = DocIds.of(ids)
    assert len(members) == len(ids)
    for probe in [*probes, *ids]:
        assert (probe in members) == (probe in set(ids))


def test_store_holds_the_corpus_in_order_and_by_id(tmp_path: Path) -> None:
    path = _file(tmp_path, _docs(50))
    whole = load_corpus(path)
    root = tmp_path / "corpora"
    store = open_corpus(path, "pin-a", root, 50)
    assert len(store) == 50 and store.fields == MemoryCorpus(whole).fields
    assert [d for b in store.batches(8) for d in b] == whole
    assert [len(b) for b in store.batches(8)] == [8] * 6 + [2]
    assert store.ids() == [d.id for d in whole]
    wanted = ["doc-0042", "nope", "doc-0001", "doc-0042"]
    assert store.get_many(wanted) == {"doc-0042": whole[42], "doc-0001": whole[1]}
    assert list(store.get_many(wanted)) == ["doc-0042", "doc-0001"]
    assert store["doc-0007"] == whole[7] and "doc-0007" in store and "nope" not in store
    assert store.get("nope") is None and 5 not in store
    with pytest.raises(KeyError):
        store["nope"]
    assert store.get_many(d.id for d in whole) == {d.id: d for d in whole}  # more ids than one SQL lookup takes
    summary = store.summary()
    assert summary.count == 50 and summary.first == whole[0] and all(d.id in summary.ids for d in whole)
    store.close()
    # the same content opens the same store without reading the file again
    stored = root / f"{corpus_mod.store_key('pin-a')}.sqlite"
    before = stored.stat().st_mtime_ns
    path.write_text("not read\n")
    again = open_corpus(path, "pin-a", root, 50)
    assert again.ids() == [d.id for d in whole] and stored.stat().st_mtime_ns == before
    again.close()
    assert stored_summary(root, "pin-a") is not None and stored_summary(root, "pin-b") is None
    assert [p.name for p in root.iterdir()] == [stored.name]  # no build leftovers


def test_a_file_that_changed_since_its_scan_is_input_error(tmp_path: Path) -> None:
    path = _file(tmp_path, _docs(10))
    with pytest.raises(InputError, match="changed while the run read it: 10 documents, 11"):
        open_corpus(path, "pin", tmp_path / "corpora", 11)
    assert not list((tmp_path / "corpora").iterdir())  # the half-built store is gone


def _corrupt(db_path: Path, sql: str) -> None:
    db = sqlite3.connect(db_path)
    db.execute(sql)
    db.commit()
    db.close()


@pytest.mark.parametrize("damage", ["row", "missing row", "header", "garbage"])
def test_a_damaged_store_fails_closed_naming_it(tmp_path: Path, damage: str) -> None:
    path = _file(tmp_path, _docs(20))
    root = tmp_path / "corpora"
    open_corpus(path, "pin", root, 20).close()
    (stored,) = root.iterdir()
    if damage == "row":  # the text changed behind the checksum's back
        _corrupt(stored, "UPDATE docs SET doc = replace(doc, 'passage 3 ', 'passage 4 ') WHERE pos = 4")
    elif damage == "missing row":
        _corrupt(stored, "DELETE FROM docs WHERE pos = 20")
    elif damage == "header":
        _corrupt(stored, "DELETE FROM meta WHERE key = 'fields'")
    else:
        stored.write_bytes(b"\x00" * 4096)

    def read() -> None:
        store = open_corpus(path, "pin", root, 20)
        list(store.batches())

    with pytest.raises(IntegrityError) as exc:
        read()
    assert str(stored) in exc.value.message and "cache clear --indexes" in (exc.value.hint or "")


def _project(root: Path, docs: list[dict], generation: bool = False) -> Path:
    manifest = make_project(root, lock=False)
    write_jsonl(root / "golden" / "corpus.jsonl", docs)
    rows = [{"id": f"q{i}", "query": f"passage about {['backups', 'tls', 'quota'][i % 3]} {i * 7}",
             "relevance": {f"doc-{i % len(docs):04d}": 1, f"doc-{(i * 3 + 1) % len(docs):04d}": 2},
             "answers": [f"{i * 7}"]}
            for i in range(30)]
    write_jsonl(root / "golden" / "cases.jsonl", rows)
    if generation:
        add_generation(root, case_updates={})
    lock(manifest)
    return manifest


@pytest.mark.parametrize("generation", [False, True])
def test_a_run_reads_the_corpus_in_batches_and_equals_the_run_in_one(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     generation: bool) -> None:
    docs = _docs(45)
    whole = pipeline.run_manifest(_project(tmp_path / "whole", docs, generation)).run

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a run loaded the whole corpus")

    monkeypatch.setattr("harness.golden.load_corpus", refuse)
    monkeypatch.setattr(corpus_mod, "CORPUS_BATCH", 8)
    monkeypatch.setattr("harness.retrieve.CORPUS_BATCH", 8)
    root = tmp_path / "batched"
    manifest = _project(root, docs, generation)
    batched = pipeline.run_manifest(manifest).run
    assert batched.case_scores() == whole.case_scores()
    assert [o.ranking for o in batched.outputs] == [o.ranking for o in whole.outputs]
    assert [o.answer for o in batched.outputs] == [o.answer for o in whole.outputs]
    assert batched.counts == whole.counts
    # the flat index filled a batch at a time (6 adds) is byte for byte the one filled in one add
    (one,) = Layout.for_manifest(tmp_path / "whole" / "harness.toml").index_store.iterdir()
    (six,) = Layout.for_manifest(manifest).index_store.iterdir()
    assert one.name == six.name and (six / "index.faiss").read_bytes() == (one / "index.faiss").read_bytes()
    assert len(list(Layout.for_manifest(manifest).corpus_store.iterdir())) == 1
    # warm: the store stands in for the scan, so the corpus file is not read at all
    monkeypatch.setattr(corpus_mod, "scan_corpus", refuse)
    monkeypatch.setattr(corpus_mod, "iter_corpus", refuse)
    warm = pipeline.run_manifest(manifest).run
    assert warm.case_scores() == whole.case_scores() and warm.counts["index_built"] == 0


def test_bad_input_leaves_no_store(tmp_path: Path) -> None:
    root = tmp_path / "p"
    manifest = _project(root, _docs(12))
    rows = [json.loads(line) for line in (root / "golden" / "cases.jsonl").read_text().splitlines()]
    rows[-1]["relevance"] = {"not-a-doc": 1}
    write_jsonl(root / "golden" / "cases.jsonl", rows)
    lock(manifest)
    res = CliRunner().invoke(cli, ["-q", "run", "--manifest", str(manifest)])
    assert res.exit_code == 2 and "not-a-doc" in res.output, res.output
    assert not Layout.for_manifest(manifest).corpus_store.exists()


def test_a_damaged_store_is_exit_2_and_cache_commands_see_it(tmp_path: Path) -> None:
    manifest = _project(tmp_path / "p", _docs(12), generation=True)  # generation reads passages by id
    runner = CliRunner()
    assert runner.invoke(cli, ["-q", "run", "--manifest", str(manifest)]).exit_code == 0
    (stored,) = Layout.for_manifest(manifest).corpus_store.iterdir()
    assert runner.invoke(cli, ["cache", "check", "--manifest", str(manifest)]).exit_code == 0
    _corrupt(stored, "UPDATE docs SET doc = replace(doc, 'passage', 'Passage') WHERE pos = 2")
    res = runner.invoke(cli, ["-q", "run", "--manifest", str(manifest)])
    assert res.exit_code == 2, res.output
    assert "passage store" in res.output and "checksum" in res.output
    check = runner.invoke(cli, ["cache", "check", "--manifest", str(manifest)])
    assert check.exit_code == 1 and "passage store" in check.output, check.output
    cleared = runner.invoke(cli, ["cache", "clear", "--indexes", "--manifest", str(manifest)])
    assert cleared.exit_code == 0 and not stored.exists(), cleared.output
    assert runner.invoke(cli, ["-q", "run", "--manifest", str(manifest)]).exit_code == 0
    assert stored.exists()


def test_a_generated_answer_reads_its_passages_from_the_store(tmp_path: Path) -> None:
    manifest = _project(tmp_path / "p", _docs(9), generation=True)
    report = pipeline.run_manifest(manifest)
    store = StoredCorpus(next(Layout.for_manifest(manifest).corpus_store.iterdir()))
    for out in report.run.outputs:
        assert out.generation is not None
        shown = out.generation.passages_shown
        assert shown and list(shown) == [d.doc_id for d in out.ranking[:len(shown)]]
        assert all(i in store for i in shown)
    store.close()


def _recipe_project(root: Path, recipe: str) -> Path:
    manifest = _project(root, _docs(160))
    (root / "indexes" / "flat.toml").write_text(recipe)
    lock(manifest)
    return manifest


@pytest.mark.parametrize("recipe", ['type = "ivf"\nnlist = 4\nnprobe = 1\n',
                                    'type = "factory"\nfactory = "IVF4,SQ8"\nnprobe = 1\n'])
def test_a_trained_index_filled_in_batches_is_the_index_of_one_add(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   recipe: str) -> None:
    """Two passes (train on the seeded sample's rows gathered from the batches, then add batch by batch) give
    the very index, and the same recall against exact search, as one train and one add over every vector."""
    monkeypatch.setattr("harness.index.TRAIN_MIN_POINTS", 100)  # the sample is a real sample: 100 of 160 rows
    monkeypatch.setattr("harness.index.TRAIN_POINTS_PER_LIST", 1)
    whole_manifest = _recipe_project(tmp_path / "whole", recipe)
    whole = pipeline.run_manifest(whole_manifest).run  # 160 documents: one batch, one add
    monkeypatch.setattr("harness.retrieve.CORPUS_BATCH", 24)  # 7 batches, the last one short
    manifest = _recipe_project(tmp_path / "batched", recipe)
    batched = pipeline.run_manifest(manifest).run
    (one,) = Layout.for_manifest(whole_manifest).index_store.iterdir()
    (six,) = Layout.for_manifest(manifest).index_store.iterdir()
    assert one.name == six.name and (six / "index.faiss").read_bytes() == (one / "index.faiss").read_bytes()
    # the file FAISS streamed to disk is its serialization, and loads (sha256 checked) into the same index
    import faiss

    from harness.index import IndexStore

    loaded = IndexStore(six.parent).load(six.name).index
    assert faiss.serialize_index(loaded).tobytes() == (six / "index.faiss").read_bytes()
    quality = batched.environment["index_quality"]
    assert quality == whole.environment["index_quality"] and 0 < quality["recall@k"] < 1
    assert batched.case_scores() == whole.case_scores()


def test_a_report_reads_titles_from_the_store_without_the_corpus_file(tmp_path: Path) -> None:
    from harness.report.html import load_run_corpus, render_html

    root = tmp_path / "p"
    manifest = _project(root, _docs(30))
    run = pipeline.run_manifest(manifest).run
    layout = Layout.for_manifest(manifest)
    (root / "golden" / "corpus.jsonl").unlink()
    for snap in (layout.blobs).rglob("corpus.jsonl"):
        snap.unlink()
    docs, note = load_run_corpus(run, layout)
    assert isinstance(docs, StoredCorpus) and "passage store" in note
    assert docs.get("doc-0004") is not None and docs["doc-0004"].text.startswith("passage 4 about")
    html = render_html(run, layout=layout)
    shown = {d.doc_id for o in run.outputs for d in o.ranking[:3]}
    assert any(docs[i].text[:20] in html for i in shown)
    (stored,) = layout.corpus_store.iterdir()
    stored.unlink()
    assert load_run_corpus(run, layout)[0] is None  # neither a store, a snapshot nor the file: ids only
