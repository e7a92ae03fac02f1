"""A monitor pass's inputs from a project: its manifest's ``[monitor]`` table, golden set, output contracts,
embedding model (with the project's cache) and groundedness checker, and the project's log store."""

from __future__ import annotations

import datetime as dt
import functools
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from harness.cache import Cache
from harness.errors import HarnessError
from harness.hashing import sha256_parts
from harness.manifest import LoadedManifest
from harness.monitor.run import MonitorInputs, SampledSignals, Window, local_hours, zone
from harness.monitor.schema import signals_dir
from harness.monitor.store import LogStore
from harness.progress import NULL_PROGRESS, Progress
from harness.storage import Layout
from harness.types import MonitorConfig


def _sql_list(ids: Sequence[str]) -> str:
    return ", ".join("'" + i.replace("'", "''") + "'" for i in ids)


def monitor_inputs(loaded: LoadedManifest, layout: Layout, *, progress: Progress = NULL_PROGRESS,
                   config: MonitorConfig | None = None) -> tuple[MonitorInputs, Cache]:
    """Everything a pass reads, checked before anything is computed: the store must hold records."""
    from harness.golden import load_golden
    from harness.pipeline import stage_inputs
    from harness.retrieve import make_embedder

    cfg = config or loaded.manifest.monitor or MonitorConfig()
    zone(cfg.timezone)
    store = LogStore(layout)
    parts = store.parts()
    if not parts:
        raise HarnessError(f"no production records in {layout.home / 'logs'}: run `harness ingest LOG` first")
    by_day: dict[str, list[Path]] = defaultdict(list)
    for p in parts:
        by_day[p.parent.name.removeprefix("day=")].append(p)
    inputs = stage_inputs(loaded)
    golden = load_golden(loaded.resolve("golden")) if "golden" in loaded.manifest.artifacts else []
    cache = Cache(layout.cache_db)
    embed = None
    if inputs.embedding is not None:
        embedder = make_embedder(inputs.embedding[0], inputs.embedding[1], cache, progress)
        embed = embedder.embed
    tz = zone(cfg.timezone)

    # A day is read as the current window of two comparisons and as the reference of the next day's: keep the
    # last few reads rather than query DuckDB again (a handful of days' columns, not the store).
    @functools.lru_cache(maxsize=8)
    def read_window(w: Window, columns: tuple[str, ...]) -> pa.Table:
        t = store.read(w.start, w.end, columns=list(dict.fromkeys([*columns, "ts"])))
        if w.hours is not None and t.num_rows:
            t = t.filter(pa.array(np.isin(local_hours(t["ts"], tz), sorted(w.hours))))
        return t

    def read_raw(w: Window, columns: Sequence[str]) -> pa.Table:
        return read_window(w, tuple(columns))

    grounded = _groundedness(store, embedder, cache) if embed is not None and cfg.groundedness_sample else None
    sampled = SampledSignals(embed=embed, golden_queries=[c.query for c in golden], groundedness=grounded)
    return MonitorInputs(project=str(layout.project or loaded.base_dir), config=cfg, parts_by_day=dict(by_day),
                         cache_root=signals_dir(layout), contracts=inputs.contracts, sampled=sampled,
                         read_raw=read_raw), cache


def _groundedness(store: LogStore, embedder: Any, cache: Cache) -> Any:
    """Groundedness of sampled records' answers in their logged contexts, cached per record content under the
    checker's identity (its code, model and settings, and the embedding model's: a changed one is checked
    again, never served an old verdict)."""
    from harness.grounding import GroundednessChecker
    from harness.pipeline import _embed_identity
    from harness.scorers.grounded import checker_identity

    checker = GroundednessChecker(embed=embedder.embed)
    identity = checker_identity(checker, _embed_identity(embedder))

    def score(ids: list[str]) -> dict[str, float | None]:
        rows = store.read(columns=["record_id", "answer", "contexts"],
                          where=f"record_id IN ({_sql_list(ids)})").to_pylist()
        out: dict[str, float | None] = {i: None for i in ids}
        todo = [r for r in rows if r["answer"] and r["answer"].strip() and r["contexts"]]
        keys = {r["record_id"]: sha256_parts("monitor-groundedness-2", identity, r["answer"], *r["contexts"])
                for r in todo}
        found = cache.get_many_json("signals", keys.values())
        missing = [r for r in todo if keys[r["record_id"]] not in found]
        if missing:
            results = checker.check_many([r["answer"] for r in missing], [list(r["contexts"]) for r in missing])
            new = {keys[r["record_id"]]: float(res.score) for r, res in zip(missing, results, strict=True)}
            cache.put_many_json("signals", new)
            found.update(new)
        for r in todo:
            out[r["record_id"]] = found.get(keys[r["record_id"]])
        return out

    return score


def default_days(parts_by_day: dict[str, list[Path]]) -> list[dt.date]:
    return sorted(dt.date.fromisoformat(d) for d in parts_by_day)
