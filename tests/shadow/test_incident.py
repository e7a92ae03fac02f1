"""`harness incident`: the snapshot of an incident over a synthetic 3-day log (~11,500 records) where manifest A
(the shadow project's harness.toml) serves until day 2 12:00, then manifest B (variants/format-broken.toml) takes
10% of traffic and all of it from 18:00, with B's answers in geo=eu no longer JSON. Checked against the log
itself (hand-counted rates, scipy's chi-squared) and against a quiet log of the same stream (the false-alarm
check), a seasonal day, a reference too short to tell the daily cycle apart, and a log too small to judge.

The quiet log rewritten gives the traffic incidents: an outage (from day 3 12:00, 92% of the records never reach
the log and the rest are errors: the volume and the error rate, by Fisher's exact test at 1-24 records, checked
against scipy), a segment value that vanishes, a flood, and a window too thin to test whose volume drop is not
significant on its own (cannot judge, never quiet)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import random
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from scipy import stats as sps

from harness.commands.incident import incident_cmd
from harness.errors import HarnessError
from harness.manifest import LoadedManifest, load_manifest
from harness.monitor.synthetic import StreamSpec
from harness.shadow.incident import VOLUME_DROP, IncidentSnapshot, incident_snapshot, parse_window
from harness.storage import Layout
from harness.testing.shadow import ShadowProject, logged_traffic, write_shadow_project

UTC = dt.UTC
SPEC = StreamSpec(days=3, records_per_day=3300)  # starts Monday 2026-11-02
SWITCH = dt.datetime(2026, 11, 3, 12, tzinfo=UTC)  # B's canary start (10%); all traffic from SWITCH + 6 h
SINCE = dt.datetime(2026, 11, 3, tzinfo=UTC)


def _ts(rec: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(str(rec["timestamp"]).replace("Z", "+00:00"))


def serves_b(rec: dict[str, Any]) -> bool:
    ts = _ts(rec)
    share = hashlib.sha256(str(rec["id"]).encode()).digest()[0] / 256
    return ts >= SWITCH and (ts >= SWITCH + dt.timedelta(hours=6) or share < 0.1)


def breaking(b_id: str) -> Callable[[dict[str, Any], bool], dict[str, Any]]:
    def edit(rec: dict[str, Any], is_canary: bool) -> dict[str, Any]:
        if serves_b(rec):
            rec["manifest_id"] = b_id
            if rec.get("geo") == "eu" and isinstance(rec.get("answer"), str):
                rec["answer"] = json.loads(rec["answer"])["answer"]  # the plain prompt: no JSON any more
        return rec

    return edit


@dataclass
class World:
    project: ShadowProject
    a: LoadedManifest
    b: LoadedManifest
    layout: Layout
    incident_log: Path
    quiet_log: Path
    incident: IncidentSnapshot
    quiet: IncidentSnapshot


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("incident")
    sp = write_shadow_project(root / "proj", base_url="http://127.0.0.1:9/v1", n_distractors=10)
    a, b = load_manifest(sp.baseline), load_manifest(sp.format_broken)
    inc = logged_traffic(SPEC, root / "logs" / "incident.jsonl", manifest_id=a.id, edit=breaking(b.id))
    quiet = logged_traffic(SPEC, root / "logs" / "quiet.jsonl", manifest_id=a.id)
    layout = Layout.for_manifest(sp.baseline)
    return World(sp, a, b, layout, inc, quiet, incident_snapshot(a, layout, since=SINCE, log=inc),
                 incident_snapshot(a, layout, since=SINCE, log=quiet))


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def _format_valid(rec: dict[str, Any]) -> bool:
    """The json_cited contract by hand: a JSON object citing at least one retrieved passage."""
    try:
        obj = json.loads(rec["answer"])
    except (TypeError, ValueError):
        return False
    retrieved = {d["doc_id"] for d in rec.get("retrieved") or ()}
    cited = obj.get("citations") if isinstance(obj, dict) else None
    return isinstance(cited, list) and len(cited) >= 1 and set(cited) <= retrieved


# ---- the incident -----------------------------------------------------------------------------------------


def test_the_snapshot_names_the_deployment_the_first_moved_window_and_the_segment(world: World) -> None:
    s = world.incident
    assert s.status == "moved" and s.exit_code == 1
    events = [(d.manifest_id, d.event) for d in s.deployments]
    assert (world.a.id, "live_at_start") in events and (world.b.id, "canary") in events
    assert (world.b.id, "rollout") in events and (world.a.id, "gone") in events
    canary = next(d for d in s.deployments if d.event == "canary")
    assert SWITCH <= canary.at < SWITCH + dt.timedelta(minutes=30) and 0.05 <= canary.share < 0.2
    rollout = next(d for d in s.deployments if d.event == "rollout")
    assert rollout.at >= SWITCH + dt.timedelta(hours=6)
    # the first moved window is at the deployment, not before it: nothing moved in the 12 hours of A alone
    assert s.first_moved is not None
    first = s.buckets[s.first_moved]
    assert first.start == SWITCH
    assert all(s.buckets[m.bucket].start >= SWITCH for m in s.moves)
    judged_before = [b for b in s.buckets if b.judged and b.start < SWITCH]
    assert len(judged_before) == 12
    # what moved is format_valid, and the segment named first is geo=eu (the other geo values did not move)
    assert {m.signal for m in s.moves if m.bucket == s.first_moved} == {"format_valid"}
    assert s.segments_hit[0].segment == "geo=eu" and s.segments_hit[0].signals == ("format_valid",)
    assert s.segments_hit[0].specific
    assert not any(h.segment in ("geo=us", "geo=apac") and "format_valid" in h.signals for h in s.segments_hit)
    device = [h for h in s.segments_hit if h.segment.startswith("device=")]
    assert device and not any(h.specific for h in device)  # eu is on every device: no device is the cause
    # the versions: A before, B after, each found in the project, and the prompt change with its text diff
    assert [(v.manifest_id, v.role, v.found, v.source) for v in s.versions] == [
        (world.a.id, "before", True, "harness.toml"), (world.b.id, "after", True, "variants/format-broken.toml")]
    (diff,) = s.diffs
    assert (diff.before, diff.after) == (world.a.id, world.b.id)
    assert [(c.role, c.change, c.base_version, c.head_version) for c in diff.changes] == [
        ("prompt", "changed", "answer", "answer-plain")]
    text = diff.changes[0].text_diff or ""
    assert "-{% if contract %}Format: {{ contract.prompt }}{% endif %}" in text and "+\"\"\"" in text
    assert s.verdict.startswith(f"first moved {first.label}, the window in which manifest {world.b.id[:8]}.. took")
    assert "format_valid down 100% →" in s.verdict and "in geo=eu" in s.verdict
    assert s.verdict.endswith("changed: prompt (answer.toml → answer-plain.toml)")


def test_the_moved_rate_and_its_p_value_match_the_log(world: World) -> None:
    s = world.incident
    move = next(m for m in s.moves if m.bucket == s.first_moved and m.segment == "geo=eu")
    # records without an answer (an error) have no format_valid: left out, never counted as passing
    recs = [r for r in _records(world.incident_log) if r.get("geo") == "eu" and isinstance(r.get("answer"), str)]
    cur = [r for r in recs if SWITCH <= _ts(r) < SWITCH + dt.timedelta(hours=1)]
    ref = [r for r in recs if SWITCH - dt.timedelta(days=1) <= _ts(r) < SWITCH - dt.timedelta(hours=23)]
    cur_ok, ref_ok = sum(map(_format_valid, cur)), sum(map(_format_valid, ref))
    assert (move.n_window, move.n_reference) == (len(cur), len(ref))
    assert move.window_value == pytest.approx(cur_ok / len(cur)) and move.reference_value == 1.0
    assert cur_ok < len(cur) and sum(serves_b(r) for r in cur) == len(cur) - cur_ok  # exactly B's eu answers fail
    chi = sps.chi2_contingency([[ref_ok, len(ref) - ref_ok], [cur_ok, len(cur) - cur_ok]], correction=False)
    assert move.p_value == pytest.approx(chi.pvalue, rel=1e-9)
    assert move.p_value <= move.p_adjusted <= s.tested.alpha
    assert move.by_manifest == {world.a.id: 1.0, world.b.id: 0.0}
    # after the rollout every eu answer fails
    late = [m for m in s.moves if m.segment == "geo=eu" and s.buckets[m.bucket].start >= SWITCH + dt.timedelta(hours=6)]
    assert late and all(m.window_value == 0.0 for m in late)


def test_a_quiet_log_moves_nothing(world: World) -> None:
    s = world.quiet
    assert s.status == "quiet" and s.exit_code == 0 and s.moves == () and s.first_moved is None
    assert s.segments_hit == () and s.diffs == ()
    assert [v.role for v in s.versions] == ["before"]
    assert s.tested.n_buckets == 48 and s.tested.n_tests > 1000 and s.aligned == "slot"
    assert s.verdict.startswith("nothing moved: 48 buckets x 11 signals (volume included) x 6 segments")
    # the volume is tested in every bucket and segment value, and never moves on a quiet day
    assert s.tested.n_volume_tests == 48 * 6 and s.tested.blind_buckets == () and s.tested.vanished == ()
    assert all(b.expected is not None and 0.6 < b.n / b.expected < 1.6 for b in s.buckets if b.judged)


def test_a_seasonal_day_is_no_incident_but_an_unaligned_reference_says_it_cannot_tell(world: World) -> None:
    day = incident_snapshot(world.a, world.layout, since=dt.datetime(2026, 11, 4, tzinfo=UTC), log=world.quiet_log)
    assert day.status == "quiet" and day.aligned == "slot" and day.tested.n_buckets == 24
    assert day.reference_start == dt.datetime(2026, 11, 3, tzinfo=UTC)
    # half a day of reference (the night and morning) against the afternoon: the daily cycle moves latency
    # and the segment mix, and the snapshot says it could not tell the cycle apart
    half = incident_snapshot(world.a, world.layout, since=dt.datetime(2026, 11, 2, 12, tzinfo=UTC),
                             until=dt.datetime(2026, 11, 3, tzinfo=UTC), log=world.quiet_log)
    assert half.aligned == "none" and any("daily cycle cannot be told" in n for n in half.notes)
    assert half.moves and "the daily cycle is not told apart" in half.verdict


def test_with_nothing_before_since_the_reference_is_the_old_manifest_before_its_deployment(world: World) -> None:
    s = incident_snapshot(world.a, world.layout, since=dt.datetime(2026, 11, 2, tzinfo=UTC), log=world.incident_log)
    assert s.reference_manifest == world.a.id and s.reference_start == dt.datetime(2026, 11, 2, tzinfo=UTC)
    assert s.reference_end == SWITCH and s.aligned == "slot"
    assert s.first_moved is not None and s.buckets[s.first_moved].start == SWITCH
    assert not any(b.judged for b in s.buckets if b.start < SWITCH)


def test_too_few_records_cannot_judge(world: World, tmp_path: Path) -> None:
    # 60 records a day: 0-8 an hour. The volume and a few exact rate tests can be made, but most windows are
    # judged on the volume alone: that is no "nothing moved"
    log = logged_traffic(StreamSpec(days=3, records_per_day=60), tmp_path / "small.jsonl", manifest_id=world.a.id)
    s = incident_snapshot(world.a, world.layout, since=SINCE, log=log)
    assert s.status == "cannot_judge" and s.exit_code == 1 and s.moves == ()
    t = s.tested
    assert t.untestable > 0 and 2 * (t.n_buckets - len(t.volume_only) - len(t.blind_buckets)) < t.n_buckets
    assert s.verdict.startswith("cannot judge: ") and "could be tested on a signal other than the volume" in s.verdict


def test_manifests_from_the_replay_store_and_ids_found_nowhere(tmp_path: Path) -> None:
    sp = write_shadow_project(tmp_path / "p", base_url="http://127.0.0.1:9/v1", n_distractors=10)
    a, c = load_manifest(sp.baseline), load_manifest(sp.coarse_ivf)
    sp.coarse_ivf.unlink()  # only a replay's run remembers it
    layout = Layout.for_manifest(sp.baseline)
    run = layout.home / "replays" / "r1" / c.id / "run-1.json"
    run.parent.mkdir(parents=True)
    run.write_text(json.dumps({"format_version": 3, "run_id": "run-1", "created_at": "2026-11-03T00:00:00Z",
                               "manifest_id": c.id, "aggregates": {"overall": {}},
                               "manifest": c.manifest.model_dump(mode="json")}))

    def edit(rec: dict[str, Any], _: bool) -> dict[str, Any]:
        h = hashlib.sha256(str(rec["id"]).encode()).digest()
        if _ts(rec) >= SWITCH:
            rec["manifest_id"] = c.id if h[0] < 128 else "deadbeef"
        if h[1] < 8:
            rec.pop("manifest_id")
        return rec

    log = logged_traffic(StreamSpec(days=3, records_per_day=1200), tmp_path / "log.jsonl", manifest_id=a.id,
                         edit=edit)
    s = incident_snapshot(a, layout, since=SINCE, log=log, window=parse_window("2h"))
    assert s.unknown_records > 0 and any("carry no manifest id" in n for n in s.notes)
    assert s.reference_manifest == a.id
    found = {v.manifest_id: v for v in s.versions}
    assert found[c.id].found and found[c.id].source == f"run replays/r1/{c.id}/run-1.json"
    assert not found["deadbeef"].found and found["deadbeef"].note == "manifest not found"
    diffs = {d.after: d for d in s.diffs}
    assert diffs["deadbeef"].note == "manifest not found: deadbeef" and diffs["deadbeef"].changes == ()
    assert [(ch.role, ch.base_version, ch.head_version) for ch in diffs[c.id].changes] == [
        ("index", "flat", "ivf-coarse")]


def test_parse_window() -> None:
    assert parse_window("1h") == dt.timedelta(hours=1) and parse_window("15m") == dt.timedelta(minutes=15)
    assert parse_window("1d") == dt.timedelta(days=1)
    for bad in ("7m", "5h", "0.5m", "2d", "soon"):
        with pytest.raises(HarnessError):
            parse_window(bad)


# ---- the faces and the command ------------------------------------------------------------------------------


def test_markdown_and_json_faces(world: World) -> None:
    from harness.report.incident import incident_json, incident_text

    md = incident_text(world.incident, fmt="md")
    assert md.startswith("# Incident snapshot:") and "**INCIDENT**: first moved" in md
    assert "| 2026-11-03 12:04 UTC | `" in md and "| canary | 10% |" in md
    assert "```diff\n--- base/prompts/answer.toml\n" in md and "\n-{% if contract %}Format:" in md
    assert "| geo=eu | `format_valid` |" in md
    text = incident_text(world.quiet)
    assert text.startswith("QUIET: nothing moved") and "Moved signals\n  none: tested 48 windows" in text
    data = incident_json(world.incident)
    assert data["status"] == "moved" and data["exit_code"] == 1 and data["first_moved"] == world.incident.first_moved
    assert json.loads(json.dumps(data))["diffs"][0]["changes"][0]["role"] == "prompt"


def _invoke(args: list[str]) -> Any:
    return CliRunner().invoke(incident_cmd, args, catch_exceptions=False)


def test_cli_exit_codes_and_outputs(world: World, tmp_path: Path) -> None:
    base = ["--manifest", str(world.project.baseline)]
    quiet = _invoke([*base, "--log", str(world.quiet_log), "--since", "2026-11-04", "--format", "json"])
    assert quiet.exit_code == 0 and json.loads(quiet.stdout)["status"] == "quiet"
    out = world.project.root / "reports" / "incident.html"
    out.parent.mkdir(exist_ok=True)
    res = _invoke([*base, "--log", str(world.incident_log), "--since", "2026-11-03T00:00Z", "--format", "html",
                   "-o", str(out)])
    assert res.exit_code == 1 and res.stdout == ""
    assert res.stderr.startswith("moved: first moved 2026-11-03 12:00-13:00 UTC")
    assert sorted(p.name for p in out.parent.iterdir()) == ["incident.html"]
    html = out.read_text("utf-8")
    assert html.startswith("<!doctype html>") and "http://" not in html and "https://" not in html
    # bad input: one line, exit 2, nothing written
    bad_out = world.project.root / "reports" / "bad.html"
    for args, message in (
        (["--since", "yesterday"], "--since: 'yesterday' is not a time"),
        (["--since", "2026-11-03", "--window", "7m"], "--window: '7m'"),
        (["--since", "2026-11-03", "--until", "2026-11-02"], "is not after --since"),
        (["--since", "2026-12-30"], "no records at or after --since"),
    ):
        r = _invoke([*base, "--log", str(world.incident_log), *args, "--format", "html", "-o", str(bad_out)])
        assert r.exit_code == 2, (args, r.output)
        assert len(r.stderr.strip().splitlines()) == 1 and message in r.stderr, r.stderr
    r = _invoke([*base, "--log", str(tmp_path / "missing.jsonl"), "--since", "2026-11-03"])
    assert r.exit_code == 2 and "no such file" in r.stderr
    assert not bad_out.exists()
    r = _invoke([*base, "--since", "2026-11-03"])  # no --log and nothing ingested
    assert r.exit_code == 2 and "no production records" in r.stderr


def test_an_unknown_segment_key_is_bad_input(world: World) -> None:
    assert world.a.manifest.monitor is not None
    cfg = world.a.manifest.monitor.model_copy(update={"segments": ("region",)})
    with pytest.raises(HarnessError, match="'region' is on no record"):
        incident_snapshot(world.a, world.layout, since=SINCE, log=world.quiet_log, config=cfg)


def test_the_command_in_a_pipe(world: World) -> None:
    driver = ("import sys; from harness import cli; "
              "cli._COMMANDS.setdefault('incident', ('harness.commands.incident', 'incident_cmd')); "
              "sys.exit(cli.main())")
    env = {k: v for k, v in os.environ.items() if k not in {"HARNESS_HOME", "HARNESS_CACHE_DIR"}}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-c", driver, "incident", "--manifest", str(world.project.baseline),
                           "--log", str(world.incident_log), "--since", "2026-11-03", "--format", "md"],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.startswith("# Incident snapshot:") and "\x1b[" not in proc.stdout


def test_manifest_changes_reads_texts_from_the_snapshot_store_or_the_given_reader(world: World) -> None:
    from harness.diff.artifacts import manifest_changes

    (plain,) = manifest_changes(world.a.manifest, world.b.manifest, world.layout)
    assert plain.role == "prompt" and plain.text_diff is None  # nothing snapshotted: no run stored these files
    texts = {"prompts/answer.toml": "a\nFormat\n", "../prompts/answer-plain.toml": "a\n"}
    (read,) = manifest_changes(world.a.manifest, world.b.manifest, world.layout,
                               read_text=lambda art: texts.get(art.path or ""))
    assert read.text_diff is not None and "-Format\n" in read.text_diff
    assert read.model_copy(update={"text_diff": None}) == plain


def test_windows_follow_the_monitor_time_zone_and_start_at_since(world: World) -> None:
    from zoneinfo import ZoneInfo

    assert world.a.manifest.monitor is not None
    cfg = world.a.manifest.monitor.model_copy(update={"timezone": "Europe/Paris"})
    paris = ZoneInfo("Europe/Paris")
    since = dt.datetime(2026, 11, 4, 0, 30, tzinfo=paris)
    s = incident_snapshot(world.a, world.layout, since=since, log=world.quiet_log, config=cfg)
    judged = [b for b in s.buckets if b.judged]
    assert judged[0].start == since and judged[0].label == "2026-11-04 00:30-01:00 CET"
    assert judged[1].start == dt.datetime(2026, 11, 4, 1, tzinfo=paris)
    assert all(b.label.endswith(" CET") for b in s.buckets)
    assert s.status == "quiet" and s.aligned == "slot"


def test_no_reference_and_no_deployment_cannot_judge(world: World) -> None:
    s = incident_snapshot(world.a, world.layout, since=dt.datetime(2026, 11, 1, tzinfo=UTC), log=world.quiet_log)
    assert s.status == "cannot_judge" and s.reference_records == 0
    assert any("nothing can be compared" in n for n in s.notes)


# ---- traffic: the volume is a signal, untestable is not quiet ---------------------------------------------------

DAY3 = dt.datetime(2026, 11, 4, tzinfo=UTC)
OUTAGE = DAY3 + dt.timedelta(hours=12)
HOUR, DAY = dt.timedelta(hours=1), dt.timedelta(days=1)


def _rewrite(src: Path, dst: Path, fn: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> Path:
    dst.write_text("".join(json.dumps(r) + "\n" for r in fn(_records(src))), "utf-8")
    return dst


def _lose_traffic(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """From OUTAGE on, 92% of the records never reach the log, and every one that does is an error."""
    rng = random.Random(3)
    out = []
    for r in recs:
        if _ts(r) >= OUTAGE:
            if rng.random() < 0.92:
                continue
            r = {**r, "error": "upstream_500", "answer": None, "retrieved": []}
        out.append(r)
    return out


@pytest.fixture(scope="module")
def outage(world: World, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, IncidentSnapshot]:
    path = _rewrite(world.quiet_log, tmp_path_factory.mktemp("outage") / "outage.jsonl", _lose_traffic)
    return path, incident_snapshot(world.a, world.layout, since=DAY3, log=path)


def test_an_outage_moves_the_volume_and_the_error_rate_in_its_first_window(outage: tuple[Path, IncidentSnapshot]
                                                                            ) -> None:
    path, s = outage
    assert s.status == "moved" and s.exit_code == 1
    assert s.first_moved is not None
    first = s.buckets[s.first_moved]
    assert first.start == OUTAGE
    in_first = {(m.signal, m.segment): m for m in s.moves if m.bucket == s.first_moved}
    vol, err = in_first[("volume", "all")], in_first[("error_kind", "all")]
    # by hand: the window's records against the same hour of the reference day (one day: the lengths are equal)
    recs = _records(path)
    cur = [r for r in recs if OUTAGE <= _ts(r) < OUTAGE + HOUR]
    ref = [r for r in recs if OUTAGE - DAY <= _ts(r) < OUTAGE - DAY + HOUR]
    assert (vol.n_window, vol.n_reference, vol.window_value, vol.reference_value) == (
        len(cur), len(ref), len(cur), len(ref))
    assert first.n == len(cur) and first.expected == len(ref) and len(cur) < 0.15 * len(ref)
    assert vol.window_value is not None and vol.window_value / len(ref) < VOLUME_DROP and vol.test == "binomial"
    # the family's test: fewer records than half the expected (the tolerance), exact conditional binomial
    tol = sps.binomtest(len(cur), len(cur) + len(ref), 0.5 / (0.5 + 1), alternative="less")
    assert vol.p_value == pytest.approx(tol.pvalue, rel=1e-9) and vol.p_adjusted <= s.tested.alpha
    # the error rate at 1-24 records: Fisher's exact test (chi-squared's expected counts are far under 5)
    ref_err = sum(r.get("error") is not None for r in ref)
    assert all(r.get("error") is not None for r in cur) and 0 < ref_err < 0.05 * len(ref)
    assert err.test == "fisher" and err.window_value == 1.0 and err.reference_value == pytest.approx(ref_err / len(ref))
    fisher = sps.fisher_exact([[ref_err, len(ref) - ref_err], [len(cur), 0]])
    assert err.p_value == pytest.approx(fisher.pvalue, rel=1e-9) and err.p_adjusted <= s.tested.alpha
    assert s.verdict.startswith(f"first moved {first.label}, with no deployment before it; volume down to ")
    assert "in all (also error_kind" in s.verdict
    # every outage window lost its traffic; no window before it did
    down = {m.bucket for m in s.moves if m.signal == "volume" and m.segment == "all"}
    assert down == {b.index for b in s.buckets if b.judged and b.start >= OUTAGE}
    # the error rate is tested in every outage window (5-24 records: exactly)
    errs = {m.bucket for m in s.moves if m.signal == "error_kind" and m.segment == "all"}
    assert errs == down and s.tested.blind_unexplained == ()
    # BH lets a few weak moves through before the outage (about alpha of the moves may be false): listed, but
    # the first moved window is the first with a move significant under Holm, or repeated in the next window
    early = [m for m in s.moves if m.bucket < s.first_moved]
    assert len(early) == s.early_moves <= 0.05 * len(s.moves) + 1
    assert all(m.p_holm is not None and m.p_holm > s.tested.alpha for m in early)
    assert vol.p_holm is not None and vol.p_holm <= s.tested.alpha


def test_a_vanished_segment_value_is_counted_and_its_volume_tested(world: World, tmp_path: Path) -> None:
    path = _rewrite(world.quiet_log, tmp_path / "vanish.jsonl",
                    lambda recs: [r for r in recs if not (r.get("geo") == "apac" and _ts(r) >= DAY3)])
    s = incident_snapshot(world.a, world.layout, since=DAY3, log=path)
    assert s.tested.vanished == ("geo=apac",) and any("geo=apac" in n for n in s.notes)
    assert s.status == "moved" and s.first_moved is not None and s.buckets[s.first_moved].start == DAY3
    # the overall volume lost only apac's share: within the tolerance (other signals may move with the mix)
    volume = [m for m in s.moves if m.signal == "volume"]
    assert volume and {m.segment for m in volume} == {"geo=apac"}
    assert all(m.window_value == 0 and m.n_window == 0 for m in volume)
    assert s.segments_hit[0].segment == "geo=apac" and s.segments_hit[0].signals == ("volume",)
    assert "volume down to 0% of the expected" in s.verdict and "in geo=apac" in s.verdict


def test_a_flood_is_a_move(world: World, tmp_path: Path) -> None:
    """Day 1's and day 2's 10:00 hour copied into day 3's: three times the traffic, from the same distribution."""
    flood_at = DAY3 + dt.timedelta(hours=10)

    def flood(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = list(recs)
        for r in recs:
            for d in (1, 2):
                if flood_at - d * DAY <= _ts(r) < flood_at - d * DAY + HOUR:
                    at = (_ts(r) + d * DAY).isoformat().replace("+00:00", "Z")
                    out.append({**r, "id": f"{r['id']}-copy{d}", "timestamp": at})
        return sorted(out, key=lambda r: str(r["timestamp"]))

    path = _rewrite(world.quiet_log, tmp_path / "flood.jsonl", flood)
    s = incident_snapshot(world.a, world.layout, since=DAY3, log=path)
    assert s.status == "moved" and s.first_moved is not None and s.buckets[s.first_moved].start == flood_at
    assert {m.bucket for m in s.moves} == {s.first_moved} and {m.signal for m in s.moves} == {"volume"}
    top = next(m for m in s.moves if m.segment == "all")
    assert top.window_value is not None and top.reference_value is not None
    assert top.window_value > 2 * top.reference_value and "volume up to " in s.verdict


def test_a_window_too_thin_to_test_is_never_quiet(world: World, tmp_path: Path) -> None:
    """15-minute windows, min_window 10: the 03:00 window keeps 2 of its records. Its reference slot held 10+,
    so it should have been testable; 2 records against 13 expected is not significant on its own: the
    snapshot cannot judge (the same log with the window intact is quiet)."""
    assert world.a.manifest.monitor is not None
    cfg = world.a.manifest.monitor.model_copy(update={"min_window": 10})
    thin_at = DAY3 + dt.timedelta(hours=3)

    def thin(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        inside = [r for r in recs if thin_at <= _ts(r) < thin_at + dt.timedelta(minutes=15)]
        return [r for r in recs if r not in inside[2:]]

    path = _rewrite(world.quiet_log, tmp_path / "thin.jsonl", thin)
    s = incident_snapshot(world.a, world.layout, since=DAY3, log=path, window=parse_window("15m"), config=cfg)
    (i,) = s.tested.blind_unexplained
    b = s.buckets[i]
    assert b.start == thin_at and b.n == 2 and b.blind and b.expected is not None and b.expected >= 10
    assert s.status == "cannot_judge" and s.exit_code == 1 and s.moves == ()
    assert s.verdict.startswith("cannot judge: 1 of 96 buckets too thin for any test but the volume")
    assert f"{b.label}: 2 records" in s.verdict
    intact = incident_snapshot(world.a, world.layout, since=DAY3, log=world.quiet_log, window=parse_window("15m"),
                               config=cfg)
    assert intact.status == "quiet" and intact.tested.blind_buckets == () and intact.moves == ()


def test_the_outage_faces(outage: tuple[Path, IncidentSnapshot]) -> None:
    from harness.report.incident import incident_text

    _, s = outage
    md = incident_text(s, fmt="md")
    assert "| `volume` | all | 260 → 22 (records, 8% of expected) |" in md
    assert "437 tests in one Benjamini-Hochberg family (alpha 0.05: 144 of the volume, 99 rates by Fisher's" in md
    series = {(p.signal, p.segment) for p in s.series}
    assert ("volume", "all") in series
    points = [p for p in s.series if (p.signal, p.segment) == ("volume", "all") and p.bucket >= 0]
    assert [p.n for p in points] == [b.n for b in s.buckets]
    assert all(p.expected is not None for p in points if s.buckets[p.bucket].judged)


def test_the_cell_selections_are_the_masks_they_replace() -> None:
    """Every per-cell selection comes from row indices grouped once (one argsort), not a mask over the table
    per cell: the groups hold exactly the rows the masks would select, in order."""
    import numpy as np

    from harness.shadow.incident import _group, _tally

    rng = np.random.default_rng(0)
    n = 20_000
    bucket, code = rng.integers(0, 300, n), rng.integers(0, 4, n)
    rows = np.flatnonzero(rng.random(n) < 0.7)  # a subset (the reference's rows)
    key = bucket[rows] * 5 + code[rows]
    groups = _group(rows, key)
    assert sum(g.size for g in groups.values()) == rows.size
    for b in (0, 17, 299):
        for c in range(4):
            mask = np.zeros(n, dtype=bool)
            mask[rows] = True
            expected = np.flatnonzero(mask & (bucket == b) & (code == c))
            assert np.array_equal(groups.get(b * 5 + c, np.zeros(0, dtype=np.int64)), expected)
    assert _tally(key) == {int(k): int(v) for k, v in zip(*np.unique(key, return_counts=True), strict=True)}
