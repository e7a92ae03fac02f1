"""Damaged inputs through the CLI: exit 2, one line on stderr naming file:line (or the byte offset),
and nothing under .harness; or accepted and handled correctly downstream (BOM, CRLF, blank lines,
control characters in text, an 8 MB document).

Each row damages one file of a tiny project (hashing embedder, so a run takes well under a second),
re-locks it so the pins match, and runs ``harness run`` in-process through ``harness.cli.main``.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from tests.conftest import add_generation, make_project
from tests.reliability.clirun import cli_in_process

Damage = Callable[[bytes], bytes]


def _line(obj: object) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def _case(**extra: object) -> bytes:
    return _line({"id": "q9", "query": "how often do backups run", **extra})


def _append(raw: bytes) -> Damage:
    return lambda b: b + raw


def _replace(old: bytes, new: bytes) -> Damage:
    def damage(b: bytes) -> bytes:
        assert old in b
        return b.replace(old, new, 1)

    return damage


GOLDEN = "golden/cases.jsonl"
CORPUS = "golden/corpus.jsonl"
MANIFEST = "harness.toml"
PROMPT = "prompts/answer.toml"
CONTRACTS = "validators/contracts.toml"
RECIPE = "indexes/flat.toml"

DEEP_JSON = b"[" * 5000 + b"]" * 5000

# (id, file, damage, regex the one stderr line must match after "error: <root>/")
REJECTED: list[tuple[str, str, Damage, str]] = [
    ("golden-empty", GOLDEN, lambda b: b"", rf"{GOLDEN}: no golden case records found"),
    ("golden-only-blank-lines", GOLDEN, lambda b: b"\n  \n\r\n", rf"{GOLDEN}: no golden case records found"),
    ("golden-non-utf8", GOLDEN, _append(b'{"id": "q9", "query": "caf\xe9"}\n'),
     rf"{GOLDEN}:5: not UTF-8 text: byte 0xe9 at byte offset \d+ \(column 27\)"),
    ("golden-latin1-file", GOLDEN, lambda b: b.replace(b"how often", b"h\xf6w often"),
     rf"{GOLDEN}:1: not UTF-8 text: byte 0xf6 at byte offset 24 \(column 25\)"),
    ("golden-truncated-last-line", GOLDEN, lambda b: b[:-25], rf"{GOLDEN}:4: malformed JSON"),
    ("golden-nan", GOLDEN, _append(b'{"id": "q9", "query": "x", "relevance": {"d1": NaN}}\n'),
     rf"{GOLDEN}:5: NaN is not valid JSON"),
    ("golden-infinity-in-metadata", GOLDEN, _append(b'{"id": "q9", "query": "x", "metadata": {"w": -Infinity}}\n'),
     rf"{GOLDEN}:5: -Infinity is not valid JSON"),
    ("golden-deep-nesting", GOLDEN, _append(b'{"id": "q9", "query": "x", "metadata": {"a": ' + DEEP_JSON + b"}}\n"),
     rf"{GOLDEN}:5: JSON nested more than 100 levels deep"),
    ("golden-huge-integer", GOLDEN,
     _append(b'{"id": "q9", "query": "x", "relevance": {"d1": 1' + b"0" * 5000 + b"}}\n"),
     rf"{GOLDEN}:5: malformed JSON: a number has more digits"),
    ("golden-lone-surrogate", GOLDEN, _append(b'{"id": "q9", "query": "x \\ud800 y"}\n'),
     rf"{GOLDEN}:5: field 'query': a string holds a lone surrogate"),
    ("golden-control-char-in-id", GOLDEN, _append(_line({"id": "q\u001b[2J", "query": "x"})),
     rf"{GOLDEN}:5: field 'id': .*must not be blank or contain control characters"),
    ("golden-newline-in-id", GOLDEN, _append(_line({"id": "q9\n", "query": "x"})),
     rf"{GOLDEN}:5: field 'id': .*must not be blank or contain control characters"),
    ("golden-blank-id", GOLDEN, _append(_line({"id": "   ", "query": "x"})),
     rf"{GOLDEN}:5: field 'id': .*must not be blank"),
    ("golden-duplicate-id", GOLDEN, _append(_line({"id": "q1", "query": "x"})),
     rf"{GOLDEN}:5: field 'id': duplicate id 'q1' \(first at line 1\)"),
    ("golden-missing-id", GOLDEN, _append(_line({"query": "x"})), rf"{GOLDEN}:5: 'id' is a required property"),
    ("golden-integer-id", GOLDEN, _append(_line({"id": 7, "query": "x"})), rf"{GOLDEN}:5: field 'id': 7 is not"),
    ("golden-repeated-key", GOLDEN, _append(b'{"id": "q9", "query": "x", "query": "y"}\n'),
     rf"{GOLDEN}:5: key 'query' appears twice in one object"),
    ("golden-json-array", GOLDEN, lambda b: json.dumps([json.loads(x) for x in b.splitlines()]).encode(),
     rf"{GOLDEN}:1: expected a JSON object per line \(golden case\), got an array"),
    ("golden-two-objects-on-a-line", GOLDEN, lambda b: b.replace(b"}\n", b"} ", 1),
     rf"{GOLDEN}:1: malformed JSON: Extra data"),
    ("golden-nul-byte", GOLDEN, _append(b'{"id": "q9", "query": "x"}\x00\n'), rf"{GOLDEN}:5: malformed JSON"),
    ("golden-raw-control-char-in-string", GOLDEN, _append(b'{"id": "q9", "query": "a\x01b"}\n'),
     rf"{GOLDEN}:5: malformed JSON: Invalid control character"),
    ("corpus-non-utf8", CORPUS, lambda b: b.replace(b"Backups", b"Back\xffups"),
     rf"{CORPUS}:2: not UTF-8 text: byte 0xff at byte offset \d+ "),
    ("corpus-deep-metadata", CORPUS, _append(b'{"id": "d9", "text": "x", "metadata": ' + DEEP_JSON + b"}\n"),
     rf"{CORPUS}:7: JSON nested more than 100 levels deep"),
    ("corpus-duplicate-id", CORPUS, _append(_line({"id": "d1", "text": "again"})),
     rf"{CORPUS}:7: field 'id': duplicate id 'd1'"),
    ("corpus-wrong-type-text", CORPUS, _append(_line({"id": "d9", "text": ["a"]})), rf"{CORPUS}:7: field 'text'"),
    ("manifest-non-utf8", MANIFEST, _replace(b'name = "tiny"', b'name = "t\xffny"'),
     rf"{MANIFEST}:3: this manifest is not UTF-8 text: byte 0xff at byte offset \d+ \(column 10\)"),
    ("manifest-deep-nesting", MANIFEST, _append(b"\n[extra]\nx = " + b"[" * 3000 + b"]" * 3000 + b"\n"),
     rf"{MANIFEST}:\d+: nested too deeply"),
    ("manifest-nan-param", MANIFEST, _replace(b"k = 5,", b"k = nan,"),
     rf"{MANIFEST}:\d+: field 'artifacts.retriever.params.k': nan is not a finite number"),
    ("manifest-date-param", MANIFEST, _replace(b"dim = 64", b"dim = 1979-05-27"),
     rf"{MANIFEST}:\d+: field 'artifacts.embedding.params.dim': a date value is not JSON data"),
    ("manifest-huge-integer", MANIFEST, _replace(b"k = 5,", b"k = 5" + b"0" * 5000 + b","),
     rf"{MANIFEST}: malformed TOML: a number has more digits than can be read"),
    ("prompt-huge-integer-in-template", PROMPT, _replace(b"{{ query }}", b"{{ query }}{{ 1" + b"0" * 5000 + b" }}"),
     rf"{PROMPT}: field 'messages.0.content': template does not compile: ValueError"),
    ("prompt-message-not-a-table", PROMPT, lambda b: b'messages = ["hello"]\n',
     rf"{PROMPT}: field 'messages.0': each message needs exactly 'role'"),
    ("prompt-syntax-error", PROMPT, _replace(b"{{ query }}", b"{{ query }"),
     rf"{PROMPT}:\d+: field 'messages.0.content': template syntax error"),
    ("prompt-undefined-variable", PROMPT, _replace(b"{{ query }}", b"{{ qeury }}"),
     rf"{PROMPT}: field 'messages.0.content': template uses an undefined variable: 'qeury' is undefined"),
    ("prompt-render-type-error", PROMPT, _replace(b"{{ query }}", b"{{ query + 1 }}"),
     rf"{PROMPT}: field 'messages.0.content': template failed to render for case 'q1': TypeError"),
    ("contracts-not-a-table", CONTRACTS, _append(b"\n[contracts]\nbroken = 5\n"),
     rf"{CONTRACTS}(:\d+)?: (field 'contracts.broken': expected a table|malformed TOML)"),
    ("contracts-spec-is-a-string", CONTRACTS, lambda b: b'contracts = { json_cited = "x", short_plain = "y" }\n',
     rf"{CONTRACTS}:1: field 'contracts.json_cited': expected a table, got str"),
    ("contracts-schema-name-too-long", CONTRACTS,
     _append(b'\n[contracts.long]\nchecks = [{ type = "json_schema", schema = "' + b"9" * 5000 + b'" }]\n'),
     rf"{CONTRACTS}: field 'contracts.long.checks': schema file '9+': File name too long"),
    ("recipe-deep-nesting", RECIPE, _append(b"x = " + b"[" * 3000 + b"]" * 3000 + b"\n"),
     rf"{RECIPE}:2: nested too deeply"),
]

ACCEPTED: list[tuple[str, str, Damage]] = [
    ("golden-bom-crlf-blank-lines", GOLDEN, lambda b: b"\xef\xbb\xbf\n" + b.replace(b"\n", b"\r\n\r\n")),
    ("corpus-bom", CORPUS, lambda b: b"\xef\xbb\xbf" + b),
    ("manifest-bom-crlf", MANIFEST, lambda b: b"\xef\xbb\xbf" + b.replace(b"\n", b"\r\n")),
    ("prompt-bom", PROMPT, lambda b: b"\xef\xbb\xbf" + b),
    ("corpus-bom-and-an-8mb-document", CORPUS,
     lambda b: b"\xef\xbb\xbf" + b + _line({"id": "d9", "text": "backup " * (8 << 17)})),
]


@pytest.fixture(autouse=True)
def _no_shared_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARNESS_HOME", raising=False)
    monkeypatch.delenv("HARNESS_CACHE_DIR", raising=False)


def _project(root: Path, target: str, damage: Damage) -> Path:
    from harness.errors import InputError
    from harness.manifest import lock

    manifest = make_project(root)
    if target in (PROMPT, CONTRACTS):
        add_generation(root)
    path = root / target
    path.write_bytes(damage(path.read_bytes()))
    if target != MANIFEST:  # the manifest is not an artifact: its pins stay valid
        # The pins match: what is judged is the content, not a stale pin. Damage that lock itself refuses
        # (a recipe is read when the manifest loads) must be reported the same way by run.
        with contextlib.suppress(InputError):
            lock(manifest)
    return manifest


_cli = cli_in_process


def _harness_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in (root / ".harness").rglob("*")) if (root / ".harness").exists() \
        else []


@pytest.mark.parametrize(("target", "damage", "where"), [r[1:] for r in REJECTED], ids=[r[0] for r in REJECTED])
def test_damaged_input_is_exit_2_one_line_nothing_written(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          target: str, damage: Damage, where: str) -> None:
    manifest = _project(tmp_path, target, damage)
    code, _, err = _cli(capsys, "run", "--manifest", str(manifest))
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert re.match(rf"error: {re.escape(str(tmp_path))}/{where}", lines[0]), lines[0]
    assert _harness_files(tmp_path) == []  # no cache, no snapshot, no run


def test_line_longer_than_the_limit_is_refused_without_reading_it_whole(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.golden

    monkeypatch.setattr(harness.golden, "MAX_LINE_BYTES", 1 << 20)
    manifest = _project(tmp_path, GOLDEN, _append(b'{"id": "q9", "query": "' + b"a" * (2 << 20)))
    code, _, err = _cli(capsys, "run", "--manifest", str(manifest))
    assert code == 2
    assert re.fullmatch(rf"error: {re.escape(str(tmp_path))}/{GOLDEN}:5: line longer than 1 MiB "
                        r"\(starts at byte offset \d+\)", err.strip()), err
    assert _harness_files(tmp_path) == []


def test_damaged_parquet_golden_set_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = make_project(tmp_path, lock=False)
    (tmp_path / "golden" / "cases.parquet").write_bytes(b"PAR1" + bytes(range(256)) * 4)
    manifest.write_text(manifest.read_text().replace("golden/cases.jsonl", "golden/cases.parquet"))
    from harness.manifest import lock

    lock(manifest)
    code, _, err = _cli(capsys, "run", "--manifest", str(manifest))
    assert code == 2
    assert re.fullmatch(rf"error: {re.escape(str(tmp_path))}/golden/cases.parquet: could not be read: \w+: .+",
                        err.strip()), err
    assert _harness_files(tmp_path) == []


@pytest.mark.parametrize(("target", "damage"), [r[1:] for r in ACCEPTED], ids=[r[0] for r in ACCEPTED])
def test_harmless_variations_are_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str,
                                          damage: Damage) -> None:
    manifest = _project(tmp_path, target, damage)
    code, out, err = _cli(capsys, "run", "--manifest", str(manifest), "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["counts"]["cases"] == 4 and summary["counts"]["errors"] == 0
    assert summary["aggregates"]["recall@5"] > 0


def test_control_characters_in_text_are_escaped_in_the_junit_report(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Control characters are valid JSON (as \\u escapes) and kept in queries and documents; the JUnit
    report, which XML 1.0 cannot hold them in, shows them as visible escapes and stays well-formed."""
    hostile = "\u0001\u0008\u000b\u001b[31m\u007f\ufffe"
    manifest = _project(tmp_path, GOLDEN, _append(_line({"id": "q9", "query": f"backups {hostile} run",
                                                         "relevance": {"d2": 1}})))
    corpus = tmp_path / CORPUS
    corpus.write_bytes(corpus.read_bytes() + _line({"id": "d9", "text": f"noise {hostile}"}))
    from harness.manifest import lock

    lock(manifest)
    code, _, err = _cli(capsys, "run", "--manifest", str(manifest))
    assert code == 0, err
    out_file = tmp_path / "junit.xml"
    code, _, err = _cli(capsys, "report", "--manifest", str(manifest), "--format", "junit", "-o", str(out_file))
    assert code in (0, 1), err
    suite = ET.fromstring(out_file.read_bytes())  # raises on invalid XML
    assert suite.tag == "testsuite" and len(suite.findall("testcase")) == 5


def test_sanitizer_keeps_valid_text_and_escapes_the_rest() -> None:
    from harness.report.xmltext import sanitize_tree, xml_text

    assert xml_text("plain \t\n\r é 😀") == "plain \t\n\r é 😀"
    assert xml_text("a\x00b\x1bc\ud800d\uffff") == "a\\x00b\\x1bc\\ud800d\\uffff"
    root = ET.Element("t", name="x\x01")
    root.text = "\x02"
    ET.SubElement(root, "c").tail = "\x03"
    ET.fromstring(ET.tostring(sanitize_tree(root)))


IFEVAL_INPUT = _line({"key": 1, "prompt": "Say hi", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]})
IFEVAL_RESPONSE = _line({"prompt": "Say hi", "response": "hi there"})


@pytest.mark.parametrize(("which", "data", "where"), [
    ("input", IFEVAL_INPUT + b'{"key": 2, "prompt": "caf\xe9"}\n',
     r"input.jsonl:2: not UTF-8 text: byte 0xe9 at byte offset \d+ \(column 26\)"),
    ("responses", b'{"prompt": "Say hi", "response": ' + DEEP_JSON + b"}\n",
     r"responses.jsonl:1: JSON nested more than 100 levels deep"),
    ("responses", b'{"prompt": "Say hi", "response": NaN}\n', r"responses.jsonl:1: NaN is not valid JSON"),
])
def test_damaged_ifeval_files_are_exit_2_with_file_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        which: str, data: bytes, where: str) -> None:
    (tmp_path / "input.jsonl").write_bytes(IFEVAL_INPUT)
    (tmp_path / "responses.jsonl").write_bytes(IFEVAL_RESPONSE)
    code, _, err = _cli(capsys, "ifeval", "--input", str(tmp_path / "input.jsonl"),
                        "--responses", str(tmp_path / "responses.jsonl"), "--json")
    assert code == 0, err  # the undamaged pair scores
    (tmp_path / f"{which}.jsonl").write_bytes(data)
    code, _, err = _cli(capsys, "ifeval", "--input", str(tmp_path / "input.jsonl"),
                        "--responses", str(tmp_path / "responses.jsonl"), "--json")
    assert code == 2
    assert re.fullmatch(rf"error: {re.escape(str(tmp_path))}/{where}.*", err.strip()), err


@pytest.mark.parametrize(("name", "data", "where"), [
    ("corpus.jsonl", b'{"_id": "d1", "text": "caf\xe9"}\n', r"corpus.jsonl:1: not UTF-8 text: byte 0xe9"),
    ("qrels/test.tsv", b"query-id\tcorpus-id\tscore\nq1\td\xff1\t1\n", r"qrels/test.tsv:2: .*not UTF-8 text"),
    ("corpus.jsonl", _line({"_id": "d\u001b1", "text": "x"}), r"corpus.jsonl:1: field 'id': .*control characters"),
])
def test_damaged_beir_folder_is_exit_2_and_nothing_is_written(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                              name: str, data: bytes, where: str) -> None:
    src = tmp_path / "beir"
    (src / "qrels").mkdir(parents=True)
    (src / "corpus.jsonl").write_bytes(_line({"_id": "d1", "title": "t", "text": "backups run hourly"}))
    (src / "queries.jsonl").write_bytes(_line({"_id": "q1", "text": "how often do backups run"}))
    (src / "qrels" / "test.tsv").write_bytes(b"query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    (src / name).write_bytes(data)
    out = tmp_path / "out"
    code, _, err = _cli(capsys, "import", "beir", str(src), "--out", str(out))
    assert code == 2, err
    assert re.fullmatch(rf"error: {re.escape(str(src))}/{where}.*", err.strip()), err
    assert not out.exists()


@pytest.mark.parametrize("grade", [2**63, 10**30, 2**31, -(2**31)])
def test_relevance_grade_out_of_range_is_exit_2_before_anything_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], grade: int) -> None:
    """A grade that does not fit a 32-bit integer (as trec_eval reads it) was an OverflowError (exit 3) in
    scoring, after the index and the cache had been written."""
    manifest = _project(tmp_path, GOLDEN, _append(_case(relevance={"d1": grade})))
    code, _, err = _cli(capsys, "run", "--manifest", str(manifest))
    assert code == 2, err
    assert re.fullmatch(rf"error: {re.escape(str(tmp_path))}/{GOLDEN}:5: field 'relevance.d1': grade {grade} is "
                        r"out of range: .*", err.strip()), err
    assert _harness_files(tmp_path) == []
