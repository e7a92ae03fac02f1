"""The manifest: every artifact that shapes a result, pinned by content hash.

A manifest (TOML, or YAML) names artifacts by role. Each artifact's content is located by ``path``
(a file or directory, relative to the manifest), ``uri`` (``pypi:<dist>`` for a model shipped in a
package, ``hf:<repo>`` for a model already in the local Hugging Face cache) or given inline as
``params``. Its pin is the sha256 of that content: a file's bytes (equal to ``sha256sum``), a
directory's files in sorted order, canonical JSON for params (combined when both are given).

The manifest id is the sha256 of the manifest's canonical JSON form, pins included; the
``baseline`` pointer and the ``gates`` are excluded: they judge runs, they do not change them.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from harness.config import line_of, read_config
from harness.errors import InputError, ManifestError
from harness.hashing import sha256_dir, sha256_file, sha256_json, sha256_parts
from harness.storage import atomic_write_text
from harness.types import Artifact, Manifest, drop_none

# role -> kinds allowed in it; roles not listed here are free-form (kind decides).
ROLE_KINDS: dict[str, tuple[str, ...]] = {
    "golden": ("golden",),
    "corpus": ("corpus",),
    "embedding": ("embedding_model",),
    "index": ("index_recipe",),
    "retriever": ("retriever",),
    "validators": ("validators",),
    "generator": ("generator",),
    "prompt": ("prompt",),
    "outputs": ("outputs",),
}
REQUIRED_ROLES = ("golden", "corpus", "embedding", "index", "retriever")
RETRIEVAL_ROLES = ("index", "retriever")
"""The roles supplied outputs replace: a manifest with ``[artifacts.outputs]`` needs only ``golden`` (a corpus
for doc texts and id checks, an embedding model for groundedness, validators and, for outputs without
answers, a generator and prompt are optional), and may not pin a retriever or index as well."""


def required_roles(manifest: Manifest) -> tuple[str, ...]:
    return ("golden",) if "outputs" in manifest.artifacts else REQUIRED_ROLES
MANIFEST_NAMES = ("harness.toml", "harness.yaml", "harness.yml")


class LoadedManifest:
    """A parsed manifest with the file it came from (paths resolve against its folder)."""

    def __init__(self, manifest: Manifest, path: Path) -> None:
        self.manifest = manifest
        self.path = path
        self.base_dir = path.parent

    @property
    def id(self) -> str:
        return self.manifest.id

    def resolve(self, role: str) -> Path:
        return resolve_content(self.manifest.artifact(role), self.base_dir)


def find_manifest(start: str | Path | None = None) -> Path:
    here = Path(start or ".").resolve()
    for folder in (here, *here.parents):
        for name in MANIFEST_NAMES:
            if (folder / name).is_file():
                return folder / name
    raise ManifestError(f"no manifest ({' or '.join(MANIFEST_NAMES)}) found in {here} or above",
                        hint="pass --manifest FILE, or create one with `harness import` or `harness init`")


def _read_raw(path: Path) -> tuple[dict[str, Any], str]:
    if not path.is_file():
        raise ManifestError(f"{path}: no such manifest file")
    return read_config(path, "manifest")


def _keys_at(model: Any, loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed where ``loc`` points, walking the pydantic model's field annotations."""
    import types
    import typing

    from pydantic import BaseModel

    def unwrap(ann: Any) -> Any:
        if typing.get_origin(ann) in (typing.Union, types.UnionType):
            return next((unwrap(a) for a in typing.get_args(ann) if a is not type(None)), ann)
        return ann

    ann: Any = model
    for item in loc[:-1]:
        ann = unwrap(ann)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            field = ann.model_fields.get(str(item))
            if field is None:
                return []
            ann = field.annotation
        elif typing.get_origin(ann) is dict:
            ann = typing.get_args(ann)[1]
        elif typing.get_origin(ann) in (tuple, list):
            ann = typing.get_args(ann)[0]
        else:
            return []
    ann = unwrap(ann)
    return list(ann.model_fields) if isinstance(ann, type) and issubclass(ann, BaseModel) else []


def _validation_error(path: Path, text: str, exc: ValidationError, model: Any, prefix: tuple[Any, ...] = ()
                      ) -> InputError:
    """One line for a pydantic error: file:line, the dotted field, what was wrong (did-you-mean for a typo)."""
    import difflib

    errors = exc.errors()
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])  # a typo before its "missing"
    loc = (*prefix, *err["loc"])
    field = ".".join(str(x) for x in loc)
    hint = None
    if err["type"] == "extra_forbidden":
        known = _keys_at(model, tuple(err["loc"]))
        close = difflib.get_close_matches(str(loc[-1]), known, n=3)
        msg = "unknown key (not in the manifest schema)" if not prefix else "unknown parameter"
        hint = (f"did you mean {' or '.join(close)}?" if close else f"known: {', '.join(known)}") if known else None
    else:
        given = repr(err.get("input"))
        msg = err["msg"] + (f", got {given[:80]}" if "input" in err and not isinstance(err["input"], dict) else "")
    return InputError(path, msg, line=line_of(text, loc), field=field or None, hint=hint)


def _check_stage_params(p: Path, text: str, manifest: Manifest, base_dir: Path) -> None:
    """Validate the params of the retriever, embedding, index and generator against the config models the
    stages use, so a wrong type is one line at lock/verify/run rather than a crash mid-run."""
    from harness.errors import HarnessError

    arts = manifest.artifacts

    def check(role: str, model: Any, params: dict[str, Any]) -> None:
        try:
            model.model_validate(params)
        except ValidationError as exc:
            raise _validation_error(p, text, exc, model, ("artifacts", role, "params")) from None

    from harness.retrieve import EmbeddingConfig, RetrieverConfig

    if "retriever" in arts:
        check("retriever", RetrieverConfig, arts["retriever"].params)
    if "embedding" in arts:
        check("embedding", EmbeddingConfig, arts["embedding"].params)
    if "index" in arts:
        emb = EmbeddingConfig.model_validate(arts["embedding"].params)
        _check_recipe(p, text, arts["index"], base_dir, emb.dim if emb.backend == "hashing" else None)
    if "generator" in arts:
        from harness.generate import GENERATORS
        from harness.generate.stage import ENGINE_KEYS, EngineConfig

        params = arts["generator"].params
        line = line_of(text, ("artifacts", "generator", "params"))
        if "name" not in params:
            raise InputError(p, "needs a 'name' (a registered generator such as 'extractive' or 'openai')",
                             line=line, field="artifacts.generator.params.name")
        check("generator", EngineConfig, {k: params[k] for k in ENGINE_KEYS if k in params})
        try:
            entry = GENERATORS.entry(str(params["name"]))
        except HarnessError as exc:
            raise InputError(p, exc.message, line=line, field="artifacts.generator.params.name",
                             hint=exc.hint) from None
        _check_generator_keys(p, text, entry, params, ENGINE_KEYS)
        art = arts["generator"]
        if (art.path is not None or art.uri is not None) and "model" in params:
            raise InputError(p, "the model is given twice: by the artifact's path or uri and by params.model",
                             line=line_of(text, ("artifacts", "generator", "params", "model")),
                             field="artifacts.generator.params.model",
                             hint="keep the path or uri (its content is pinned) and remove params.model")
        try:
            GENERATORS.build(params["name"], generator_args(art, base_dir, ENGINE_KEYS))
        except HarnessError as exc:
            raise InputError(p, exc.message, line=line, field="artifacts.generator.params", hint=exc.hint) from None
    _check_scorer_args(p, text, manifest)


def generator_args(art: Artifact, base_dir: Path, engine_keys: tuple[str, ...]) -> dict[str, Any]:
    """The generator's own arguments: its params less the engine's knobs, with ``model`` from the artifact's
    ``uri`` or ``path`` when it has one. Then the model's weights are the artifact's content, pinned by its
    sha256 like the embedding model's, so a changed model is a changed pin (and an artifact diff)."""
    args = {k: v for k, v in art.params.items() if k not in engine_keys}
    if art.uri is not None:
        args["model"] = art.uri
    elif art.path is not None:
        args["model"] = str(resolve_content(art, base_dir))
    return args


def _check_scorer_args(p: Path, text: str, manifest: Manifest) -> None:
    """Each ``[[scorers]]`` entry names a registered scorer and gives arguments its factory takes (names,
    types, none missing), checked by the registry as it will build it: at lock/verify/run, before a run
    embeds or retrieves anything, one line naming the entry."""
    from harness.errors import HarnessError
    from harness.scorers import SCORERS

    for i, spec in enumerate(manifest.scorers or ()):
        key = "name"
        try:
            entry = SCORERS.entry(spec.name)
            key = "args"
            entry.validate(spec.args)
        except HarnessError as exc:
            raise InputError(p, exc.message, line=line_of(text, ("scorers", i, key)) or line_of(text, ("scorers", i)),
                             field=f"scorers.{i}.{key}", hint=exc.hint) from None


def _check_recipe(p: Path, text: str, index: Artifact, base_dir: Path, dim: int | None = None) -> None:
    """The index recipe (its file, overlaid with the artifact's params) as the index stage reads it."""
    import difflib

    from harness.errors import HarnessError
    from harness.index import _RECIPE_KEYS, normalize_recipe

    raw, recipe, recipe_text = dict(index.params), None, ""
    if index.path is not None and index.uri is None:
        try:
            path = resolve_content(index, base_dir)
        except HarnessError:
            return  # where the recipe may live is the pin check's to report
        if path.is_file():
            file_data, recipe_text = read_config(path, "index recipe")
            raw, recipe = file_data | raw, path

    def error(key: str | None, message: str, hint: str | None = None) -> InputError:
        if recipe is None or key is None or key in index.params:
            loc = ("artifacts", "index", "params", key) if key else ("artifacts", "index")
            return InputError(p, message, line=line_of(text, loc), field=".".join(loc), hint=hint)
        return InputError(recipe, message, line=line_of(recipe_text, (key,)), field=key, hint=hint)

    kind = str(raw.get("type", "flat"))
    allowed = sorted(_RECIPE_KEYS.get(kind, ()))
    unknown = [k for k in raw if allowed and k not in allowed]
    if unknown:
        close = difflib.get_close_matches(unknown[0], allowed, n=3)
        raise error(unknown[0], f"unknown key for an index recipe of type {kind!r}",
                    f"did you mean {' or '.join(close)}?" if close else f"allowed: {', '.join(allowed)}")
    from harness.errors import RecipeError

    try:
        normalize_recipe(raw, dim)
    except RecipeError as exc:
        raise error(exc.key, exc.message, exc.hint) from None
    except HarnessError as exc:
        raise error(None, exc.message, exc.hint) from None


def _check_generator_keys(p: Path, text: str, entry: Any, params: dict[str, Any], engine_keys: tuple[str, ...]
                          ) -> None:
    """Each generator param is an engine knob or an argument the registry says the generator takes, named at
    its own file:line with a did-you-mean (the registry's check names the generator, not the line)."""
    import difflib

    if entry.open:
        return  # the generator validates its own keyword arguments when built
    known = [*engine_keys, *(k.name for k in entry.kwargs)]
    for key in params:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=3)
            raise InputError(p, f"unknown parameter for generator {params['name']!r}",
                             line=line_of(text, ("artifacts", "generator", "params", key)),
                             field=f"artifacts.generator.params.{key}",
                             hint=f"did you mean {' or '.join(close)}?" if close else f"known: {', '.join(known)}")


def load_manifest(path: str | Path | None = None) -> LoadedManifest:
    """Parse and validate a manifest; unknown keys (with a did-you-mean), missing roles and stage params
    of the wrong type are errors with file:line."""
    p = Path(path) if path else find_manifest()
    data, text = _read_raw(p)
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(p, text, exc, Manifest) from None
    import difflib

    for role, art in manifest.artifacts.items():  # a misspelt role must not silently drop a stage
        home = next((r for r, kinds in ROLE_KINDS.items() if art.kind in kinds), None)
        if home is not None and home != role:
            taken = f" ([artifacts.{home}] is already given; one artifact per role)" if home in manifest.artifacts \
                else ""
            raise InputError(p, f"kind '{art.kind}' belongs under [artifacts.{home}], not [artifacts.{role}]{taken}",
                             line=line_of(text, ("artifacts", role)), field=f"artifacts.{role}",
                             hint=None if taken else f"did you mean [artifacts.{home}]?")
    required = required_roles(manifest)
    for role in required:
        if role not in manifest.artifacts:
            unknown = [r for r in manifest.artifacts if r not in ROLE_KINDS]
            close = difflib.get_close_matches(role, unknown, n=1)
            raise InputError(p, f"missing artifact role '{role}' (required: {', '.join(required)})",
                             line=line_of(text, ("artifacts", close[0])) if close else None,
                             field=f"artifacts.{role}",
                             hint=f"did you mean [artifacts.{role}] for [artifacts.{close[0]}]?" if close else None)
    for role, art in manifest.artifacts.items():
        allowed = ROLE_KINDS.get(role)
        if allowed and art.kind not in allowed:
            raise InputError(p, f"role '{role}' needs kind {' or '.join(allowed)}, got '{art.kind}'",
                             line=line_of(text, ("artifacts", role)), field=f"artifacts.{role}.kind")
        if art.path is None and art.uri is None and not art.params:
            raise InputError(p, "an artifact needs a path, a uri or params", line=line_of(text, ("artifacts", role)),
                             field=f"artifacts.{role}")
        if art.path is not None and art.uri is not None:
            raise InputError(p, "give either path or uri, not both", line=line_of(text, ("artifacts", role)),
                             field=f"artifacts.{role}")
    if "outputs" in manifest.artifacts:
        _check_outputs(p, text, manifest)
    _check_stage_params(p, text, manifest, p.resolve().parent)
    return LoadedManifest(manifest, p.resolve())


def _check_outputs(p: Path, text: str, manifest: Manifest) -> None:
    """An outputs artifact: params the outputs reader takes, a path unless the golden set carries the outputs,
    and no retriever or index beside it (they would be pinned but never run)."""
    from harness.outputs import OutputsConfig

    art = manifest.artifacts["outputs"]
    try:
        config = OutputsConfig.model_validate(art.params)
    except ValidationError as exc:
        raise _validation_error(p, text, exc, OutputsConfig, ("artifacts", "outputs", "params")) from None
    line = line_of(text, ("artifacts", "outputs"))
    if config.source == "golden" and (art.path is not None or art.uri is not None or config.format != "records"):
        raise InputError(p, "from = \"golden\" reads the golden cases' own 'output' objects: give no path, uri "
                         "or format", line=line, field="artifacts.outputs")
    if config.source == "file" and art.path is None:
        raise InputError(p, "an outputs artifact needs a path (or params = { from = \"golden\" })", line=line,
                         field="artifacts.outputs.path")
    for role in RETRIEVAL_ROLES:
        if role in manifest.artifacts:
            raise InputError(p, f"[artifacts.{role}] is never used: the supplied outputs replace retrieval",
                             line=line_of(text, ("artifacts", role)), field=f"artifacts.{role}",
                             hint=f"remove [artifacts.{role}], or remove [artifacts.outputs] to retrieve")


def resolve_uri(uri: str) -> Path:
    """Local folder behind a ``pypi:`` or ``hf:`` uri (never downloads)."""
    scheme, _, name = uri.partition(":")
    if scheme == "pypi":
        module_name = name.replace("-", "_")
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            raise ManifestError(f"uri {uri}: package {name!r} is not installed", hint=f"pip install {name}") from None
        getter = getattr(module, "get_model_path", None)
        if getter is not None:
            return Path(getter())
        assemble = getattr(module, "assemble", None)
        if assemble is not None and hasattr(module, "default_output_path"):
            # a model shipped in parts (the bundled Gemma's GGUF): the file they assemble into, assembled once
            target = Path(module.default_output_path(None))
            return target if target.is_file() and target.stat().st_size > 0 else Path(assemble(target))
        raise ManifestError(f"uri {uri}: package {name!r} has no get_model_path() or assemble()")
    if scheme == "hf":
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(name, local_files_only=True))
        except Exception as exc:
            raise ManifestError(f"uri {uri}: not in the local Hugging Face cache ({type(exc).__name__})",
                                hint="download it once where the hub is reachable, or pin a local path") from None
    raise ManifestError(f"unknown uri scheme in {uri!r}")


def resolve_content(art: Artifact, base_dir: Path) -> Path:
    if art.uri is not None:
        return resolve_uri(art.uri)
    if art.path is None:
        raise ManifestError(f"artifact of kind {art.kind} has no path or uri")
    p = Path(art.path)
    p = p if p.is_absolute() else base_dir / p
    if art.allow_outside:
        return p
    from harness.errors import OutsideProjectError
    from harness.hashing import confine_path, project_root

    try:
        return confine_path(p, project_root(base_dir))
    except OutsideProjectError as exc:
        raise OutsideProjectError(f"artifact of kind {art.kind} (path {art.path!r}): {exc.message}",
                                  hint="artifact paths stay inside the project; set allow_outside = true on "
                                       "this artifact if it must live elsewhere") from None


class HashMemo:
    """Remembers file hashes so verifying a 90 MB model is instant when unchanged, trusted the way git's
    index trusts its stat data.

    An entry is keyed by (path, device, inode, size, mtime_ns, ctime_ns): an edit changes ctime even
    when size and mtime are put back (``os.utime`` cannot set ctime), and a file replaced by another
    has a new inode. Git's "racily clean" rule covers timestamps too coarse to see an edit: an entry
    is used only if the file's mtime and ctime are older than the moment its hashing began by more
    than ``RACY_NS``; otherwise the file is hashed again. So ``run`` and ``verify`` always agree.
    """

    RACY_NS = 2_000_000_000  # coarser than any file system's timestamp granularity in use (FAT: 2 s)

    def __init__(self, cache: Any | None = None) -> None:
        self._cache = cache

    def file(self, path: Path) -> str:
        if self._cache is None:
            return sha256_file(path)
        import time

        st = os.stat(path)
        key = sha256_parts("hashmemo-v2", str(path.resolve()), str(st.st_dev), str(st.st_ino), str(st.st_size),
                           str(st.st_mtime_ns), str(st.st_ctime_ns))
        hit = self._cache.get_many_json("hashes", [key]).get(key)
        if (isinstance(hit, dict) and isinstance(hit.get("sha256"), str) and isinstance(hit.get("started_ns"), int)
                and max(st.st_mtime_ns, st.st_ctime_ns) < hit["started_ns"] - self.RACY_NS):
            return str(hit["sha256"])
        started_ns = time.time_ns()
        digest = sha256_file(path)
        self._cache.put_many_json("hashes", {key: {"sha256": digest, "started_ns": started_ns}})
        return digest

    def path(self, path: Path) -> str:
        return sha256_dir(path, self.file) if path.is_dir() else self.file(path)


def compute_pin(art: Artifact, base_dir: Path, memo: HashMemo | None = None) -> str:
    memo = memo or HashMemo()
    if art.path is None and art.uri is None:
        return sha256_json(art.params)
    content = resolve_content(art, base_dir)
    if not content.exists():
        where = art.path if art.path is not None else art.uri
        raise ManifestError(f"artifact content not found: {where} (resolved to {content})")
    digest = memo.path(content)
    return digest if not art.params else sha256_parts(digest, json.dumps(art.params, sort_keys=True))


def verify(loaded: LoadedManifest, memo: HashMemo | None = None) -> list[tuple[str, str | None, str]]:
    """(role, expected, actual) for every artifact whose pin is missing or wrong."""
    bad: list[tuple[str, str | None, str]] = []
    for role, art in loaded.manifest.artifacts.items():
        actual = compute_pin(art, loaded.base_dir, memo)
        if art.sha256 != actual:
            bad.append((role, art.sha256, actual))
    return bad


def require_verified(loaded: LoadedManifest, memo: HashMemo | None = None) -> None:
    bad = verify(loaded, memo)
    if not bad:
        return
    role, expected, actual = bad[0]
    art = loaded.manifest.artifacts[role]
    where = art.path or art.uri or "params"
    more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
    if expected is None:
        raise ManifestError(f"{loaded.path}: artifact '{role}' ({where}) is not pinned{more}",
                            hint="run `harness lock` to write the pins")
    raise ManifestError(
        f"{loaded.path}: artifact '{role}' ({where}) does not match its pin: expected sha256 {expected}, "
        f"actual {actual}{more}",
        hint="if the change is intended, run `harness lock`",
    )


def lock(path: str | Path, memo: HashMemo | None = None) -> dict[str, str]:
    """Compute every pin and write it into the manifest file, keeping its comments and layout."""
    loaded = load_manifest(path)
    # The config files a run parses (output contracts, prompt template; the recipe is checked above) are
    # parsed here too: a pin is never written for a file that run would reject. The golden set and corpus
    # are left to run (re-reading a large corpus here would double lock's time).
    from harness.contracts import load_contracts
    from harness.prompts import PromptTemplate

    if "validators" in loaded.manifest.artifacts:
        load_contracts(loaded.resolve("validators"))
    if "prompt" in loaded.manifest.artifacts:
        _ = PromptTemplate.load(loaded.resolve("prompt"))._compiled
    pins = {role: compute_pin(art, loaded.base_dir, memo) for role, art in loaded.manifest.artifacts.items()}
    text = loaded.path.read_text("utf-8-sig")
    yaml_file = loaded.path.suffix in (".yaml", ".yml")
    atomic_write_text(loaded.path, _pinned_yaml(text, pins) if yaml_file else _pinned_toml(text, pins))
    return pins


def _pinned_toml(text: str, pins: dict[str, str]) -> str:
    """``text`` with each role's ``sha256`` set: an existing pin is rewritten where it stands, a new one
    ends its table's key/values.

    tomlkit parses the comment and blank lines above a table header into the body of the table before
    it, and appends a new key after them (python-poetry/tomlkit#295), which would put the pin under the
    next table's comment. It has no public insert, so the new key goes in through ``Container._insert_at``,
    the method its own ``append`` uses, before that trailing run of comments and blank lines.
    """
    import tomlkit
    from tomlkit.items import AoT, Comment, Null, Table, Whitespace

    doc = tomlkit.parse(text)
    for role, pin in pins.items():
        table = doc["artifacts"][role]
        if "sha256" in table or not isinstance(table, Table):  # an inline table ends at its brace
            table["sha256"] = pin
            continue
        body = table.value.body
        # the key/values end at the first sub-table with a header of its own ([artifacts.x.params])
        end = next((i for i, (key, item) in enumerate(body)
                    if isinstance(item, AoT | Table) and key is not None and not key.is_dotted()), len(body))
        at = end
        while at > 0 and isinstance(body[at - 1][1], Comment | Whitespace | Null):
            at -= 1
        if at == len(body):
            table["sha256"] = pin
            continue
        item = tomlkit.item(pin)
        if at > 0:
            item.trivia.indent = body[at - 1][1].trivia.indent
        table.value._insert_at(at, "sha256", item)
    return tomlkit.dumps(doc)


def yaml_round_trip(text: str) -> tuple[Any, Callable[[Any], str]]:
    """A YAML manifest's data as ruamel.yaml's round-trip types, and the function that writes it back with
    its comments, key order, quoting and flow style kept (block indentation in the style guessed from the
    file): the one way `lock` and `rollback` edit a YAML manifest."""
    import io

    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap
    from ruamel.yaml.util import load_yaml_guess_indent

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 1 << 16  # never re-wrap a long line
    data, seq_indent, dash_offset = load_yaml_guess_indent(text, yaml=yaml)
    arts = data.get("artifacts") if isinstance(data, CommentedMap) else None
    mapping = arts.lc.col - data.lc.col if isinstance(arts, CommentedMap) and arts.lc.col else 2
    yaml.indent(mapping=mapping, sequence=seq_indent or mapping, offset=dash_offset or 0)

    def dump(value: Any) -> str:
        out = io.StringIO()
        yaml.dump(value, out)
        return out.getvalue()

    return data, dump


def _pinned_yaml(text: str, pins: dict[str, str]) -> str:
    """``text`` with each role's ``sha256`` set, through ruamel.yaml's round trip: comments, key order,
    quoting and flow style are kept; block indentation is written in the style guessed from the file.

    ruamel.yaml keeps the comment lines after a mapping's last value on that value's end-of-line comment,
    so a new key appended to the mapping would land under them (they belong to the next key). They move
    to the new pin, which then ends its artifact's key/values above them, as in a TOML manifest.
    """
    import copy

    data, dump = yaml_round_trip(text)
    arts = data["artifacts"]
    for role, pin in pins.items():
        art = arts[role]
        if "sha256" in art:
            art["sha256"] = pin
            continue
        trailing = _yaml_trailing_comment(art)
        art["sha256"] = pin
        if trailing is not None:
            # its first line ends the last value's own line (an inline comment, or nothing)
            own_line, newline, below = trailing.value.partition("\n")
            if below:
                moved = copy.copy(trailing)
                moved.value = newline + below
                trailing.value = own_line + newline
                art.ca.items["sha256"] = [None, None, moved, None]
    return dump(data)


def _yaml_trailing_comment(node: Any) -> Any:
    """The comment token ruamel.yaml holds after the last value of ``node`` (nested in it or not)."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    while isinstance(node, CommentedMap | CommentedSeq) and len(node):
        last: Any = next(reversed(node)) if isinstance(node, CommentedMap) else len(node) - 1
        slot = 2 if isinstance(node, CommentedMap) else 0  # where each keeps the comment after a value
        entry = node.ca.items.get(last)
        if entry is not None and entry[slot] is not None:
            return entry[slot]
        node = node[last]
    return None


def write_manifest(path: str | Path, data: dict[str, Any]) -> None:
    """Write a new manifest (TOML or YAML by suffix) after validating it; None values are left out."""
    data = drop_none(data)
    Manifest.model_validate(data)
    path = Path(path)
    if path.suffix in (".yaml", ".yml"):
        import yaml

        atomic_write_text(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    else:
        import tomlkit

        atomic_write_text(path, tomlkit.dumps(data))


def manifest_json_schema() -> dict[str, Any]:
    schema = Manifest.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://rag-harness.dev/schemas/manifest.schema.json"
    return schema


def write_published_schema() -> Path:
    """Regenerate harness/schemas/manifest.schema.json from the model (``python -m harness.manifest``)."""
    path = Path(__file__).parent / "schemas" / "manifest.schema.json"
    atomic_write_text(path, json.dumps(manifest_json_schema(), indent=2) + "\n")
    return path


if __name__ == "__main__":  # pragma: no cover
    print(write_published_schema())
