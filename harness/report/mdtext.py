"""User-controlled text (queries, regexes, gate messages, case ids) written into markdown so that it
renders as itself: :func:`md_text` for running text and table cells, :func:`md_code` for a code span.

Only what markdown would read as syntax is escaped, so the source stays readable: a regex ``\\d+``
stays ``\\d+`` (a backslash before a letter is literal), while a backslash before punctuation is doubled
(``\\.`` would otherwise render as ``.``) and ``*``, ``<``, ``|``, a link's ``](``... get one backslash. Inside a
code span markdown takes everything literally, so nothing is escaped there but the table-cell pipe
(GitHub splits table rows before it parses code spans); the fence is longer than any run of backticks
in the text. Control characters are made visible first (:func:`harness.report.xmltext.visible`),
line breaks included: each value is one line.
"""

from __future__ import annotations

import re

from harness.report.xmltext import visible

__all__ = ["md_code", "md_text"]

_ASCII_PUNCT = r"!-/:-@\[-`{-~"
# a backslash markdown would read as an escape (before ASCII punctuation) or that ends the value
_ESCAPING_BACKSLASH = re.compile(rf"\\(?=[{_ASCII_PUNCT}]|$)")
# inline syntax: emphasis, code, strikethrough, table cells; a "<" that could open raw HTML or an autolink
# (a letter, "/", "!" or "?" follows: "x < 0.5" stays as it is); the "](" or "][" that makes a link or image
# of a bracket (a lone [x] is literal: a report defines no link references)
_SYNTAX = re.compile(r"[*`|~]|<(?=[A-Za-z/!?])|\](?=[(\[])")
# an underscore between two letters or digits can neither open nor close emphasis
_UNDERSCORE = re.compile(r"(?<![^\W_])_|_(?![^\W_])")
_ENTITY = re.compile(r"&(?=#?\w+;)")


def md_text(value: object) -> str:
    """``value`` as one line of markdown text that renders as the original characters."""
    text = visible(value)
    text = _ESCAPING_BACKSLASH.sub(r"\\\\", text)
    text = _SYNTAX.sub(lambda m: "\\" + m.group(), text)
    text = _UNDERSCORE.sub(r"\\_", text)
    return _ENTITY.sub(r"\\&", text)


def md_code(value: object, *, cell: bool = False) -> str:
    """``value`` as a code span; ``cell``: it sits in a table row, where a pipe would end the cell."""
    text = visible(value)
    if cell:
        text = text.replace("|", "\\|")
    if not text:
        return ""
    fence = "`" * (1 + max((len(run) for run in re.findall("`+", text)), default=0))
    # one space is stripped from each side of a span that starts and ends with one, and a span that starts or
    # ends with a backtick needs a space to be told from its fence
    pad = " " if text[0] == "`" or text[-1] == "`" or (text[0] == text[-1] == " " and text.strip()) else ""
    return f"{fence}{pad}{text}{pad}{fence}"
