"""Scrub secrets from any text the harness stores or prints (error messages, exception text, raw replies).

Endpoints echo credentials back in error bodies, whole or partly masked ("Incorrect API key
provided: sk-PLANT****CRET"); client libraries put header values in exception text. Any of that
would end up in run files, caches, reports and terminals. :func:`redact` replaces

- key-shaped tokens: ``sk-...`` (OpenAI and compatible, masked forms included), ``hf_...``,
  ``ghp_...``-style GitHub tokens, ``xox?-...`` Slack tokens, ``AKIA...`` AWS key ids, ``AIza...``
  Google keys;
- credentials by position: ``Bearer <token>`` / ``Basic <token>``, the value of an
  ``Authorization`` / ``Proxy-Authorization`` / ``X-Api-Key`` header, and ``api_key=...``,
  ``api-key: ...``, ``access_token=...``, ``client_secret=...``, ``password=...`` style pairs;
- the actual values of secrets in the environment (every variable whose name says key, token,
  secret, password or credential, e.g. ``OPENAI_API_KEY``), and any masked token that shows a
  prefix or suffix of one of them around mask characters (``PLAN****CRET``), or a long prefix
  or suffix of one on its own;

each with ``***``. It is applied where text is stored (generation and judge errors, exception text),
so callers do not have to remember it; applying it twice is harmless.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

__all__ = ["MASK", "environment_secrets", "redact"]

MASK = "***"
_MIN_SECRET = 8  # shorter environment values are placeholders ("x", "test"); replacing them garbles text
_MIN_FRAGMENT = 4  # visible head/tail of a masked token that must match a known secret
_MIN_BARE_FRAGMENT = 10  # a prefix/suffix of a known secret shown without mask characters
_WINDOW = 8  # any part this long of a known secret, found anywhere, is masked (with the token around it)
_WORD = re.compile(r"[a-z]+")
_KEY_CHAR = re.compile(r"[A-Za-z0-9_\-]")

_SECRET_NAME = re.compile(r"(?i)(api[_-]?key|token|secret|passw(?:or)?d|credential)")
_MASK_RUN = r"(?:\*{2,}|•{2,}|…|x{4,}|\.{3,})"

_KEY_SHAPED = re.compile(
    r"(?<![A-Za-z0-9])(?:"
    r"sk-[A-Za-z0-9_\-*•…]+"  # OpenAI-style, including masked forms
    r"|(?:hf|gh[pousr]|github_pat|glpat|gsk|xox[abprs])[_-][A-Za-z0-9_\-*•…]{6,}"
    r"|AKIA[0-9A-Z*]{12,}"
    r"|AIza[0-9A-Za-z_\-*]{20,}"
    r")"
)
_SCHEME_TOKEN = re.compile(r"(?i)\b(bearer|basic(?=\s+[A-Za-z0-9+/=]{8,}))(\s+)(?!\*\*\*)[^\s\"',;)\]}]+")
_HEADER_VALUE = re.compile(  # the value: an optional scheme word ("Bearer", "Basic") and one token
    r"(?i)\b((?:proxy-)?authorization|x-api-key|api-key|openai-api-key)(\"?\s*+[:=]\s*+[\"']?)"
    r"(?!(?:[A-Za-z]+\s+)?\*\*\*)((?:(?:bearer|basic|token|digest)\s+)?[^\s\"',;}]+)"
)
_PAIR = re.compile(
    r"(?i)\b(api[_-]?key|apikey|access[_-]?token|auth[_-]?token|refresh[_-]?token|id[_-]?token|token|"
    r"client[_-]?secret|secret[_-]?key|secret|passw(?:or)?d)(\"?\s*+[:=]\s*+[\"']?)(?!\*\*\*)([^\s\"'&,;)\]}]+)"
)
_TOKEN = re.compile(r"[A-Za-z0-9_\-*•…./+=]+")


def environment_secrets(environ: dict[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names say they hold a secret (at least 8 characters)."""
    env = os.environ if environ is None else environ
    values = {v.strip() for k, v in env.items() if _SECRET_NAME.search(k) and len(v.strip()) >= _MIN_SECRET}
    # a variable naming a credentials *file* (GOOGLE_APPLICATION_CREDENTIALS=/path) holds a path, not a secret
    return sorted((v for v in values if not (os.path.isabs(v) and os.path.exists(v))), key=len, reverse=True)


def _masks_secret(token: str, secret: str) -> bool:
    """``token`` shows part of ``secret``: a masked form (head and/or tail around mask characters),
    or a long prefix or suffix of it."""
    m = re.search(_MASK_RUN, token)
    if m is not None:
        head, tail = token[: m.start()], token[m.end():]
        tail = re.sub(r"^" + _MASK_RUN, "", tail)
        head_ok = len(head) >= _MIN_FRAGMENT and secret.startswith(head)
        tail_ok = len(tail) >= _MIN_FRAGMENT and secret.endswith(tail.rstrip("."))
        return head_ok or tail_ok
    return len(token) >= _MIN_BARE_FRAGMENT and (secret.startswith(token) or secret.endswith(token))


def _mask_parts(text: str, known: list[str]) -> str:
    """``text`` with every run that holds an 8-character part of a known secret replaced by ``***``.

    For each secret, each of its 8-character windows is looked for in ``text`` (``str.find``, at C speed);
    the characters of every match are marked, so a longer part is the union of its windows, and each marked
    run is widened to the key characters around it before it is replaced."""
    marked = bytearray(len(text))
    found = False
    for secret in known:
        for window in {secret[i : i + _WINDOW] for i in range(len(secret) - _WINDOW + 1)}:
            if _WORD.fullmatch(window):
                continue
            at = text.find(window)
            while at >= 0:
                marked[at : at + _WINDOW] = b"\1" * _WINDOW
                found = True
                at = text.find(window, at + 1)
    if not found:
        return text
    out: list[str] = []
    i, n, done = 0, len(text), 0  # text[:done] is in ``out``; from the last replaced run on, one char each
    while i < n:
        if not marked[i]:
            out.append(text[i])
            i += 1
            continue
        start, end = i, i
        while end < n and marked[end]:
            end += 1
        while start > done and _KEY_CHAR.match(text[start - 1]):  # widen left over what was copied
            out.pop()
            start -= 1
        while end < n and _KEY_CHAR.match(text[end]):  # and right
            end += 1
        out.append(MASK)
        i = done = end
    return "".join(out)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every credential-like string replaced by ``***`` (see the module docstring).

    ``secrets`` adds known secret values to the ones found in the environment.
    """
    if not text:
        return text
    known = sorted({s for s in (*secrets, *environment_secrets()) if len(s) >= _MIN_SECRET}, key=len, reverse=True)
    for s in known:
        text = text.replace(s, MASK)
    if known:
        text = _mask_parts(text, known)
        text = _TOKEN.sub(lambda m: MASK if any(_masks_secret(m.group(0), s) for s in known) else m.group(0), text)
    text = _KEY_SHAPED.sub(MASK, text)
    text = _HEADER_VALUE.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    text = _SCHEME_TOKEN.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    text = _PAIR.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    return text
