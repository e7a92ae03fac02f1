"""Text that XML 1.0 can hold, for JUnit reports (harness report --format junit, harness gate --junit).

XML 1.0 cannot represent most C0 control characters (even as ``&#1;``), lone surrogates, or U+FFFE
and U+FFFF; ElementTree writes them anyway and CI parsers then reject the whole report. Case ids
cannot hold them (the golden schema refuses them), but queries, answers and error messages may.
Each such character is written as a visible escape (``\\x1b``, ``\\ud800``) instead, so nothing is
silently lost and the report stays well-formed.
"""

from __future__ import annotations

import re
from xml.etree.ElementTree import Element

__all__ = ["sanitize_tree", "xml_text"]

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


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
