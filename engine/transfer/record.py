"""A person's red-bag transfers in their combined record, judged by that record's decision.

A transfer is not a resource in the store (it is the hospital's relationship itself), yet the
person's other care-relationship holders, their GP or social worker, need to know that it
happened. So it leaves only beside a read of the person, under that read's decision, through
``consent.hidden_by`` like any stored item: as the hospital admission it is (an ``Encounter``,
which the policy's sections place in ``admissions``) recorded by the care home that sent it.
A profile without that section keeps it back, as do a dissent and a restricted section, and a
user with no way in to the person sees nothing: there is no decision that lets it through
without letting the rest of the record through too. For a person restricted at source it
carries the restricted label too: the care home it names is where they live, which only the two
organisations of the transfer and the one that restricted the person already know.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from consent import Decision, PersonLabel, Policy, ResourceMeta, hidden_by, meta_of
from engine.transfer.store import Stay

#: What the policy judges a transfer as: the emergency admission it records.
_AS = {
    "resourceType": "Encounter",
    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER"},
}


def judged_as(stay: Stay, policy: Policy, restricted: bool = False) -> ResourceMeta:
    """The meta the decision judges ``stay`` by (``restricted``: the person is restricted)."""
    labels = policy.restricted_person_label if restricted else ""
    return meta_of(_AS, stay.care_home, labels, policy)


def released(
    decision: Decision,
    stays: Iterable[Stay],
    policy: Policy,
    person_labels: Iterable[PersonLabel] = (),
) -> tuple[tuple[Stay, ...], dict[str, int]]:
    """The stays ``decision`` lets leave, and how many it held back per reason (for the audit
    trail's withheld counts, never for the user)."""
    viewer = decision.obligations.org
    by = {p.org for p in person_labels if p.code == policy.restricted_person_label}
    shown: list[Stay] = []
    withheld: Counter[str] = Counter()
    for stay in stays:
        restricted = bool(by) and viewer not in {*by, stay.care_home, stay.hospital}
        why = hidden_by(judged_as(stay, policy, restricted), decision)
        if why is None:
            shown.append(stay)
        else:
            withheld[why] += 1
    return tuple(shown), dict(withheld)
