"""`harness import ragas`: a ragas-style dataset (the rows ragas evaluates) as golden set + outputs file.

Column names of ragas 0.1 (``question``, ``answer``, ``contexts``, ``ground_truth`` / ``ground_truths``) and
0.2 (``user_input``, ``response``, ``retrieved_contexts``, ``reference``) are recognized, and ``context`` as
some copies of the datasets spell it. The rows are converted by the table importer's one conversion
(:func:`harness.importers.table.convert_cases`) through a preset mapping: the question is the query, the
references the answers, the app's answer and contexts its outputs. A column not used (``id`` aside) is kept
under the case's ``metadata``; ids come from an ``id`` column if there is one, else from the question.
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import InputError
from harness.importers.project import write_project
from harness.importers.table import Converted, convert_cases, outputs_project, read_table

# field -> the ragas columns that fill it, in order of preference (0.2 names first)
COLUMNS: dict[str, tuple[str, ...]] = {
    "id": ("id",),
    "query": ("user_input", "question"),
    "answers": ("reference", "ground_truths", "ground_truth"),
    "answer": ("response", "answer"),
    "contexts": ("retrieved_contexts", "contexts", "context"),
}


def ragas_mapping(columns: list[str]) -> dict[str, str]:
    """{field: column} for the columns a ragas dataset has; other columns go to ``metadata.<column>``."""
    mapping = {field: next(c for c in names if c in columns)
               for field, names in COLUMNS.items() if any(c in columns for c in names)}
    used = set(mapping.values())
    return mapping | {f"metadata.{c}": c for c in columns if c not in used}


def import_ragas(src: str | Path, out: str | Path, fmt: str = "toml") -> tuple[Path, Converted]:
    src = Path(src)
    table = read_table(src)
    mapping = ragas_mapping(table.columns)
    if "query" not in mapping:
        raise InputError(src, f"no question column (one of: {', '.join(COLUMNS['query'])}); columns: "
                         f"{', '.join(table.columns)}", hint="for other names use `harness import table --map`")
    if "answer" not in mapping and "contexts" not in mapping:
        raise InputError(src, f"no answer or contexts column ({', '.join(COLUMNS['answer'] + COLUMNS['contexts'])}):"
                         " nothing of an app's to evaluate", hint="`harness import table --corpus` retrieves and "
                         "answers from a corpus instead")
    converted = convert_cases(table, mapping)
    project = outputs_project(f"ragas-{src.stem}", f"Imported from {src} by `harness import ragas`.", converted,
                              f"ragas-{src.stem}")
    return write_project(out, project, fmt), converted
