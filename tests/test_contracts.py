from __future__ import annotations

from pathlib import Path

import pytest

from harness.contracts import ParsedAnswer, load_contracts, validate
from harness.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def contracts():  # type: ignore[no-untyped-def]
    return load_contracts(ROOT / "validators")


def _failed(contracts, name: str, text: str, retrieved: set[str] | None = None) -> dict[str, str]:  # type: ignore[no-untyped-def]
    res = validate(contracts.get(name), text, retrieved or {"qs-a-001", "qs-b-002"}, contracts)
    return {r.name: r.message for r in res if not r.passed}


def test_json_contract(contracts) -> None:  # type: ignore[no-untyped-def]
    good = '{"answer": "Port 8480.", "citations": ["qs-a-001"]}'
    assert _failed(contracts, "json_cited", good) == {}
    fenced = "```json\n" + good + "\n```"
    assert _failed(contracts, "json_cited", fenced) == {}
    bad = _failed(contracts, "json_cited", '{"answer": "Port 8480."')
    assert set(bad) == {"parses", "schema", "cites_retrieved", "answer_words"}
    assert "not valid JSON" in bad["parses"] and "not valid JSON" in bad["answer_words"]
    missing = _failed(contracts, "json_cited", '{"answer": "x", "citations": []}')
    assert "schema" in missing and "cites_retrieved" in missing
    foreign = _failed(contracts, "json_cited", '{"answer": "x", "citations": ["qs-zz-999"]}')
    assert set(foreign) == {"cites_retrieved"} and "qs-zz-999" in foreign["cites_retrieved"]
    long = '{"answer": "' + "word " * 130 + '", "citations": ["qs-a-001"]}'
    res = validate(contracts.get("json_cited"), long, {"qs-a-001"}, contracts)
    (fail,) = [r for r in res if not r.passed]
    assert fail.name == "answer_words" and not fail.critical and "130 words" in fail.message


def test_markdown_and_plain(contracts) -> None:  # type: ignore[no-untyped-def]
    assert _failed(contracts, "markdown_brief", "Use **8 GB** of RAM [qs-a-001].") == {}
    assert set(_failed(contracts, "markdown_brief", "Use 8 GB [qs-q-404].")) == {"cites_retrieved"}
    assert _failed(contracts, "short_plain", "Quillstore needs 8 GB of RAM.") == {}
    bad = _failed(contracts, "short_plain", "It needs **8 GB**. That is all.")
    assert set(bad) == {"one_sentence", "no_markdown"}


def test_answer_text_reads_json_field(contracts) -> None:  # type: ignore[no-untyped-def]
    p = ParsedAnswer('{"answer": "Port 8480.", "citations": ["qs-a-001"]}', contracts.get("json_cited"))
    assert p.answer_text() == "Port 8480." and p.citations() == ["qs-a-001"]
    assert ParsedAnswer("See [qs-a-001] and [qs-b-002].", contracts.get("markdown_brief")).citations() == [
        "qs-a-001", "qs-b-002"]


def test_bad_contract_files(tmp_path: Path) -> None:
    (tmp_path / "contracts.toml").write_text('[contracts.x]\nchecks = [{ type = "lenght" }]\n')
    with pytest.raises(InputError, match=r"contracts\.x\.checks"):
        load_contracts(tmp_path)
    (tmp_path / "contracts.toml").write_text('[contracts.x]\nchecks = [{ type = "json_schema", schema = "no.json" }]\n')
    with pytest.raises(InputError, match=r"no\.json"):
        load_contracts(tmp_path)


def test_check_names_must_be_unique_and_regexes_valid(tmp_path: Path) -> None:
    (tmp_path / "contracts.toml").write_text(
        '[contracts.x]\nchecks = [{ type = "regex", pattern = "a" }, { type = "regex", pattern = "b" }]\n')
    with pytest.raises(InputError, match="both named 'regex'"):
        load_contracts(tmp_path)
    (tmp_path / "contracts.toml").write_text('[contracts.x]\nchecks = [{ type = "regex", pattern = "(a" }]\n')
    with pytest.raises(InputError, match="invalid regex"):
        load_contracts(tmp_path)
