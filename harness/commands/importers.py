"""`harness import beir | ragas | hotpotqa | table | trec`: other layouts into a ready-to-run, locked project."""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli import HarnessGroup

_OUT = click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), required=True,
                    help="Folder to write the project (golden/, ..., the locked manifest) into.")
_FORMAT = click.option("--format", "fmt", type=click.Choice(["toml", "yaml"]), default="toml", show_default=True,
                       help="Manifest format.")
_SOURCE = click.Path(exists=False, path_type=Path)


@click.group("import", cls=HarnessGroup)
def import_group() -> None:
    """Import golden sets, corpora and an app's outputs from other layouts into a locked project."""


@import_group.command("beir")
@click.argument("src", type=click.Path(file_okay=False, path_type=Path))
@_OUT
@click.option("--split", default="test", show_default=True, help="Which qrels/<split>.tsv to judge with.")
@_FORMAT
def beir_cmd(src: Path, out: Path, split: str, fmt: str) -> None:
    """Turn a BEIR folder into a golden set + corpus + locked manifest.

    \b
    Example:
      harness import beir ../shared/data/scifact --out scifact
      harness run --manifest scifact/harness.toml
    """
    from harness.importers.beir import import_beir

    path = import_beir(src, out, split=split, fmt=fmt)
    click.echo(f"wrote {path}")


def _summary(path: Path, n_cases: int, n_outputs: int, generated_ids: bool) -> None:
    ids = " (ids generated from the query text)" if generated_ids else ""
    click.echo(f"wrote {path}: {n_cases} cases{ids}, {n_outputs} outputs records")


@import_group.command("ragas")
@click.argument("src", type=_SOURCE)
@_OUT
@_FORMAT
def ragas_cmd(src: Path, out: Path, fmt: str) -> None:
    """Turn a ragas-style dataset into a golden set + the app's outputs + locked manifest.

    Columns: question|user_input (the query), ground_truth(s)|reference (the answers), answer|response and
    contexts|context|retrieved_contexts (the app's outputs); others are kept as case metadata. JSONL, CSV/TSV
    (list cells as JSON), Parquet, Arrow or a saved `datasets` folder.

    \b
    Example:
      harness import ragas ../shared/data/amnesty_qa/amnesty_qa.jsonl --out amnesty
      harness run --manifest amnesty/harness.toml
    """
    from harness.importers.ragas import import_ragas

    path, converted = import_ragas(src, out, fmt=fmt)
    _summary(path, len(converted.cases), len(converted.outputs), converted.generated_ids)


@import_group.command("hotpotqa")
@click.argument("src", type=_SOURCE)
@_OUT
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Import only the first N questions.")
@click.option("--k", "k", type=click.IntRange(min=1), default=100, show_default=True,
              help="Passages the retriever returns per question (the generator reads the top 3).")
@_FORMAT
def hotpotqa_cmd(src: Path, out: Path, limit: int | None, k: int, fmt: str) -> None:
    """Turn HotpotQA questions into golden cases, their paragraphs into a corpus, supporting paragraphs into
    relevance; the project retrieves and answers (extractive generator) at once.

    \b
    Example:
      harness import hotpotqa ../shared/data/hotpotqa/dev_500.jsonl --out hotpot --limit 100
      harness run --manifest hotpot/harness.toml
    """
    from harness.importers.hotpotqa import import_hotpotqa

    path, n_cases, n_docs = import_hotpotqa(src, out, limit=limit, fmt=fmt, k=k)
    click.echo(f"wrote {path}: {n_cases} cases, {n_docs} corpus documents")


@import_group.command("table")
@click.argument("src", type=_SOURCE)
@_OUT
@click.option("--map", "mapping", multiple=True, metavar="FIELD=COLUMN",
              help="Fill FIELD from COLUMN (repeatable). Golden fields: id, query (required), answers, relevance, "
                   "facts, contract, tags.<name>, metadata.<name>; the app's outputs: answer, contexts, retrieved.")
@click.option("--corpus", type=_SOURCE, default=None, help="A table of documents to retrieve from.")
@click.option("--corpus-map", "corpus_mapping", multiple=True, metavar="FIELD=COLUMN",
              help="Corpus fields id, title, text, metadata.<name> (default: the columns of those names).")
@_FORMAT
def table_cmd(src: Path, out: Path, mapping: tuple[str, ...], corpus: Path | None, corpus_mapping: tuple[str, ...],
              fmt: str) -> None:
    """Turn any table (CSV/TSV, Parquet, Arrow, JSONL, a saved `datasets` folder) into a locked project.

    List and object fields (answers, relevance, facts, contexts, retrieved) read a CSV cell as JSON
    (answers='["a", "b"]', relevance='{"d1": 2}'); a plain string is a one-element list. With outputs
    columns mapped the project scores the app's outputs; else, with --corpus, it retrieves and answers.

    \b
    Example:
      harness import table evals.csv --out proj --map query=question --map answers=ground_truth \\
          --map answer=response --map contexts=retrieved
    """
    from harness.importers.table import import_table

    path, converted = import_table(src, out, mapping, corpus=corpus, corpus_mapping=corpus_mapping, fmt=fmt)
    _summary(path, len(converted.cases), len(converted.outputs), converted.generated_ids)


@import_group.command("trec")
@click.option("--qrels", type=_SOURCE, required=True, help="TREC qrels: query_id iteration doc_id grade.")
@click.option("--run", "runs", type=_SOURCE, multiple=True, required=True,
              help="TREC run file (query_id Q0 doc_id rank score run_id); repeat to compare runs.")
@click.option("--topics", type=_SOURCE, default=None,
              help="Query texts: TSV 'query_id<TAB>text' or JSONL {id|_id, query|text} (default: the query ids).")
@_OUT
@_FORMAT
def trec_cmd(qrels: Path, runs: tuple[Path, ...], topics: Path | None, out: Path, fmt: str) -> None:
    """Turn qrels and run files into a project: the first run is harness.toml, each further run a variant
    manifest variants/<run file name>.toml, so two run files diff and gate like two runs.

    \b
    Example:
      harness import trec --qrels qrels.test --run bm25.run --run dense.run --out trec
      cd trec && harness run && harness baseline promote
      harness gate --manifest variants/dense.run.toml
    """
    from harness.importers.trec import import_trec

    path, variants, n_cases = import_trec(qrels, runs, out, topics=topics, fmt=fmt)
    click.echo(f"wrote {path}: {n_cases} cases" + "".join(f"\nwrote {v}" for v in variants))
