"""`harness replay` of 10,000 logged queries at concurrency 16 against a 200 ms chat endpoint, against the
issue's ideal: queries x 2 manifests x latency / concurrency, plus the retrieval time measured alone.

The project is :func:`harness.testing.shadow.write_shadow_project`'s (the weightless hashing embedder, a flat
index over ~3,000 documents, the ``openai`` generator at a local
:class:`~harness.testing.fake_openai.FakeOpenAIServer` with ``latency_s=0.2`` running in this process), and
the log is :func:`~harness.testing.shadow.logged_traffic` over a seeded stream, every query made unique (the
stream repeats itself as production does, and a repeated prompt is one call: the ideal counts calls). The
replay compares the baseline with the neutral variant (another system prompt: every answer is a fresh call
on both sides).

Steps, each a subprocess of this venv's ``harness replay`` (wall time and peak RSS from ``os.wait4``), each
with its own cache folder (``HARNESS_CACHE_DIR``) unless said:

1. retrieval alone: the same replay through generator-free copies of both manifests, cold; the retrieval
   time is the sum of the two runs' ``retrieve`` stage (``stage_seconds``: embedding the queries, building
   the index, searching), the number the ideal adds;
2. cold: the real replay, empty cache, ``--concurrency 16``; measured = its wall time (start-up, reading the
   log, both runs, scoring, the diff and the gate included), with each side's stage breakdown;
3. warm: step 2 again on its cache: every answer cached, no request reaches the endpoint;
4. scale (only with ``REPLAY_SCALE``, a comma-separated list of record counts, e.g. ``10000,100000``): for
   each count, a log of that many unique queries replayed through the generator-free copies of step 1, cold;
   its wall time and peak RSS, and the peak's growth per record between the smallest and the largest count
   (the replay's memory per replayed record: its cases, what the pipeline holds of a side while it runs, the
   runs' columns; a stored run is read by columns and streamed, never loaded whole).

A replay scores its baseline while the candidate generates, so the cold step's "outside the two runs" is its
wall time less both runs' own work except the baseline's scoring (reported as overlapped).

Run from the project root: ``make bench replay``, or ``python -m bench.bench_replay [--quick]``.
``REPLAY_QUERIES`` (default 10,000; ``REPLAY_QUICK=1`` or ``--quick``: 1,000) sets the number of queries,
``REPLAY_LATENCY`` (0.2) the endpoint's latency, ``REPLAY_CONCURRENCY`` (16) the calls in flight;
``REPLAY_DIR`` keeps the project and the commands' output in that folder instead of a temporary one;
``REPLAY_SCALE`` adds step 4.
"""

from __future__ import annotations

import json
import os
import re
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.measure import OFFLINE, run_measured

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 1.2
# `harness replay` through the CLI's own entry point (registered here if the CLI does not list it yet)
DRIVER = ("import sys; from harness import cli; "
          "cli._COMMANDS.setdefault('replay', ('harness.commands.shadow', 'replay_cmd')); sys.exit(cli.main())")


def _run(argv: list[str], cwd: Path, log: Path, cache: Path) -> dict[str, Any]:
    """Run ``argv`` to completion; exit code, wall time and peak RSS (MB); stdout/stderr in ``log``.*"""
    env = {k: v for k, v in os.environ.items() if k not in {"HARNESS_HOME", "CI"}}
    env.update(OFFLINE, OPENAI_API_KEY="test", HARNESS_CACHE_DIR=str(cache))
    return run_measured(argv, cwd, log, env)


def _without_generator(manifest: Path, dest: Path) -> Path:
    """A copy of ``manifest`` (in the same folder, so its relative paths hold) with no generator: it only
    retrieves, and a replay of two such copies is the retrieval alone."""
    from harness.manifest import lock

    text = manifest.read_text("utf-8")
    text = re.sub(r"\n\[artifacts\.generator\]\n(?:(?!\n\[).)*", "\n", text, flags=re.S)
    dest.write_text(text, "utf-8")
    lock(dest)
    return dest


def _sides(report: dict[str, Any]) -> dict[str, Any]:
    """Each side's stage seconds (from its stored run's header), fresh calls and cache hits."""
    from harness.runs import read_header

    out: dict[str, Any] = {}
    for label in ("baseline", "candidate"):
        side = report[label]
        header = read_header(Path(side["run_path"]))
        out[label] = {"stages": {k: round(v, 2) for k, v in header.stage_seconds.items()},
                      "generated": side["generated"], "cache_hits": side["cache_hits"], "errors": side["errors"],
                      "seconds": round(side["seconds"], 2)}
    return out


def _replay(step: str, project: Path, baseline: Path, candidate: Path, log: Path, work: Path, cache: Path,
            concurrency: int, server: Any) -> dict[str, Any]:
    argv = [sys.executable, "-c", DRIVER, "-q", "replay", "--baseline", str(baseline), "--candidate",
            str(candidate), "--log", str(log), "--concurrency", str(concurrency), "--format", "json"]
    before = server.requests_received
    served = resource.getrusage(resource.RUSAGE_SELF)
    result = _run(argv, project, work / step, cache)
    after = resource.getrusage(resource.RUSAGE_SELF)
    result["requests"] = server.requests_received - before
    # this process does nothing but serve meanwhile: its CPU is the endpoint's
    result["endpoint_cpu_s"] = round(after.ru_utime + after.ru_stime - served.ru_utime - served.ru_stime, 1)
    result["max_in_flight"] = server.max_in_flight
    try:
        report = json.loads(Path(result["stdout"]).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        result["report"] = f"unreadable: {exc}"
        return result
    result["status"] = report["status"]
    result["replayed"] = report["selection"]["replayed"]
    result["sides"] = _sides(report)
    return result


def bench_replay(queries: int | None = None, *, latency: float | None = None, concurrency: int | None = None,
                 folder: Path | None = None) -> dict[str, Any]:
    quick = os.environ.get("REPLAY_QUICK", "") not in ("", "0")
    queries = queries or int(os.environ.get("REPLAY_QUERIES", 1_000 if quick else 10_000))
    latency = latency if latency is not None else float(os.environ.get("REPLAY_LATENCY", 0.2))
    concurrency = concurrency or int(os.environ.get("REPLAY_CONCURRENCY", 16))
    if folder is None and os.environ.get("REPLAY_DIR"):
        folder = Path(os.environ["REPLAY_DIR"])
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        work = Path(folder) if folder is not None else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        return _bench(work, queries, latency, concurrency)


def _bench(work: Path, queries: int, latency: float, concurrency: int) -> dict[str, Any]:
    from harness.manifest import load_manifest
    from harness.monitor.synthetic import StreamSpec
    from harness.testing.fake_openai import FakeOpenAIServer
    from harness.testing.shadow import logged_traffic, shadow_responder, write_shadow_project

    days = 7
    spec = StreamSpec(days=days, records_per_day=queries / days * 1.3)  # queries made unique below
    result: dict[str, Any] = {"queries": queries, "latency_s": latency, "concurrency": concurrency,
                              "cores": os.cpu_count()}
    with FakeOpenAIServer(latency_s=latency, responder=shadow_responder()) as server:
        t0 = time.perf_counter()
        project = write_shadow_project(work / "project", base_url=server.base_url, spec=spec,
                                       concurrency=concurrency)
        seen = [0]

        def unique(record: dict[str, Any], is_canary: bool) -> dict[str, Any]:
            seen[0] += 1
            return {**record, "query": f"{record['query']} (ticket {seen[0]})"}

        log = logged_traffic(spec, project.root / "logs" / "prod.jsonl",
                             manifest_id=load_manifest(project.baseline).id, edit=unique, limit=queries)
        with log.open("rb") as fh:
            result["records"] = sum(1 for _ in fh)
        result["setup_s"] = round(time.perf_counter() - t0, 1)

        base_r = _without_generator(project.baseline, project.root / "bench-retrieval-baseline.toml")
        cand_r = _without_generator(project.neutral, project.neutral.with_name("bench-retrieval-neutral.toml"))
        alone = _replay("retrieval", project.root, base_r, cand_r, log, work, work / "cache-retrieval", concurrency,
                        server)
        result["retrieval_alone"] = alone
        stages = [s["stages"].get("retrieve") for s in alone.get("sides", {}).values()]
        retrieval_s = sum(s for s in stages if s is not None) if stages and None not in stages else None

        result["scale"] = _scale(project, base_r, cand_r, work, concurrency, server)

        cold = _replay("cold", project.root, project.baseline, project.neutral, log, work, work / "cache", concurrency,
                       server)
        result["cold"] = cold
        warm = _replay("warm", project.root, project.baseline, project.neutral, log, work, work / "cache", concurrency,
                       server)
        result["warm"] = warm
    n = result["records"]
    generation_ideal = n * 2 * latency / concurrency
    result["ideal_generation_s"] = round(generation_ideal, 1)
    result["retrieval_s"] = None if retrieval_s is None else round(retrieval_s, 2)
    if retrieval_s is not None and cold["exit"] in (0, 1):
        ideal = generation_ideal + retrieval_s
        result["ideal_s"] = round(ideal, 1)
        result["ratio"] = round(cold["wall_s"] / ideal, 3)
        result["within_target"] = result["ratio"] <= TARGET_RATIO
        sides = cold.get("sides", {})
        # the baseline is scored while the candidate generates: its score stage is not on the replay's clock
        overlapped = sides.get("baseline", {}).get("stages", {}).get("score", 0.0)
        in_runs = sum(s["stages"].get("total", 0.0) for s in sides.values()) - overlapped
        result["cold_overlapped_s"] = round(overlapped, 1)
        result["cold_outside_runs_s"] = round(cold["wall_s"] - in_runs, 1)  # start-up, log, diff, gate, report
    _print_table(result)
    return result


def _scale_counts() -> list[int]:
    raw = os.environ.get("REPLAY_SCALE", "").strip()
    return sorted({int(x) for x in raw.split(",") if x.strip()}) if raw else []


def _scale(project: Any, baseline: Path, candidate: Path, work: Path, concurrency: int, server: Any
           ) -> list[dict[str, Any]]:
    """Step 4: the generator-free replay of each ``REPLAY_SCALE`` count of unique logged queries, cold."""
    from harness.manifest import load_manifest
    from harness.monitor.synthetic import StreamSpec
    from harness.testing.shadow import logged_traffic

    out: list[dict[str, Any]] = []
    for n in _scale_counts():
        spec = StreamSpec(days=7, records_per_day=n / 7 * 1.3)
        seen = [0]

        def unique(record: dict[str, Any], is_canary: bool, seen: list[int] = seen) -> dict[str, Any]:
            seen[0] += 1
            return {**record, "query": f"{record['query']} (ticket {seen[0]})"}

        log = logged_traffic(spec, project.root / "logs" / f"scale-{n}.jsonl",
                             manifest_id=load_manifest(project.baseline).id, edit=unique, limit=n)
        step = _replay(f"scale-{n}", project.root, baseline, candidate, log, work, work / f"cache-scale-{n}",
                       concurrency, server)
        step["records"] = n
        out.append(step)
    if len(out) > 1 and all(s["exit"] in (0, 1) for s in out):
        first, last = out[0], out[-1]
        growth = (last["peak_rss_mb"] - first["peak_rss_mb"]) * 1024 / (last["records"] - first["records"])
        for s in out:
            s["peak_kb_per_record_over_smallest"] = round(growth, 2)
    return out


def _print_table(r: dict[str, Any]) -> None:
    p = sys.stderr.write
    p(f"replay bench: {r['records']:,} logged queries x 2 manifests, {r['latency_s'] * 1000:.0f} ms endpoint, "
      f"concurrency {r['concurrency']}, {r['cores']} cores (setup {r['setup_s']} s)\n")
    p(f"{'step':<16}{'exit':>5}{'wall s':>9}{'cpu s':>7}{'peak MB':>9}{'requests':>10}{'srv cpu':>9}  stages per "
      "side (retrieve / generate / score / total s)\n")
    for step in ("retrieval_alone", "cold", "warm"):
        s = r[step]
        stages = "; ".join(f"{label} " + " / ".join(f"{side['stages'].get(k, 0):.1f}" for k in
                                                     ("retrieve", "generate", "score", "total"))
                           for label, side in s.get("sides", {}).items()) or " ".join(s.get("stderr_tail", []))
        p(f"{step:<16}{s['exit']:>5}{s['wall_s']:>9.1f}{s['cpu_s']:>7.1f}{s['peak_rss_mb']:>9.0f}"
          f"{s.get('requests', 0):>10,}{s.get('endpoint_cpu_s', 0):>9.1f}  {stages}\n")
    for s in r.get("scale", ()):
        p(f"{'scale ' + format(s['records'], ','):<16}{s['exit']:>5}{s['wall_s']:>9.1f}{s['cpu_s']:>7.1f}"
          f"{s['peak_rss_mb']:>9.0f}  generator-free replay; peak growth "
          f"{s.get('peak_kb_per_record_over_smallest', '-')} KB/record over the smallest count\n")
    if "ratio" in r:
        p(f"ideal = {r['records']:,} x 2 x {r['latency_s']} s / {r['concurrency']} = {r['ideal_generation_s']} s "
          f"+ retrieval alone {r['retrieval_s']} s = {r['ideal_s']} s; measured (cold) {r['cold']['wall_s']} s; "
          f"ratio {r['ratio']} (target <= {TARGET_RATIO}: {'met' if r['within_target'] else 'MISSED'}); "
          f"outside the two runs {r['cold_outside_runs_s']} s (the baseline's {r['cold_overlapped_s']} s of scoring "
          f"overlapped the candidate's generation); warm re-run {r['warm']['wall_s']} s with "
          f"{r['warm'].get('requests', 0)} requests\n")


if __name__ == "__main__":
    if "--quick" in sys.argv[1:]:
        os.environ["REPLAY_QUICK"] = "1"
    print(json.dumps(bench_replay(), indent=2))
