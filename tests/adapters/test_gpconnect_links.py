"""Which codes and labels each entry of a structured record takes from others and from what it
contains (adapters.gpconnect.links, and the converter's NOPAT labels)."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from adapters import labels
from adapters.gpconnect.links import inherited_codes
from adapters.gpconnect.read import records_from_bundle
from tests.adapters.test_gpconnect import CTX, bundle, organization, patient, resource

SCT = "http://snomed.info/sct"
RELATED = "https://fhir.hl7.org.uk/STU3/StructureDefinition/Extension-CareConnect-RelatedClinicalContent-1"
ACTUAL = "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-ActualProblem-1"
BETWEEN = (
    "https://fhir.hl7.org.uk/STU3/StructureDefinition/Extension-CareConnect-RelatedProblemHeader-1"
)


def res(rtype: str, rid: str, code: str | None = None, **extra: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"resourceType": rtype, "id": rid}
    if code:
        found["code"] = {"coding": [{"system": SCT, "code": code}]}
    return found | extra


def ref(target: str) -> dict[str, str]:
    return {"reference": target}


def link(url: str, target: str) -> dict[str, Any]:
    return {"url": url, "valueReference": ref(target)}


def taken(*resources: dict[str, Any]) -> dict[str, list[str]]:
    """Each resource's id → the codes it takes (only those taking any)."""
    by_id = {f"{r['resourceType']}/{r['id']}": r for r in resources}
    found = inherited_codes(list(resources), lambda r: by_id.get(r.get("reference", "")))
    return {
        r["id"]: [c for _, c in codes] for r, codes in zip(resources, found, strict=True) if codes
    }


def test_a_resource_takes_the_codes_of_what_it_names_and_of_what_they_name() -> None:
    consultation = res("List", "c", entry=[{"item": ref("List/t")}])
    topic = res("List", "t", entry=[{"item": ref("List/h")}])
    heading = res("List", "h", entry=[{"item": ref("Observation/o")}])
    finding = res("Observation", "o", "111")
    assert taken(consultation, topic, heading, finding) == {
        "c": ["111"],
        "t": ["111"],
        "h": ["111"],
    }


def test_what_a_problem_lists_as_related_content_is_part_of_it() -> None:
    problem = res("Condition", "p", "222", extension=[link(RELATED, "List/t")])
    topic = res("List", "t", title="the problem's name")
    assert taken(problem, topic) == {"t": ["222"]}


def test_an_actual_problem_link_runs_both_ways() -> None:
    header = res("Condition", "p", "222", extension=[link(ACTUAL, "Observation/o")])
    actual = res("Observation", "o", "333")
    assert taken(header, actual) == {"p": ["333"], "o": ["222"]}


def test_links_to_context_pass_nothing_on() -> None:
    """An Encounter takes its diagnosis, but the entries written in it do not take from it;
    nor does a problem's related consultation take the problem."""
    visit = res("Encounter", "e", diagnosis=[{"condition": ref("Condition/p")}])
    problem = res("Condition", "p", "222", extension=[link(RELATED, "Encounter/e")])
    written = res("Observation", "o", "444", context=ref("Encounter/e"), subject=ref("Patient/x"))
    person = res("Patient", "x", "555")
    assert taken(visit, problem, written, person) == {"e": ["222"]}


def test_cycles_end_and_security_labels_are_taken() -> None:
    nopat = {"security": [{"system": "http://hl7.org/fhir/v3/ActCode", "code": "NOPAT"}]}
    a = res("List", "a", entry=[{"item": ref("List/b")}])
    b = res("List", "b", entry=[{"item": ref("List/a")}, {"item": ref("Observation/o")}])
    hidden = res("Observation", "o", meta=nopat)
    assert taken(a, b, hidden) == {"a": ["NOPAT"], "b": ["NOPAT"]}


def test_nopat_on_a_contained_resource_labels_its_container_and_what_names_it() -> None:
    """A NOPAT Medication carried inline in a statement was released inside an unlabelled one."""
    nopat = {"security": [{"system": "http://hl7.org/fhir/v3/ActCode", "code": "NOPAT"}]}
    drug = res("Medication", "m", "39720311000001101", meta=nopat)
    statement = {
        **res("MedicationStatement", "s", contained=[drug]),
        "status": "active",
        "medicationReference": ref("#m"),
        "subject": ref("Patient/p1"),
        "effectivePeriod": {"start": "2024-02-01"},
        "taken": "y",
    }
    topic = res("List", "t", entry=[{"item": ref("MedicationStatement/s")}])
    assert taken(statement, topic) == {"t": ["NOPAT", "39720311000001101"]}
    mapped = resource(bundle(patient(), organization(), statement), "MedicationStatement")
    assert labels.label_codes(mapped) == {"NOPAT"}
    assert labels.scr_label(labels.NOPAT, CTX.canonical_base) in mapped["meta"]["security"]


def test_the_drug_a_statement_names_goes_inside_it_with_its_labels() -> None:
    """GP Connect sends the drug as a Medication of its own, which no read of the person
    released: each statement and request naming it now carries it, labels and all, so a
    NOPAT drug labels every record of taking it and goes nowhere else."""
    nopat = {"security": [{"system": "http://hl7.org/fhir/v3/ActCode", "code": "NOPAT"}]}
    drug = res("Medication", "m", "39720311000001101", meta=nopat | {"versionId": "3"})
    taking = {"status": "active", "subject": ref("Patient/p1"),
              "effectivePeriod": {"start": "2024-02-01"}, "taken": "y"}  # fmt: skip
    first = res("MedicationStatement", "s1", medicationReference=ref("Medication/m"), **taking)
    second = res("MedicationStatement", "s2", medicationReference=ref("Medication/m"), **taking)
    doc = bundle(patient(), organization(), drug, first, second)
    for index in (0, 1):
        mapped = resource(doc, "MedicationStatement", index)
        assert mapped["medicationReference"] == {"reference": "#medication"}
        (inline,) = mapped["contained"]
        assert inline["id"] == "medication" and inline["code"] == drug["code"]
        assert [c["code"] for c in inline["meta"]["security"]] == ["NOPAT"]
        assert "versionId" not in inline["meta"]
        assert labels.label_codes(mapped) == {"NOPAT"}


def test_the_reader_joins_them_in_by_full_url_too() -> None:
    finding = res("Observation", "o", "111", subject=ref("Patient/p1"))
    topic = {"resourceType": "List", "entry": [{"item": ref("urn:uuid:o")}]}
    doc = bundle(patient(), organization(), finding, topic, urls={2: "urn:uuid:o"})
    fields = {r.ref.table: r.fields for r in records_from_bundle(doc, "record.json")}
    assert fields["List"]["_pointed_codings"] == [[SCT, "111"]]
    assert "_pointed_codings" not in fields["Observation"]


def test_the_records_of_one_medicine_share_their_codes_but_other_based_on_links_do_not() -> None:
    statement = res("MedicationStatement", "s", "111", basedOn=[ref("MedicationRequest/a")])
    plan = res("MedicationRequest", "a")
    issue = res("MedicationRequest", "i", basedOn=[ref("MedicationRequest/a")])
    referral = res("ServiceRequest", "r", basedOn=[ref("CarePlan/c")])
    plan_of_care = res("CarePlan", "c", "222")
    assert taken(statement, plan, issue, referral, plan_of_care) == {
        "a": ["111"],
        "i": ["111"],
        "r": ["222"],
    }


def test_links_between_problems_pass_nothing() -> None:
    link = {"url": BETWEEN, "extension": [{"url": "target", "valueReference": ref("Condition/b")}]}
    a = res("Condition", "a", "111", extension=[link])
    b = res("Condition", "b", "222")
    assert taken(a, b) == {}


def test_a_problem_linked_to_a_consultation_passes_its_codes_to_the_topics_only() -> None:
    visit = res("Encounter", "e")
    problem = res("Condition", "p", "222", extension=[link(RELATED, "Encounter/e")])
    topic = res("List", "t", "25851000000105", encounter=ref("Encounter/e"))
    heading = res("List", "h", "24781000000107", encounter=ref("Encounter/e"))
    written = res("Observation", "o", "444", context=ref("Encounter/e"))
    assert taken(visit, problem, topic, heading, written) == {"t": ["222"]}


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.sampled_from(["", "List/a", "Encounter/e"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "reference",
                    "meta",
                    "security",
                    "code",
                    "coding",
                    "system",
                    "encounter",
                    "extension",
                    "url",
                    "valueReference",
                    "basedOn",
                    "entry",
                    "contained",
                ]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(["resourceType", "id", "meta", "code",
                                                 "encounter", "entry", "basedOn",
                                                 "contained"]),
                                _JSON, max_size=5), max_size=4))  # fmt: skip
@example(resources=[{"resourceType": "List", "code": 2**64}])  # orjson refuses past 64 bits
def test_odd_json_in_a_bundle_never_stops_the_reader(resources: list[dict[str, Any]]) -> None:
    """A sender's ``"meta": null`` once made the whole folder's ingest fail."""
    found = inherited_codes(resources, lambda r: None)
    assert len(found) == len(resources)
    doc = bundle(patient(), organization(), *resources, {"resourceType": "List", "meta": None})
    assert list(records_from_bundle(doc, "record.json"))
