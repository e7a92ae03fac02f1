"""Reading TOML/YAML configuration files into plain data, with errors that name file:line.

Manifests, prompt templates, output contracts and index recipes all go through :func:`read_config`,
so a syntax error anywhere reports the same way.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from harness.errors import InputError


def read_config(path: str | Path, what: str = "file") -> tuple[dict[str, Any], str]:
    """(mapping, text) of a TOML file, or YAML by suffix (.yaml/.yml)."""
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise InputError(path, f"no such {what}") from None
    except UnicodeDecodeError as exc:
        raise InputError(path, f"not UTF-8 text ({exc.reason})") from None
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise InputError(path, f"malformed YAML: {getattr(exc, 'problem', exc)}",
                             line=None if mark is None else mark.line + 1) from None
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            m = re.search(r"\(at line (\d+), column \d+\)", str(exc))
            raise InputError(path, f"malformed TOML: {str(exc).split(' (at line')[0]}",
                             line=int(m.group(1)) if m else None) from None
    if not isinstance(data, dict):
        raise InputError(path, f"expected a mapping at the top level of this {what}")
    return data, text
