"""Whether a narrative (``text.div``) is the safe XHTML FHIR allows (pure).

A resource taken in (ingest) or a red-bag message received is stored as it came and served on
to systems that may render its narratives (the FHIR API, ``GET /transfers/{id}``); scr's own
pages show them as text. R4 allows only basic formatting (txt-1: no scripts, forms, frames or
event handlers) in the XHTML namespace with a ``div`` at its root (txt-2 asks for some text or
an image), and fhir.resources checks none of it: a summary of ``<script>`` or
``<img onerror=…>`` was accepted. Parsed with the standard library's expat, which fetches no
external entity; a DOCTYPE, which could declare one, is refused before parsing.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import orjson

from adapters.exactjson import exact

XHTML = "{http://www.w3.org/1999/xhtml}"
#: The elements txt-1 allows, as the HL7 validator lists them (HTML 4.0's basic formatting,
#: chapters 7-11 and 15 but 9.4's ``ins`` and ``del``; links, images and image maps), so that
#: no narrative it passes is refused here for its elements.
ELEMENTS = frozenset({
    "a", "abbr", "acronym", "address", "area", "b", "bdo", "big", "blockquote", "br", "caption",
    "cite", "code", "col", "colgroup", "dd", "dfn", "div", "dl", "dt", "em", "h1", "h2", "h3",
    "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "map", "ol", "p", "pre", "q", "samp",
    "small", "span", "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead",
    "tr", "tt", "ul", "var",
})  # fmt: skip
#: Attributes that carry a URL: none may run script (``javascript:``, ``vbscript:``) or hold
#: a document (``data:``, but for an image's ``src``, which a browser never runs).
_URLS = frozenset({"href", "src", "cite", "longdesc"})
#: Markup that the parser below reads as no element (a comment, CDATA, a processing instruction,
#: a DOCTYPE with its entities) but an HTML parser, as a client rendering the narrative uses,
#: reads otherwise: ``<!-->`` ends a comment at once, a processing instruction ends at the first
#: ``>``, so what follows becomes markup. In well-formed XML a ``<`` is always markup, so each is
#: found by how it opens.
_HIDDEN = ("<!", "<?")


#: Narratives up to this many characters have their verdict remembered (:func:`unsafe`): a
#: care home's messages repeat their sections' narratives, and 4,096 keys of bounded length
#: bound what a sender can make the memo hold.
_REMEMBERED = 4_096


def unsafe(div: str) -> str | None:
    """Why ``div`` is not a narrative R4 allows, or None when it is."""
    return _judged(div) if len(div) <= _REMEMBERED else _judge(div)


@lru_cache(maxsize=4096)
def _judged(div: str) -> str | None:
    return _judge(div)


def _judge(div: str) -> str | None:
    if any(opening in div for opening in _HIDDEN):
        return "a comment, CDATA, DOCTYPE or processing instruction, which HTML reads otherwise"
    try:
        root = ET.fromstring(div)
    except (ET.ParseError, ValueError) as exc:  # ValueError: text UTF-8 cannot carry
        return f"not well-formed XHTML: {exc}"
    if root.tag != XHTML + "div":
        return "the narrative must be one XHTML div (xmlns http://www.w3.org/1999/xhtml)"
    for element in root.iter():
        name = element.tag.removeprefix(XHTML)
        if name == element.tag or name not in ELEMENTS:
            return f"<{name}> is not basic XHTML formatting (txt-1)"
        for attribute, value in element.attrib.items():
            local = attribute.rsplit("}", 1)[-1].lower()
            if local.startswith("on"):
                return f"<{name} {local}>: an event handler (txt-1)"
            if local in _URLS and _runs(local, value):
                return f"<{name} {local}>: a URL that runs script or holds a document (txt-1)"
    return None


def _runs(attribute: str, value: str) -> bool:
    url = "".join(value.split()).lower()
    if url.startswith(("javascript:", "vbscript:")):
        return True
    return url.startswith("data:") and not (attribute == "src" and url.startswith("data:image/"))


def unsafe_narratives(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Each narrative in ``value`` (a resource's, a contained resource's, a Composition
    section's) that R4 does not allow: the FHIRPath of its ``div`` under ``path``, and why.

    Most resources hold none, which one search of their JSON tells (a message's thirteen
    resources in 10 µs, where walking them took 130). Otherwise every object and array is
    visited (a narrative may sit in any of them), but only a narrative found has its path
    written out."""
    if not _may_hold_div(value):
        return
    for steps, why in _unsafe_in(value):
        yield path + "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in steps), why


def _may_hold_div(value: Any) -> bool:
    """False only when no object in ``value`` has a ``div`` key (orjson writes every key
    ``"key":``)."""
    try:
        return b'"div":' in orjson.dumps(value, default=exact)
    except orjson.JSONEncodeError:  # not JSON (a 65-bit int): walked, as the model judges it
        return True


def _unsafe_in(value: Any) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Each unsafe narrative in ``value``, by the steps from it to the ``div``."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        node, steps = stack.pop()
        if isinstance(node, dict):
            text = node.get("text")
            div = text.get("div") if isinstance(text, dict) else None
            if isinstance(div, str) and (why := unsafe(div)) is not None:
                yield (*steps, "text", "div"), why
            children = [(v, (*steps, k)) for k, v in node.items() if k != "text" and _nests(v)]
        elif isinstance(node, list):
            children = [(v, (*steps, i)) for i, v in enumerate(node) if _nests(v)]
        else:
            continue
        stack.extend(reversed(children))  # in document order


def _nests(value: Any) -> bool:
    return isinstance(value, (dict, list))
