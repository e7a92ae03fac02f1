from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import InputError
from harness.golden import load_corpus, load_golden
from tests.conftest import CASES, DOCS, write_jsonl

DOC_IDS = frozenset(d["id"] for d in DOCS)


def _golden(tmp_path: Path, rows: list[dict] | None = None, raw: str | None = None) -> Path:
    path = tmp_path / "cases.jsonl"
    if raw is not None:
        path.write_text(raw)
    else:
        write_jsonl(path, rows if rows is not None else CASES)
    return path


def test_loads_cases_and_segments(tmp_path: Path) -> None:
    cases = load_golden(_golden(tmp_path), DOC_IDS)
    assert [c.id for c in cases] == ["q1", "q2", "q3", "q4"]
    assert cases[2].relevance == {"d4": 2, "d1": 1}
    assert cases[0].segments() == ["difficulty=easy", "topic=storage"]


@pytest.mark.parametrize(
    ("raw", "pattern"),
    [
        ('{"id": "a", "query": "x"}\n{"id": "b", "query": \n', r"cases.jsonl:2: malformed JSON"),
        ('{"query": "x"}\n', r"cases.jsonl:1: 'id' is a required property"),
        ('{"id": "a", "query": "x"}\n{"id": "a", "query": "y"}\n', r"cases.jsonl:2: field 'id': duplicate id 'a'"),
        ('{"id": "a", "query": "   "}\n', r"cases.jsonl:1: field 'query': must not be empty or blank"),
        ('{"id": "a", "query": "x", "relevance": {"d1": "high"}}\n', r"cases.jsonl:1: field 'relevance.d1'"),
        ('{"id": "a", "query": "x", "relevance": {"nope": 1}}\n',
         r"cases.jsonl:1: field 'relevance.nope': relevance names doc id 'nope', which is not in the corpus"),
        ('{"id": "a", "query": "x", "colour": 1}\n', r"cases.jsonl:1: .*colour"),
        ('[1, 2]\n', r"cases.jsonl:1: expected a JSON object"),
        ("", r"no golden case records"),
    ],
)
def test_bad_input_names_file_line_field(tmp_path: Path, raw: str, pattern: str) -> None:
    with pytest.raises(InputError, match=pattern):
        load_golden(_golden(tmp_path, raw=raw), DOC_IDS)


def test_corpus_errors(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"id": "d1", "text": "a"}\n{"id": "d2", "text": 5}\n')
    with pytest.raises(InputError, match=r"corpus.jsonl:2: field 'text'"):
        load_corpus(path)


def test_parquet_and_saved_dataset_load_through_datasets(tmp_path: Path) -> None:
    import datasets

    rows = [{"id": d["id"], "title": d["title"], "text": d["text"]} for d in DOCS]
    ds = datasets.Dataset.from_list(rows)
    ds.to_parquet(str(tmp_path / "corpus.parquet"))
    ds.save_to_disk(str(tmp_path / "saved"))
    assert [d.id for d in load_corpus(tmp_path / "corpus.parquet")] == [d["id"] for d in DOCS]
    assert [d.text for d in load_corpus(tmp_path / "saved")] == [d["text"] for d in DOCS]
    bad = datasets.Dataset.from_list([{"id": "a", "query": ""}])
    bad.to_parquet(str(tmp_path / "bad.parquet"))
    with pytest.raises(InputError, match=r"bad.parquet:1: field 'query'"):
        load_golden(tmp_path / "bad.parquet")


def test_schema_is_valid_draft_2020_12() -> None:
    from jsonschema import Draft202012Validator

    from harness.golden import schema_path

    for name in ("golden_case", "corpus_doc", "manifest"):
        Draft202012Validator.check_schema(json.loads(schema_path(name).read_text()))


def test_parquet_relevance_dicts_with_different_keys(tmp_path: Path) -> None:
    """Arrow stores dicts as structs over every key seen, filling absent keys with None."""
    import datasets

    rows = [{"id": "a", "query": "x", "relevance": {"d1": 1}}, {"id": "b", "query": "y", "relevance": {"d2": 2}}]
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "g.parquet"))
    cases = load_golden(tmp_path / "g.parquet", DOC_IDS)
    assert [c.relevance for c in cases] == [{"d1": 1}, {"d2": 2}]


def test_invalid_fact_regex_is_an_input_error(tmp_path: Path) -> None:
    path = _golden(tmp_path, raw='{"id": "a", "query": "x", "facts": [{"regex": "8 GB (RAM"}]}\n')
    with pytest.raises(InputError, match=r"cases.jsonl:1: field 'facts.0.regex': invalid regex"):
        load_golden(path, DOC_IDS)


def test_parquet_rows_must_be_plain_json_data(tmp_path: Path) -> None:
    """Arrow columns can hold NaN and timestamps, which have no canonical JSON form (pins, cache keys)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": ["d1", "d2"], "text": ["a", "b"],
                             "metadata": [{"w": 1.0}, {"w": float("nan")}]}), tmp_path / "corpus.parquet")
    with pytest.raises(InputError, match=r"corpus.parquet:2: field 'metadata.w': nan is not a finite number"):
        load_corpus(tmp_path / "corpus.parquet")


@pytest.mark.parametrize(
    ("spec", "pattern"),
    [
        ({"id": "length_constraints:number_words", "kwargs": {"num_words": "five", "relation": "less than"}},
         r"cases.jsonl:2: field 'instructions.0': instruction 'length_constraints:number_words': "
         r"kwarg 'num_words' must be int, got 'five'"),
        ({"id": "length_constraints:number_wrds", "kwargs": {}},
         r"cases.jsonl:2: field 'instructions.0': .*number_wrds.*number_words"),
    ],
)
def test_bad_instruction_spec_is_bad_input_at_its_line(tmp_path: Path, spec: dict, pattern: str) -> None:
    # Found at load, before anything runs: while generating it was an internal error per case (exit 1).
    rows = [{"id": "a", "query": "x"}, {"id": "b", "query": "Answer briefly.", "instructions": [spec]}]
    with pytest.raises(InputError, match=pattern):
        load_golden(_golden(tmp_path, rows))


def test_csv_cells_are_read_as_written_and_list_fields_as_json(tmp_path: Path) -> None:
    import csv

    path = tmp_path / "cases.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "query", "answers", "relevance", "tags"])
        w.writerow(["007", "1.10 release date?", '["2024-02-13", "Feb 13"]', '{"d1": 2}', '{"topic": "x"}'])
        w.writerow(["008", "[draft] plain text query", "", "", ""])
    cases = load_golden(path)
    assert [c.id for c in cases] == ["007", "008"]  # never guessed into the integer 7
    assert cases[0].query == "1.10 release date?" and cases[0].answers == ("2024-02-13", "Feb 13")
    assert cases[0].relevance == {"d1": 2} and cases[0].tags == {"topic": "x"}
    assert cases[1].query == "[draft] plain text query"  # a text field is never parsed as JSON


def test_a_csv_list_cell_that_is_not_json_names_row_and_column(tmp_path: Path) -> None:
    path = tmp_path / "cases.csv"
    path.write_text('id,query,answers\nq1,what?,"[""a"""\n', "utf-8")
    with pytest.raises(InputError, match=r"cases.csv:1: field 'answers': this field is a list or an object: its cell"):
        load_golden(path)


@pytest.mark.parametrize("kind", ["golden", "corpus"])
def test_a_second_reading_names_a_record_that_changed_since_it_was_checked(tmp_path: Path, kind: str) -> None:
    """The second reading (``checked=True``) skips the schema and duplicate checks; a record that no longer
    converts is an InputError at its line saying the file changed, never a pydantic traceback (exit 3)."""
    from harness.corpus import iter_corpus
    from harness.golden import iter_golden

    rows = [dict(r) for r in (CASES if kind == "golden" else DOCS)]
    rows[2] = {**rows[2], ("query" if kind == "golden" else "text"): 7}  # not a string any more
    path = tmp_path / f"{kind}.jsonl"
    write_jsonl(path, rows)

    def read(checked: bool) -> None:
        batches = iter_golden(path, checked=checked) if kind == "golden" else iter_corpus(path, checked=checked)
        for _ in batches:
            pass

    with pytest.raises(InputError) as first:  # the first reading: the schema check names the field
        read(False)
    assert "changed since" not in str(first.value)
    with pytest.raises(InputError) as second:
        read(True)
    what = "golden case" if kind == "golden" else "corpus document"
    assert f"changed since it was checked: this record is no longer a valid {what}" in str(second.value)
    assert f"{kind}.jsonl:3" in str(second.value)


def test_deep_nesting_is_refused_before_parsing_whatever_the_recursion_limit(tmp_path: Path) -> None:
    """A library imported in the same process (torch's inductor, hypothesis) may raise the recursion limit;
    the nesting check must not depend on the parser running out of it (one message, never a deep parse)."""
    import sys

    from harness.config import read_config
    from harness.golden import parse_json_line

    toml = tmp_path / "deep.toml"
    toml.write_text("x = " + "[" * 3000 + "]" * 3000 + "\n")
    line = b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    limit = sys.getrecursionlimit()
    try:
        for raised in (limit, 60_000):
            sys.setrecursionlimit(raised)
            with pytest.raises(InputError, match=r"f\.jsonl:3: JSON nested more than 100 levels deep$"):
                parse_json_line("f.jsonl", line, 3, 0)
            with pytest.raises(InputError, match=r"deep\.toml:1: nested too deeply \(more than 100 levels\)"):
                read_config(toml)
    finally:
        sys.setrecursionlimit(limit)
    # at the limit itself: parsed (101 brackets hold an empty list at depth 100), strings not counted
    assert parse_json_line("f.jsonl", b'{"a": ' + b"[" * 100 + b"]" * 100 + b', "s": "' + b"[" * 500 + b'"}', 1, 0)
