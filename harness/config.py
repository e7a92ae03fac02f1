"""Reading TOML/YAML configuration files into plain data, with errors that name file:line.

Manifests, prompt templates, output contracts and index recipes all go through :func:`read_config`,
so a syntax error anywhere reports the same way. Whatever a file holds, reading it either returns
plain JSON-representable data (strings, finite numbers, booleans, lists, string-keyed mappings, at
most :data:`MAX_DEPTH` levels deep) or raises :class:`~harness.errors.InputError` naming the file
and, where there is one, the line: bytes that are not UTF-8, nesting deep enough to exhaust the
parser's recursion, YAML aliases that expand without bound, NaN, dates and other values that have
no canonical JSON form (pins and cache keys are canonical JSON) never reach the rest of the harness.
"""

from __future__ import annotations

import math
import re
import tomllib
from pathlib import Path
from typing import Any

from harness.errors import InputError

MAX_DEPTH = 100
"""Deepest nesting of lists/mappings accepted in any input (JSON Lines records and config files)."""

MAX_VALUES = 1_000_000
"""Most values one config file may expand to (YAML aliases can make a small file enormous)."""

_BOM = "\ufeff"


def decode_utf8(path: str | Path, data: bytes, what: str = "file") -> str:
    """``data`` as text (a leading UTF-8 byte-order mark dropped); not UTF-8 -> InputError with line and offset."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise InputError(path, f"this {what} is not UTF-8 text: byte 0x{data[exc.start]:02x} at byte offset "
                               f"{exc.start} (column {col}): {exc.reason}", line=line) from None
    return text[1:] if text.startswith(_BOM) else text


def _key_path(parts: list[str | int]) -> str:
    return ".".join(str(p) for p in parts) or "(top level)"


def json_problem(value: Any, *, max_depth: int = MAX_DEPTH, max_values: int | None = None) -> tuple[str, str] | None:
    """(dotted location, what is wrong) if ``value`` is not plain JSON data, else None.

    Plain JSON data: str (valid Unicode, no lone surrogates), int, finite float, bool, None, lists
    and mappings with string keys, nested at most ``max_depth`` levels. Iterative, so any depth is
    safe to check.
    """
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    seen = 0
    while stack:
        item, where = stack.pop()
        seen += 1
        if max_values is not None and seen > max_values:
            return _key_path(where), f"expands to more than {max_values:,} values (YAML aliases?)"
        if len(where) > max_depth:
            return _key_path(where[:max_depth]), f"nested more than {max_depth} levels deep"
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return _key_path(where), "a string holds a lone surrogate (\\ud800-\\udfff), which is not Unicode text"
        elif isinstance(item, bool) or item is None or isinstance(item, int):
            continue
        elif isinstance(item, float):
            if not math.isfinite(item):
                return _key_path(where), f"{item} is not a finite number (NaN and infinities have no JSON form)"
        elif isinstance(item, dict):
            for k, v in item.items():
                if not isinstance(k, str):
                    return _key_path(where), f"key {k!r} is a {type(k).__name__}; keys must be strings"
                stack.append((v, [*where, k]))
                stack.append((k, [*where, k]))
        elif isinstance(item, list | tuple):
            stack.extend((v, [*where, i]) for i, v in enumerate(item))
        else:
            kind = type(item).__name__
            hint = " (quote dates and times as strings)" if kind in ("date", "datetime", "time") else ""
            return _key_path(where), f"a {kind} value is not JSON data{hint}"
    return None


def nesting_line(text: str, max_depth: int = MAX_DEPTH, quotes: str = "\"'") -> int | None:
    """Line where bracket nesting (``[``/``{``, outside quoted strings and ``#`` comments) first goes
    deeper than ``max_depth``: where a recursive parser gave up. None if it never does."""
    depth, line, quote, escaped, comment = 0, 1, "", False, False
    for ch in text:
        if ch == "\n":
            line += 1
            comment, quote, escaped = False, "", False
            continue
        if comment:
            continue
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\" and quote == '"':
                escaped = True
            elif ch == quote:
                quote = ""
            continue
        if ch in quotes:
            quote = ch
        elif ch == "#" and "'" in quotes:
            comment = True
        elif ch in "[{":
            depth += 1
            if depth > max_depth:
                return line
        elif ch in "]}":
            depth = max(depth - 1, 0)
    return None


def read_config(path: str | Path, what: str = "file") -> tuple[dict[str, Any], str]:
    """(mapping, text) of a TOML file, or YAML by suffix (.yaml/.yml)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(path, f"no such {what}") from None
    except IsADirectoryError:
        raise InputError(path, f"is a directory, expected a {what}") from None
    except OSError as exc:
        raise InputError(path, f"cannot read this {what}: {exc.strerror or exc}") from None
    text = decode_utf8(path, raw, what)
    if text.count("[") + text.count("{") > MAX_DEPTH + 1 and (
            deep := nesting_line(text, MAX_DEPTH + 1)) is not None:  # whatever the recursion limit
        raise InputError(path, f"nested too deeply (more than {MAX_DEPTH} levels)", line=deep)
    try:
        data = _load_yaml(path, text) if path.suffix in (".yaml", ".yml") else _load_toml(path, text)
    except RecursionError:
        raise InputError(path, f"nested too deeply (more than {MAX_DEPTH} levels)",
                         line=nesting_line(text)) from None
    if not isinstance(data, dict):
        raise InputError(path, f"expected a mapping at the top level of this {what}")
    problem = json_problem(data, max_values=MAX_VALUES)
    if problem is not None:
        where, msg = problem
        raise InputError(path, msg, line=_line_of_key(text, where), field=where)
    return data, text


def _load_yaml(path: Path, text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise InputError(path, f"malformed YAML: {problem}", line=None if mark is None else mark.line + 1) from None
    except ValueError as exc:  # an integer longer than Python's conversion limit (4300 digits)
        raise InputError(path, f"malformed YAML: {_value_error(exc)}") from None


def _value_error(exc: ValueError) -> str:
    text = " ".join(str(exc).split())
    return "a number has more digits than can be read (4300)" if "digits" in text else text


def _load_toml(path: Path, text: str) -> Any:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        line = int(m.group(1)) if m else (text.count("\n") + 1 if "end of document" in str(exc) else None)
        msg = " ".join(re.sub(r" \(at (line \d+, column \d+|end of document)\)", "", str(exc)).split())
        raise InputError(path, f"malformed TOML: {msg}", line=line) from None
    except ValueError as exc:  # an integer longer than Python's conversion limit (4300 digits)
        raise InputError(path, f"malformed TOML: {_value_error(exc)}") from None


def _line_of_key(text: str, dotted: str) -> int | None:
    """Best-effort line of the last key of ``dotted`` (``a.b.c``): the first line assigning it."""
    key = dotted.rsplit(".", 1)[-1]
    if not key or key == "(top level)" or key.isdigit():
        return None
    pattern = re.compile(rf"(^|[\s{{,])[\"']?{re.escape(key)}[\"']?\s*[=:]")
    for i, line in enumerate(text.splitlines(), 1):
        if pattern.search(line):
            return i
    return None


def line_of(text: str, loc: tuple[Any, ...]) -> int | None:
    """Best-effort line of a validation error's location: each key of the path is looked for after the
    line where the previous one was found (a table header, a ``key =``/``key:`` line, or a key inside an
    inline table), so ``artifacts.index.kind`` lands in the index table, not on the first ``kind``."""
    keys: list[str] = []
    lines = text.splitlines()
    start, found = 0, None
    for item in loc:
        if isinstance(item, int):  # the item-th entry of a list: a [[table]] (TOML) or a "- " item (YAML)
            table = re.compile(rf"^\s*\[\[\s*{re.escape('.'.join(keys))}\s*\]\]")
            starts = [i for i in range(len(lines)) if table.search(lines[i])]
            if not starts:
                starts = [i for i in range(start, len(lines)) if re.match(r"^\s*-\s", lines[i])]
            if item >= len(starts):
                break
            start, found = starts[item], starts[item] + 1
            continue
        key = str(item)
        keys.append(key)
        dotted = re.escape(".".join(keys))
        header = re.compile(rf"^\s*\[+\s*{dotted}(\.[^\]]*)?\s*\]+")
        assign = re.compile(rf"(^\s*|[{{,]\s*|^\s*-\s+)[\"']?{re.escape(key)}[\"']?\s*[=:]")
        hit = next((i for i in range(start, len(lines)) if header.search(lines[i]) or assign.search(lines[i])), None)
        if hit is None:
            break
        start, found = hit, hit + 1
    return found
