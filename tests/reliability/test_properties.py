"""Property-based damage (hypothesis): whatever bytes a golden set, corpus, manifest, contracts file,
prompt or qrels/run file holds, loading it either succeeds or raises the one-line input error (exit
2); never another exception (exit 3). A handful of examples go through ``harness run``, where exit 2
must also leave no ``.harness`` behind.

Bytes are drawn three ways: arbitrary, valid content with a few bytes flipped, inserted or cut
(truncation, BOM, CRLF, NUL, lone continuation bytes), and structurally plausible records (the
schema's keys with values of any JSON type, nested deeply now and then). Runs are bounded
(``max_examples`` below 100, no deadline) so the file takes seconds.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.errors import HarnessError
from tests.conftest import CASES, CONTRACTS, DOCS, MANIFEST, PROMPT, add_generation, make_project

FAST = settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
CLI = settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)

SPLICES = [b"", b"\n", b"\r\n", b"\xef\xbb\xbf", b"\x00", b"\xff", b"\xe9", b"\x80", b"\xc3", b'"', b"{", b"[",
           b"]", b"}", b",", b":", b"NaN", b"-Infinity", b"\\ud800", b"\\u0000", b"1e999", b"9" * 5000, b"[" * 3000,
           b"=", b"#", b"'''", b'"""', b"\t", b"\x1b[2J", b"&", b"<"]


@st.composite
def damaged(draw: st.DrawFn, valid: bytes) -> bytes:
    """``valid`` with up to four edits: a splice of a nasty token, a cut, or a deletion."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(0, 4))):
        pos = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["splice", "cut", "delete", "byte"]))
        if kind == "splice":
            data[pos:pos] = draw(st.sampled_from(SPLICES))
        elif kind == "cut":
            del data[pos:]
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 8))]
        else:
            data[pos:pos] = bytes([draw(st.integers(0, 255))])
    return bytes(data)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=12,
)


@st.composite
def plausible_records(draw: st.DrawFn, keys: list[str]) -> bytes:
    """Records using the schema's keys with values of any JSON type (NaN too), sometimes nested deeply."""
    lines = []
    for _ in range(draw(st.integers(0, 4))):
        rec = draw(st.dictionaries(st.sampled_from(keys), JSON_VALUES, max_size=len(keys)))
        if draw(st.booleans()):
            rec["id"] = draw(st.text(max_size=4) | st.sampled_from(["q1", "d1", "d2"]))
        text = json.dumps(rec)
        if draw(st.integers(0, 9)) == 0:
            depth = draw(st.integers(50, 3000))
            text = text[:-1] + (", " if rec else "") + '"metadata": ' + "[" * depth + "]" * depth + "}"
        lines.append(text)
    return "\n".join(lines).encode() + draw(st.sampled_from([b"", b"\n"]))


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def _any_bytes(valid: bytes, keys: list[str]) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=400), damaged(valid), plausible_records(keys))


def _loads_or_input_error(fn: Callable[[], object]) -> None:
    try:
        fn()
    except HarnessError as exc:
        assert exc.exit_code == 2
        assert "\n" not in str(exc), str(exc)  # one line
    # anything else propagates and fails the property


GOLDEN_KEYS = ["id", "query", "relevance", "answers", "facts", "contract", "instructions", "tags", "metadata"]
CORPUS_KEYS = ["id", "title", "text", "metadata"]


@pytest.fixture(scope="module")
def scratch() -> Path:
    with tempfile.TemporaryDirectory(prefix="harness-props-") as tmp:
        yield Path(tmp)


@FAST
@given(data=_any_bytes(_jsonl(CASES), GOLDEN_KEYS))
def test_any_golden_bytes_load_or_are_input_errors(scratch: Path, data: bytes) -> None:
    from harness.golden import load_golden

    path = scratch / "cases.jsonl"
    path.write_bytes(data)
    _loads_or_input_error(lambda: load_golden(path, frozenset(d["id"] for d in DOCS)))


@FAST
@given(data=_any_bytes(_jsonl(DOCS), CORPUS_KEYS))
def test_any_corpus_bytes_load_or_are_input_errors(scratch: Path, data: bytes) -> None:
    from harness.golden import load_corpus

    path = scratch / "corpus.jsonl"
    path.write_bytes(data)
    _loads_or_input_error(lambda: load_corpus(path))


@pytest.fixture(scope="module")
def manifest_project(scratch: Path) -> Path:
    root = scratch / "manifest-project"
    root.mkdir()
    make_project(root)
    return root


MANIFEST_TOML = MANIFEST.format(recipe="flat").encode()


def _manifest_yaml() -> bytes:
    import tomllib

    import yaml

    return yaml.safe_dump(tomllib.loads(MANIFEST_TOML.decode()), sort_keys=False).encode()


@FAST
@given(suffix=st.sampled_from([".toml", ".yaml"]), data=st.data())
def test_any_manifest_bytes_load_or_are_input_errors(manifest_project: Path, suffix: str, data: st.DataObject) -> None:
    from harness.manifest import load_manifest

    valid = MANIFEST_TOML if suffix == ".toml" else _manifest_yaml()
    raw = data.draw(st.one_of(damaged(valid), st.binary(max_size=200)), label="manifest")
    path = manifest_project / f"variant{suffix}"
    path.write_bytes(raw)
    _loads_or_input_error(lambda: load_manifest(path))


YAML_BOMBS = [
    b"name: x\nartifacts: &a {golden: *a}\n",
    b'a: &a ["x","x","x","x","x","x","x","x","x"]\n'  # "billion laughs": 9^7 values from 8 lines
    + b"".join(f"{c}: &{c} [{','.join(['*' + p] * 9)}]\n".encode() for p, c in zip("abcde", "bcdef", strict=True))
    + b"g: [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n",
    b"? [a, b]\n: 1\n",
    b"1: x\n",
    b"when: 2024-01-01\n",
    b"x: !!python/object:os.system ls\n",
    b"- [" * 2000 + b"\n",
]


@pytest.mark.parametrize("data", YAML_BOMBS, ids=range(len(YAML_BOMBS)))
def test_hostile_yaml_is_an_input_error(manifest_project: Path, data: bytes) -> None:
    from harness.manifest import load_manifest

    path = manifest_project / "hostile.yaml"
    path.write_bytes(data)
    with pytest.raises(HarnessError):
        load_manifest(path)


@pytest.fixture(scope="module")
def validators(scratch: Path) -> Path:
    folder = scratch / "validators"
    folder.mkdir()
    (folder / "schema.json").write_text('{"type": "object"}\n')
    return folder


SCHEMA_CONTRACT = (b'[contracts.a]\nformat = "json"\nchecks = [{ type = "json_schema", schema = "schema.json" }, '
                   b'{ type = "regex", pattern = "a+" }]\n')


@FAST
@given(data=st.one_of(damaged(CONTRACTS.format(short_max_words=5).encode()), damaged(SCHEMA_CONTRACT),
                      st.binary(max_size=200)),
       schema=st.one_of(st.just(b'{"type": "object"}\n'), damaged(b'{"type": "object", "required": ["a"]}\n')))
def test_any_contracts_bytes_load_or_are_input_errors(validators: Path, data: bytes, schema: bytes) -> None:
    from harness.contracts import load_contracts

    (validators / "contracts.toml").write_bytes(data)
    (validators / "schema.json").write_bytes(schema)
    _loads_or_input_error(lambda: load_contracts(validators))


@FAST
@given(data=st.one_of(damaged(PROMPT.encode()), st.binary(max_size=200)))
def test_any_prompt_bytes_load_render_or_are_input_errors(scratch: Path, data: bytes) -> None:
    from harness.prompts import PromptTemplate
    from harness.types import GoldenCase

    path = scratch / "prompt.toml"
    path.write_bytes(data)
    cases = [GoldenCase.model_validate(c) for c in CASES]
    passages = [{"id": "d1", "title": "t", "text": "x", "score": 1.0, "rank": 1}]
    _loads_or_input_error(lambda: PromptTemplate.load(path).check(cases, passages, None))


QRELS = b"q1 0 d1 1\nq1 0 d2 0\nq2 0 d3 2\n"
RUN = b"q1 Q0 d1 1 2.5 r\nq1 Q0 d3 2 1.0 r\nq2 Q0 d3 1 0.7 r\n"
TREC_TOKENS = st.sampled_from([b"q1", b"q2", b"Q0", b"0", b"d1", b"d3", b"1", b"-1", b"2.5", b"nan", b"inf", b"1e999",
                               b"\xff", b"\x00", b"#", b"r", b"9" * 30, b"\t", b"\r", b"-"])
TREC_LINES = st.lists(st.lists(TREC_TOKENS, max_size=8).map(b" ".join), max_size=6).map(b"\n".join)


@FAST
@given(qrels=st.one_of(damaged(QRELS), TREC_LINES, st.binary(max_size=120)),
       run=st.one_of(damaged(RUN), TREC_LINES, st.binary(max_size=120)))
def test_any_qrels_and_run_bytes_evaluate_or_are_input_errors(scratch: Path, qrels: bytes, run: bytes) -> None:
    from harness.metrics.trec import evaluate_files, parse_measures

    (scratch / "qrels.txt").write_bytes(qrels)
    (scratch / "run.txt").write_bytes(run)
    measures = parse_measures(["all_trec"])
    _loads_or_input_error(lambda: evaluate_files(scratch / "qrels.txt", scratch / "run.txt", measures, 1, False, None))


# ---- a handful through the CLI: exit 0 or 2, and exit 2 leaves no .harness -------------------------


def _cli_run(manifest: Path) -> int:
    from harness.cli import main

    try:
        main(["-q", "run", "--manifest", str(manifest)])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.fixture
def no_shared_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARNESS_HOME", raising=False)
    monkeypatch.delenv("HARNESS_CACHE_DIR", raising=False)


@CLI
@given(target=st.sampled_from(["golden/cases.jsonl", "golden/corpus.jsonl", "validators/contracts.toml",
                               "prompts/answer.toml"]),
       seed=st.integers(0, 2**32 - 1), data=st.data())
def test_cli_run_on_damaged_inputs_is_exit_0_or_2_and_writes_nothing_on_2(no_shared_state: None, target: str,
                                                                          seed: int, data: st.DataObject) -> None:
    from harness.errors import InputError
    from harness.manifest import lock

    with tempfile.TemporaryDirectory(prefix="harness-cli-props-") as tmp:
        root = Path(tmp)
        manifest = make_project(root)
        add_generation(root)
        path = root / target
        path.write_bytes(data.draw(damaged(path.read_bytes()), label=target))
        with contextlib.suppress(InputError):  # lock may refuse the damage already; run must refuse it too
            lock(manifest)
        code = _cli_run(manifest)
        assert code in (0, 2)
        if code == 2:
            assert not (root / ".harness").exists()
