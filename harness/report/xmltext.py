"""Text that XML 1.0 can hold, for JUnit reports (harness report --format junit, harness gate --junit),
and text safe to print to a terminal or into markdown (:func:`visible`).

XML 1.0 cannot represent most C0 control characters (even as ``&#1;``), lone surrogates, or U+FFFE
and U+FFFF; ElementTree writes them anyway and CI parsers then reject the whole report. Case ids
cannot hold them (the golden schema refuses them), but queries, answers and error messages may.
Each such character is written as a visible escape (``\\x1b``, ``\\ud800``) instead, so nothing is
silently lost and the report stays well-formed.

The same escapes make user-controlled text (case ids, tags, queries, error messages from the golden set
or an endpoint) harmless on a terminal: :func:`visible` writes every C0 and C1 control character, DEL,
lone surrogate and bidirectional override as its escape, so ``\x1b[31m`` in a tag is shown, not obeyed.
"""

from __future__ import annotations

import re
from xml.etree.ElementTree import Element

__all__ = ["sanitize_tree", "visible", "xml_text"]

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


# C0 and C1 controls, DEL, lone surrogates, and the bidi embeddings/overrides/isolates that reorder a line
_CONTROL = "\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069"
_NOT_VISIBLE = {  # by the characters kept as they are (structure: line breaks and tabs in multi-line text)
    "": re.compile(f"[\t\n{_CONTROL}]"),
    "\n\t": re.compile(f"[{_CONTROL}]"),
}


def visible(value: object, keep: str = "") -> str:
    """``str(value)`` with every control character made visible as an escape (``\\x1b``, ``\\u202e``), for
    printing user-controlled text to a terminal or into markdown. ``keep="\\n\\t"`` keeps line breaks
    and tabs where they are the text's structure (a multi-line diff); by default they are escaped too,
    as in one table cell or one line."""
    pattern = _NOT_VISIBLE[keep]
    text = str(value)
    return pattern.sub(_escape, text) if pattern.search(text) else text


def xml_text(value: object) -> str:
    """``str(value)`` with every character XML 1.0 cannot hold replaced by a visible escape."""
    text = str(value)
    return _NOT_XML.sub(_escape, text) if _NOT_XML.search(text) else text


def sanitize_tree(root: Element) -> Element:
    """Make every tag, attribute, text and tail under ``root`` XML 1.0 text, in place; returns ``root``."""
    for elem in root.iter():
        if elem.text is not None:
            elem.text = xml_text(elem.text)
        if elem.tail is not None:
            elem.tail = xml_text(elem.tail)
        if elem.attrib:
            elem.attrib = {xml_text(k): xml_text(v) for k, v in elem.attrib.items()}
    return root
