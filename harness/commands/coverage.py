"""coverage (gap clusters of production queries -> golden-case candidates), golden append."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from harness.cli import HarnessCommand, HarnessGroup
from harness.options import MANIFEST, click_options

if TYPE_CHECKING:
    from harness.monitor.coverage import CoverageReport

manifest_option = click_options(MANIFEST)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def render_text(report: CoverageReport) -> str:
    """The gap clusters as a terminal table, most traffic first, with their representative queries."""
    r = report
    sampled = f"{r.sampled} of {r.population}" if r.sampled < r.population else f"all {r.population}"
    rule = f"{r.threshold_rule}" if r.alpha is None else f"conformal, alpha={r.alpha}"
    lines = [
        f"coverage: {sampled} records embedded ({r.distinct_queries} distinct queries); {r.golden_cases} golden cases"
        + (f"; window {r.window.get('since', '...')} .. {r.window.get('until', '...')}" if r.window else ""),
        f"threshold: cosine distance {r.threshold:.4f} to the nearest golden case ({rule}); "
        f"{_pct(r.uncovered_share)} of the sampled records are farther",
        f"clusters: {r.k} (spherical k-means, seed {r.seed}); a gap has >= {r.min_count} records, "
        f">= {_pct(r.gap_share)} of them farther than the threshold",
    ]
    gaps = r.gaps
    if not gaps:
        lines.append("no coverage gaps")
        return "\n".join(lines)
    lines.append(f"gaps: {len(gaps)} holding {r.gap_records} sampled records ({_pct(r.gap_records / r.sampled)})")
    lines.append("")
    lines.append(f"{'cluster':>7}  {'records':>7}  {'share':>6}  {'est.':>8}  {'far':>6}  {'median d':>8}  "
                 "nearest golden (d)  segments")
    for c in gaps:
        segs = "; ".join(f"{k}=" + ", ".join(f"{v} {n}" for v, n in vals) for k, vals in c.segments.items())
        near = f"{c.nearest_golden} ({c.centroid_distance:.3f})"
        lines.append(f"{c.id:>7}  {c.size:>7}  {_pct(c.share):>6}  {c.estimated_records:>8}  "
                     f"{_pct(c.uncovered_share):>6}  {c.median_distance:>8.3f}  {near:<18}  {segs or '-'}")
        for rep in c.representatives:
            text = rep.query if len(rep.query) <= 100 else rep.query[:97] + "..."
            lines.append(f"{'':>9}{json.dumps(text, ensure_ascii=False)} x{rep.count} (d {rep.distance:.3f}; "
                         f"e.g. {', '.join(rep.record_ids[:2])})")
    return "\n".join(lines)


@click.command("coverage", cls=HarnessCommand)
@manifest_option
@click.option("--since", metavar="DAY", help="First UTC day (YYYY-MM-DD) of the records read (default: the first).")
@click.option("--until", metavar="DAY", help="Last UTC day, inclusive (default: the last).")
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the gap clusters' golden-case candidates here (JSON Lines).")
@click.option("--allow-outside", is_flag=True, help="Let --out lie outside the project.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--min-count", type=click.IntRange(min=1), default=10, show_default=True,
              help="Sampled records a cluster needs to count as a gap.")
@click.option("--sample", type=click.IntRange(min=10), default=20_000, show_default=True,
              help="Records embedded and clustered at most (a seeded sample).")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05, show_default=True,
              help="Share of in-distribution queries the calibrated threshold leaves uncovered.")
@click.option("--clusters", "n_clusters", type=click.IntRange(min=1), default=None,
              help="Number of k-means clusters (default: round(sqrt(n/2))).")
@click.option("--segment", "segments", multiple=True, metavar="KEY",
              help="Record attribute to count per cluster; repeatable (default: the [monitor] segments).")
@click.option("--seed", type=int, default=None, help="Sampling and k-means seed (default: [monitor] seed, else 0).")
@click.pass_context
def coverage_cmd(ctx: click.Context, manifest: Path | None, since: str | None, until: str | None, out: Path | None,
                 allow_outside: bool, fmt: str, min_count: int, sample: int, alpha: float, n_clusters: int | None,
                 segments: tuple[str, ...], seed: int | None) -> None:
    """Cluster the ingested production queries and show the clusters far from every golden case.

    A query is far when its cosine distance to the nearest golden case exceeds a threshold calibrated on
    the golden set itself (the (1-alpha) conformal quantile of each golden case's distance to its nearest
    other one); a gap is a cluster with at least --min-count records, most of them far. With --out, each
    gap's representative queries are written as golden-case candidates: fill in relevance and answers,
    delete metadata.todo, then `harness golden append`.

    Exit code: 0 (gaps or not); 2 on bad input (nothing ingested, an empty window, a bad path).

    \b
    Example:
      harness coverage --manifest harness.toml --since 2026-01-01 --out gaps.jsonl
    """
    from harness.commands.core import _progress, check_output, project
    from harness.golden import write_jsonl
    from harness.monitor.coverage import coverage_from_store

    loaded, layout = project(manifest)
    check_output(out, loaded, allow_outside)
    with _progress(ctx) as progress:
        report = coverage_from_store(layout, loaded, since, until, sample=sample, seed=seed, min_count=min_count,
                                     alpha=alpha, n_clusters=n_clusters, segments=segments or None,
                                     progress=progress)
    candidates = report.candidates()
    if out is not None:
        write_jsonl(out, candidates)
    if fmt == "json":
        data = report.to_dict()
        data["candidates_file"] = str(out) if out is not None else None
        data["candidates"] = len(candidates)
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    click.echo(render_text(report))
    if out is not None:
        click.echo(f"wrote {len(candidates)} candidate(s) to {out}: fill in relevance and answers, delete "
                   "metadata.todo, then `harness golden append`")
    elif candidates:
        click.echo(f"{len(candidates)} candidate(s): pass --out FILE to write them")


@click.group("golden", cls=HarnessGroup)
def golden_group() -> None:
    """Grow the golden set."""


@golden_group.command("append", cls=HarnessCommand)
@click.argument("candidates", type=click.Path(dir_okay=False, path_type=Path))
@manifest_option
def golden_append_cmd(candidates: Path, manifest: Path | None) -> None:
    """Append filled-in golden-case candidates to the manifest's golden set and re-lock its pin.

    Every record is checked before anything is written: the golden schema, relevance filled (a grade >= 1)
    naming corpus documents, no metadata.todo left, an id the golden set does not have yet. The manifest's
    pins must verify first, so the re-lock changes only the golden pin.

    Exit code: 0 appended; 2 on bad input (one line: file:line, field), nothing written.

    \b
    Example:
      harness golden append gaps.jsonl --manifest harness.toml
    """
    from harness.monitor.coverage import append_candidates

    result = append_candidates(manifest, candidates)
    click.echo(f"appended {len(result.appended)} case(s) to {result.golden_path}")
    click.echo(f"golden       {result.pin}")
    click.echo(f"manifest id  {result.manifest_id}")
