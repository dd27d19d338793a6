"""Every tunable number of ``scr synth`` in one place: noise rates, hard-case rates, volume.

Rates are probabilities applied with the run's seeded RNG, so a given seed always yields the
same population. Each hard case in :data:`FORCED_CASES` is also placed at least once (spread
evenly through the population) whenever there are enough people, so small demo and test runs
still exercise every case that matching and policy must handle.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

#: The extract date: nothing is dated after it. Fixed (never the wall clock) for determinism.
EXTRACT_DATE = date(2026, 6, 30)
#: Earliest date of clinical history written to the GP extracts.
HISTORY_START = date(2005, 1, 1)

# --- population ----------------------------------------------------------------------------
#: Share of people whose current practice is the SystmOne one (the rest are at the EMIS one).
SYSTMONE_SHARE = 0.5
#: People who moved practice: deregistered at one system, registered at the other.
MOVED_PRACTICE_RATE = 0.04
#: Age bands (lowest age, highest age, weight) people are drawn from.
AGE_BANDS = ((0, 17, 0.16), (18, 64, 0.52), (65, 74, 0.14), (75, 99, 0.18))
#: Chance an adult is known to the council, by the lowest age of their band (≈40% overall).
COUNCIL_RATE_BY_AGE = {18: 0.34, 65: 0.5, 75: 0.72}
#: Chance a person known to the council is placed in a care home: 75+ far more often.
CARE_HOME_RATE_75_PLUS = 0.22
CARE_HOME_RATE_UNDER_75 = 0.02
DECEASED_RATE = 0.02
#: Unit rates: share of generated households that are twins or a father and son of one name.
TWIN_RATE = 0.015
#: Twin pairs whose birth dates differ by a day (born either side of midnight).
TWIN_DOB_DIFFERS_SHARE = 0.3
FATHER_SON_RATE = 0.01

# --- identity noise (applied to one source's view of the person) ---------------------------
COUNCIL_MISSING_NHS_RATE = 0.35
GP_MISSING_NHS_RATE = 0.02
UNVERIFIED_NHS_RATE = 0.05
MISTYPED_NHS_RATE = 0.01
NAME_VARIANT_RATE = 0.08
MOVED_ADDRESS_RATE = 0.08
MARRIED_NAME_RATE = 0.05
TRANSPOSED_DOB_RATE = 0.015

# --- record-level hard cases ---------------------------------------------------------------
#: Share of people whose GP record shows each case (where their practices can show it).
RECORD_CASE_RATES = {
    "partial_date": 0.05,
    "unknown_code": 0.03,
    "deleted_row": 0.05,
    "confidential_item": 0.03,
    "sensitive_code": 0.01,
}
#: SystmOne code rows written with CTV3 only (no SNOMED), so the CTV3 map is exercised.
CTV3_ONLY_ROW_RATE = 0.15
#: SystmOne code rows recorded by another organisation sharing the record (community, hospital).
SHARED_ROW_RATE = 0.08

# --- council ----------------------------------------------------------------------------------
RESTRICTED_RATE = 0.02
SAFEGUARDING_RATE = 0.06
OTHER_WARNING_RATE = 0.10
LEGAL_RATE = 0.08

# --- per-person volume (about 100 FHIR resources' worth of rows per person on average) ------
#: Clinic visits, each a consultation with a blood pressure and often weight/BMI.
VISITS = (10, 20)
#: Lifestyle records (smoking, alcohol) over the years.
LIFESTYLE_RECORDS = (3, 6)
#: Medication courses (repeats issued several times, acutes once).
MEDICATION_COURSES = (6, 14)
REPEAT_ISSUES = (2, 6)
ALLERGIES = (1, 3)
CONTACTS = (1, 3)
SPECIAL_NOTE_RATE = 0.35

#: Hard cases placed at least once when the population is large enough (label order is the
#: order they are spread through the population).
FORCED_CASES = (
    "twin",
    "missing_nhs_number",
    "name_variant",
    "partial_date",
    "father_son_same_name",
    "unverified_nhs_number",
    "moved_address",
    "unknown_code",
    "moved_practice",
    "mistyped_nhs_number",
    "married_name_change",
    "deleted_row",
    "care_home",
    "transposed_dob",
    "confidential_item",
    "restricted",
    "sensitive_code",
    "safeguarding",
)


def by_age(table: Mapping[int, float], age: int) -> float:
    """The rate for the oldest band (keyed by its lowest age) that ``age`` has reached."""
    reached = [low for low in table if age >= low]
    return table[max(reached)] if reached else 0.0
