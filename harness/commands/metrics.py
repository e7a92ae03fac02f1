"""`harness metrics`: trec_eval on TREC qrels and run files, same flags, same measures, same output."""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli import HarnessCommand
from harness.errors import MeasureError
from harness.metrics.trec import evaluate_files, format_trec, parse_measures, trec_json

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.command("metrics", cls=HarnessCommand)
@click.option("-q", "per_query", is_flag=True, help="Also print each query's values (before the 'all' lines).")
@click.option(
    "-c",
    "average_complete",
    is_flag=True,
    help="Average over every query in QRELS; a query missing from RUN scores 0.",
)
@click.option(
    "-l",
    "relevance_level",
    type=int,
    default=1,
    show_default=True,
    metavar="LEVEL",
    help="Grades >= LEVEL count as relevant (nDCG always uses the grades).",
)
@click.option(
    "-M",
    "max_depth",
    type=click.IntRange(min=0),
    default=None,
    metavar="DEPTH",
    help="Evaluate only the top DEPTH documents of each ranking.",
)
@click.option(
    "-N",
    "num_docs_in_coll",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    metavar="DOCS",
    help="Number of documents in the collection (utility's fourth coefficient uses it).",
)
@click.option(
    "-m",
    "measures",
    multiple=True,
    metavar="MEASURE",
    help="trec_eval measure, e.g. all_trec, official (default), set, map, bpref, P.5,10, ndcg_cut.10, "
    "iprec_at_recall..1,.5, Rprec_mult.0.5, utility.1,-1,0,0, ndcg.1=3,2=9 (custom gains), rbp.p=0.8, "
    "relstring.20. Every trec_eval measure but the prefs and qrels_jg ones; repeatable.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='Print {"runid", "num_q", "queries", "measures": {name: {"all": v, query: v...}}} instead '
    "(per-query values with -q; unrounded).",
)
@click.argument("qrels", type=_FILE)
@click.argument("run", type=_FILE)
def metrics(
    per_query: bool,
    average_complete: bool,
    relevance_level: int,
    max_depth: int | None,
    num_docs_in_coll: int,
    measures: tuple[str, ...],
    as_json: bool,
    qrels: Path,
    run: Path,
) -> None:
    """Evaluate RUN against QRELS like trec_eval, with trec_eval's flags and measure names.

    \b
    QRELS lines: query_id iteration doc_id grade
    RUN lines:   query_id Q0 doc_id rank score run_id   (rank is ignored)

    Documents are ranked by score, ties by doc id descending (trec_eval's rule). The output is
    trec_eval 10's, line for line; an unknown measure or a malformed parameter is an error.

    \b
    Example:
      harness metrics -q -m all_trec qrels.test results.test
      harness metrics -m P.5,10 -m ndcg_cut.10 --json qrels.test results.test
    """
    try:
        requested = parse_measures(measures)
    except MeasureError as exc:
        raise click.BadParameter(str(exc), param_hint="'-m'") from None
    result = evaluate_files(qrels, run, requested, relevance_level, average_complete, max_depth, num_docs_in_coll)
    text = trec_json(result, per_query) if as_json else format_trec(result, per_query)
    click.echo(text, nl=as_json)
