"""What a narrative may hold: the safe XHTML R4 allows (txt-1, txt-2)."""

from __future__ import annotations

import pytest

from engine.narrative import unsafe, unsafe_narratives

NS = 'xmlns="http://www.w3.org/1999/xhtml"'
P = "<img src=x onerror=alert(1)>"


@pytest.mark.parametrize(
    "div",
    [
        f"<div {NS}>Shortness of breath since <b>this morning</b></div>",
        f'<div {NS}><table><tr><td style="color:red">NEWS2 8</td></tr></table></div>',
        f'<div {NS}><a href="https://example.org/">more</a><img src="#x" alt="chart"/></div>',
        f'<div {NS}><img src="#x" usemap="#m"/><map name="m"><area href="#y"/></map></div>',
        f'<div {NS}><img src="data:image/png;base64,iVBORw0KGgo=" alt="chart"/></div>',
    ],
)
def test_basic_formatting_is_allowed(div: str) -> None:
    assert unsafe(div) is None


@pytest.mark.parametrize(
    ("div", "said"),
    [
        ("<div>no namespace</div>", "one XHTML div"),
        (f"<p {NS}>not a div</p>", "one XHTML div"),
        (f"<div {NS}><script>alert(1)</script></div>", "<script>"),
        (f'<div {NS}><img src="x" onerror="alert(1)"/></div>', "event handler"),
        (f'<div {NS}><a href=" JavaScript:alert(1)">x</a></div>', "runs script"),
        (f"<div {NS}><iframe/></div>", "<iframe>"),
        (f"<div {NS}>was <ins>72</ins> <del>27</del></div>", "<ins>"),
        (f'<div {NS}><map name="m"><area href="javascript:go()"/></map></div>', "runs script"),
        (f'<div {NS}><a href="data:application/xhtml+xml,&lt;p/&gt;">x</a></div>', "document"),
        (f'<div {NS}><img src="data:text/html,x"/></div>', "document"),
        # What XML reads as no element but HTML as markup, the onerror an element.
        (f"<?x > {P} ?><div {NS}>hi</div>", "processing instruction"),
        (f"<div {NS}><?x > {P} ?>hi</div>", "processing instruction"),
        (f"<div {NS}><![CDATA[ > {P} ]]></div>", "CDATA"),
        (f"<div {NS}><!--> {P} --></div>", "comment"),
        (f"<!DOCTYPE div [<!ENTITY x '> {P}'>]><div {NS}>hi</div>", "DOCTYPE"),
        (f"<div {NS}>\ud800</div>", "not well-formed"),
        (f'<div {NS}><svg xmlns="http://www.w3.org/2000/svg"/></div>', "not basic"),
        ("<<<<", "not well-formed"),
        (f"<div {NS}>an <b>open tag</div>", "not well-formed"),
    ],
)
def test_anything_else_is_refused_saying_why(div: str, said: str) -> None:
    why = unsafe(div)
    assert why is not None and said in why


def test_each_narrative_a_resource_holds_is_named_by_its_path() -> None:
    """Its own, a contained resource's, a section's: each a client may render."""
    bad = {"div": f"<div {NS}><script/></div>"}
    good = {"div": f"<div {NS}>fine</div>"}
    resource = {
        "resourceType": "Composition", "text": good,
        "contained": [{"resourceType": "Condition", "text": bad}],
        "section": [{"text": good}, {"text": bad, "section": [{"text": bad}]}],
    }  # fmt: skip
    found = dict(unsafe_narratives(resource, "Composition"))
    assert sorted(found) == [
        "Composition.contained[0].text.div",
        "Composition.section[1].section[0].text.div",
        "Composition.section[1].text.div",
    ]
    assert all("<script>" in why for why in found.values())


def test_narratives_are_named_in_document_order() -> None:
    """An answer lists a message's problems as the sender wrote them."""
    bad = {"div": f"<div {NS}><script/></div>"}
    resource = {
        "resourceType": "Composition", "text": bad,
        "section": [{"text": bad, "section": [{"text": bad}]}, {"text": bad}],
        "contained": [{"resourceType": "Condition", "text": bad}],
    }  # fmt: skip
    assert [path for path, _ in unsafe_narratives(resource, "C")] == [
        "C.text.div", "C.section[0].text.div", "C.section[0].section[0].text.div",
        "C.section[1].text.div", "C.contained[0].text.div",
    ]  # fmt: skip


@pytest.mark.parametrize("length", [10, 100_000], ids=["remembered", "too-long-to-remember"])
def test_a_narrative_is_judged_the_same_each_time_however_long(length: int) -> None:
    div = f"<div {NS}>{'x' * length}<img src='x' onerror='alert(1)'/></div>"
    assert unsafe(div) == unsafe(div) == "<img onerror>: an event handler (txt-1)"
    assert unsafe(div.replace(" onerror='alert(1)'", "")) is None


def test_a_narrative_is_found_in_a_value_json_cannot_write_and_none_where_none_is() -> None:
    """Most resources are not walked (their JSON holds no ``div`` key); one that JSON cannot
    write (a 65-bit number, as the model judges it) is walked, and its narrative found."""
    bad = {"div": f"<div {NS}><script/></div>"}
    huge = {"resourceType": "Observation", "valueInteger": 2**70, "text": bad}
    assert [path for path, _ in unsafe_narratives(huge, "O")] == ["O.text.div"]
    said = {"resourceType": "Observation", "note": [{"text": '"div": <script/>'}]}
    assert list(unsafe_narratives(said, "O")) == []
