"""The codes and organisations the synthetic sources use: real codes, made-up organisations.

Clinical codes are real CTV3, Read v2 and SNOMED CT codes (checked against published code
lists; see ``mappings/codes/*.csv``, which must agree with this file). A concept carries the
codings each source style would record: SystmOne needs a CTV3 code, EMIS a SNOMED concept
(its Read v2 term is optional, as for post-2018 EMIS codes). Medicines are real dm+d VMPs;
EMIS CodeIds are made up. Organisations, places and phone numbers are fictional.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Concept:
    """One clinical idea and how each source codes it (``None`` where a source cannot)."""

    key: str
    snomed: str | None
    snomed_term: str | None
    ctv3: str | None = None
    ctv3_term: str | None = None
    #: Read v2 code with its two-character term code, as EMIS writes it (``H33..00``).
    read2: str | None = None
    read2_term: str | None = None
    unit: str | None = None
    low: float = 0.0
    high: float = 0.0
    decimals: int = 0

    @property
    def numeric(self) -> bool:
        return self.unit is not None

    def available_in(self, style: str) -> bool:
        return bool(self.ctv3) if style == "systmone" else bool(self.snomed)


@dataclass(frozen=True)
class Condition:
    """A long-term condition: its concept, who gets it, what is prescribed for it."""

    concept: Concept
    #: Prevalence by the lowest age of each age band (see :func:`rates.by_age`).
    prevalence: dict[int, float]
    drugs: tuple[str, ...] = ()
    council_reason: str | None = None


@dataclass(frozen=True)
class Drug:
    """A dm+d medicine as prescribed here: usual dose and pack, and its made-up EMIS CodeId."""

    key: str
    dmd: str
    name: str
    dosage: str
    quantity: int
    unit: str
    emis_code_id: int

    @property
    def multilex_id(self) -> str:
        """A made-up Multilex product id (SystmOne codes drug sensitivities by Multilex)."""
        return str(7_000_000 + self.emis_code_id)


HYPERTENSION = Concept(
    "hypertension",
    "59621000",
    "Essential hypertension",
    ctv3="XE0Uc",
    ctv3_term="Essential hypertension",
    read2="G20..00",
    read2_term="Essential hypertension",
)
T2DM = Concept(
    "t2dm",
    "44054006",
    "Type 2 diabetes mellitus",
    ctv3="X40J5",
    ctv3_term="Type II diabetes mellitus",
    read2="C10F.00",
    read2_term="Type 2 diabetes mellitus",
)
ASTHMA = Concept(
    "asthma",
    "195967001",
    "Asthma",
    ctv3="H33..",
    ctv3_term="Asthma",
    read2="H33..00",
    read2_term="Asthma",
)
COPD = Concept(
    "copd",
    "13645005",
    "Chronic obstructive lung disease",
    ctv3="H3...",
    ctv3_term="Chronic obstructive lung disease",
    read2="H3...00",
    read2_term="Chronic obstructive pulmonary disease",
)
ANGINA = Concept(
    "angina",
    "194828000",
    "Angina",
    ctv3="G33..",
    ctv3_term="Angina",
    read2="G33..00",
    read2_term="Angina pectoris",
)
STROKE = Concept(
    "stroke",
    "230690007",
    "Cerebrovascular accident",
    ctv3="XE2aB",
    ctv3_term="Stroke and cerebrovascular accident unspecified",
    read2="G66..00",
    read2_term="Stroke and cerebrovascular accident unspecified",
)
HEARING_LOSS = Concept(
    "hearing_loss",
    "15188001",
    "Hearing loss",
    ctv3="XE0s9",
    ctv3_term="Hearing loss",
    read2="F59..00",
    read2_term="Hearing loss",
)
LEWY_DEMENTIA = Concept(
    "lewy_dementia",
    "312991009",
    "Senile dementia of the Lewy body type",
    ctv3="XaE74",
    ctv3_term="Senile dementia of the Lewy body type",
)
ALZHEIMERS = Concept(
    "alzheimers",
    "26929004",
    "Alzheimer's disease",
    read2="F110.00",
    read2_term="Alzheimer's disease",
)
AF = Concept(
    "af", "49436004", "Atrial fibrillation", read2="G573000", read2_term="Atrial fibrillation"
)
HEART_FAILURE = Concept(
    "heart_failure", "84114007", "Heart failure", read2="G58..00", read2_term="Heart failure"
)
GOUT = Concept("gout", "90560007", "Gout", read2="C34..00", read2_term="Gout")
DEPRESSION = Concept(
    "depression",
    "35489007",
    "Depressive disorder",
    read2="E2B..00",
    read2_term="Depressive disorder NEC",
)
ANXIETY = Concept(
    "anxiety", "198288003", "Anxiety state", read2="E200.00", read2_term="Anxiety states"
)
GLAUCOMA = Concept("glaucoma", "23986001", "Glaucoma", read2="F45..00", read2_term="Glaucoma")
ALLERGIC_RHINITIS = Concept(
    "allergic_rhinitis",
    "61582004",
    "Allergic rhinitis",
    read2="H17..00",
    read2_term="Allergic rhinitis",
)

SYSTOLIC = Concept(
    "systolic",
    "163030003",
    "O/E - Systolic BP reading",
    ctv3="2469.",
    ctv3_term="O/E - Systolic BP reading",
    read2="2469.00",
    read2_term="O/E - Systolic BP reading",
    unit="mmHg",
    low=104,
    high=172,
)
DIASTOLIC = Concept(
    "diastolic",
    "163031004",
    "O/E - Diastolic BP reading",
    ctv3="246A.",
    ctv3_term="O/E - Diastolic BP reading",
    read2="246A.00",
    read2_term="O/E - Diastolic BP reading",
    unit="mmHg",
    low=58,
    high=98,
)
BMI = Concept(
    "bmi",
    "60621009",
    "Body mass index",
    ctv3="22K..",
    ctv3_term="Body Mass Index",
    read2="22K..00",
    read2_term="Body Mass Index",
    unit="kg/m2",
    low=18.5,
    high=38.0,
    decimals=1,
)
WEIGHT = Concept(
    "weight",
    "27113001",
    "Body weight",
    ctv3="22A..",
    ctv3_term="O/E - weight",
    read2="22A..00",
    read2_term="O/E - weight",
    unit="kg",
    low=48.0,
    high=118.0,
    decimals=1,
)
HEIGHT = Concept(
    "height",
    "248333004",
    "Standing height",
    ctv3="229..",
    ctv3_term="O/E - height",
    read2="229..00",
    read2_term="O/E - height",
    unit="cm",
    low=150,
    high=192,
)
HBA1C = Concept(
    "hba1c",
    "999791000000106",
    "Haemoglobin A1c level - IFCC standardised",
    ctv3="XaPbt",
    ctv3_term="Haemoglobin A1c level - IFCC standardised",
    read2="42W5.00",
    read2_term="Haemoglobin A1c level - IFCC standardised",
    unit="mmol/mol",
    low=40,
    high=88,
)
ALCOHOL = Concept(
    "alcohol",
    "228958009",
    "Alcohol units per week",
    read2="136V.00",
    read2_term="Alcohol units per week",
    unit="U/week",
    low=0,
    high=30,
)
SMOKER = Concept(
    "smoker",
    "77176002",
    "Smoker",
    ctv3="137R.",
    ctv3_term="Current smoker",
    read2="137R.00",
    read2_term="Current smoker",
)
NEVER_SMOKED = Concept(
    "never_smoked",
    "266919005",
    "Never smoked tobacco",
    ctv3="XE0oh",
    ctv3_term="Never smoked tobacco",
    read2="1371.00",
    read2_term="Never smoked tobacco",
)
EX_SMOKER = Concept(
    "ex_smoker",
    "8517006",
    "Ex-smoker",
    ctv3="Ub1na",
    ctv3_term="Ex-smoker",
    read2="137S.00",
    read2_term="Ex smoker",
)
MEDICATION_REVIEW = Concept(
    "medication_review",
    "88551000000109",
    "Medication review with patient",
    read2="8B3x.00",
    read2_term="Medication review with patient",
)
FH_HYPERTENSION = Concept(
    "fh_hypertension",
    "160357008",
    "FH: Hypertension",
    read2="12C1.00",
    read2_term="FH: Hypertension",
)
FH_ASTHMA = Concept(
    "fh_asthma",
    "160377001",
    "Family history of asthma",
    read2="12D2.00",
    read2_term="FH: Asthma",
)

DRUG_ALLERGY = Concept(
    "drug_allergy",
    "416098002",
    "Allergy to drug",
    ctv3="14L..",
    ctv3_term="H/O: drug allergy",
    read2="14L..00",
    read2_term="H/O: drug allergy",
)
PENICILLIN_ALLERGY = Concept(
    "penicillin_allergy",
    "91936005",
    "Allergy to penicillin",
    read2="14L1.00",
    read2_term="H/O: penicillin allergy",
)
ASPIRIN_ALLERGY = Concept(
    "aspirin_allergy",
    "293586001",
    "Allergy to aspirin",
    read2="14LK.00",
    read2_term="H/O: aspirin allergy",
)
PEANUT_ALLERGY = Concept(
    "peanut_allergy",
    "91935009",
    "Allergy to peanut",
    ctv3="Xa1no",
    ctv3_term="Peanut allergy",
    read2="SN58200",
    read2_term="Peanut allergy",
)
LATEX_ALLERGY = Concept(
    "latex_allergy",
    "300916003",
    "Allergy to latex",
    read2="SN53100",
    read2_term="Latex allergy",
)

#: In the national STI exclusion refset (``mappings/valuesets/scr-sensitive-sti.json``).
SYPHILIS = Concept("syphilis", "76272004", "Syphilis", ctv3="A97z.", ctv3_term="Syphilis NOS")
#: A real CTV3 code deliberately left out of ``mappings/codes/ctv3-snomed.csv``.
UNMAPPED = Concept("unmapped", None, None, ctv3="XaIyE", ctv3_term="Hypertension annual review")

CONDITIONS: tuple[Condition, ...] = (
    Condition(
        HYPERTENSION,
        {18: 0.12, 40: 0.24, 65: 0.47, 75: 0.6},
        ("amlodipine", "ramipril", "lisinopril"),
    ),
    Condition(
        T2DM, {18: 0.03, 40: 0.08, 65: 0.16, 75: 0.2}, ("metformin", "gliclazide", "atorvastatin")
    ),
    Condition(ASTHMA, {0: 0.1, 18: 0.1, 65: 0.08}, ("salbutamol", "beclometasone")),
    Condition(COPD, {40: 0.03, 65: 0.09, 75: 0.11}, ("salbutamol",)),
    Condition(ANGINA, {40: 0.02, 65: 0.07, 75: 0.1}, ("aspirin", "atorvastatin")),
    Condition(
        STROKE,
        {40: 0.01, 65: 0.05, 75: 0.09},
        ("clopidogrel", "atorvastatin"),
        "Physical Support: Personal care support",
    ),
    Condition(
        HEARING_LOSS,
        {40: 0.03, 65: 0.15, 75: 0.3},
        (),
        "Sensory Support: Support for hearing impairment",
    ),
    Condition(LEWY_DEMENTIA, {65: 0.01, 75: 0.04}, (), "Support with Memory & Cognition"),
    Condition(ALZHEIMERS, {65: 0.02, 75: 0.07}, (), "Support with Memory & Cognition"),
    Condition(AF, {40: 0.01, 65: 0.06, 75: 0.12}, ("digoxin",)),
    Condition(
        HEART_FAILURE,
        {65: 0.03, 75: 0.08},
        ("furosemide", "ramipril"),
        "Physical Support: Access & mobility only",
    ),
    Condition(GOUT, {18: 0.02, 65: 0.05}, ("allopurinol",)),
    Condition(DEPRESSION, {18: 0.12, 65: 0.09}, ("citalopram",), "Mental Health Support"),
    Condition(ANXIETY, {18: 0.08, 65: 0.05}, ()),
    Condition(GLAUCOMA, {40: 0.01, 65: 0.03, 75: 0.05}, ()),
    Condition(ALLERGIC_RHINITIS, {0: 0.08, 18: 0.12, 65: 0.06}, ("cetirizine",)),
)
SMOKING = (SMOKER, NEVER_SMOKED, EX_SMOKER)
FAMILY_HISTORY = (FH_HYPERTENSION, FH_ASTHMA)
#: Coded allergies; the drug key (if any) is the medicine SystmOne records in SRDrugSensitivity.
ALLERGY_CODES: tuple[tuple[Concept, str | None], ...] = (
    (PENICILLIN_ALLERGY, "amoxicillin"),
    (ASPIRIN_ALLERGY, "aspirin"),
    (PEANUT_ALLERGY, None),
    (LATEX_ALLERGY, None),
)

DRUGS: dict[str, Drug] = {
    d.key: d
    for d in (
        Drug(
            "amlodipine",
            "319284000",
            "Amlodipine 10mg tablets",
            "One tablet once daily",
            28,
            "tablet",
            40101,
        ),
        Drug(
            "ramipril",
            "318906001",
            "Ramipril 10mg capsules",
            "One capsule once daily",
            28,
            "capsule",
            40102,
        ),
        Drug(
            "lisinopril",
            "318859000",
            "Lisinopril 10mg tablets",
            "One tablet once daily",
            28,
            "tablet",
            40103,
        ),
        Drug(
            "metformin",
            "325278007",
            "Metformin 500mg tablets",
            "One tablet twice a day",
            56,
            "tablet",
            40104,
        ),
        Drug(
            "gliclazide",
            "325242002",
            "Gliclazide 80mg tablets",
            "One tablet twice a day",
            56,
            "tablet",
            40105,
        ),
        Drug(
            "salbutamol",
            "320139002",
            "Salbutamol 100micrograms/dose inhaler CFC free",
            "Two puffs when required",
            1,
            "inhaler",
            40106,
        ),
        Drug(
            "beclometasone",
            "320537007",
            "Beclometasone 100micrograms/dose inhaler",
            "Two puffs twice a day",
            1,
            "inhaler",
            40107,
        ),
        Drug(
            "aspirin",
            "319773006",
            "Aspirin 75mg dispersible tablets",
            "One tablet daily",
            28,
            "tablet",
            40108,
        ),
        Drug(
            "atorvastatin",
            "320030001",
            "Atorvastatin 20mg tablets",
            "One tablet at night",
            28,
            "tablet",
            40109,
        ),
        Drug(
            "clopidogrel",
            "319799004",
            "Clopidogrel 75mg tablets",
            "One tablet daily",
            28,
            "tablet",
            40110,
        ),
        Drug(
            "digoxin",
            "317896006",
            "Digoxin 125microgram tablets",
            "One tablet daily",
            28,
            "tablet",
            40111,
        ),
        Drug(
            "furosemide",
            "317972000",
            "Furosemide 40mg tablets",
            "One tablet each morning",
            28,
            "tablet",
            40112,
        ),
        Drug(
            "allopurinol",
            "330062008",
            "Allopurinol 300mg tablets",
            "One tablet daily",
            28,
            "tablet",
            40113,
        ),
        Drug(
            "citalopram",
            "321987003",
            "Citalopram 20mg tablets",
            "One tablet daily",
            28,
            "tablet",
            40114,
        ),
        Drug(
            "paracetamol",
            "322236009",
            "Paracetamol 500mg tablets",
            "Two tablets up to four times a day",
            100,
            "tablet",
            40115,
        ),
        Drug(
            "omeprazole",
            "317291008",
            "Omeprazole 20mg gastro-resistant capsules",
            "One capsule daily",
            28,
            "capsule",
            40116,
        ),
        Drug(
            "amoxicillin",
            "323510009",
            "Amoxicillin 500mg capsules",
            "One capsule three times a day",
            21,
            "capsule",
            40117,
        ),
        Drug(
            "cetirizine",
            "320818006",
            "Cetirizine 10mg tablets",
            "One tablet daily",
            30,
            "tablet",
            40118,
        ),
        Drug(
            "levothyroxine",
            "374296008",
            "Levothyroxine sodium 100microgram tablets",
            "One tablet each morning",
            28,
            "tablet",
            40119,
        ),
        Drug(
            "tramadol",
            "322623000",
            "Tramadol 50mg capsules",
            "One or two capsules up to four times a day",
            30,
            "capsule",
            40120,
        ),
    )
}
#: Medicines anyone may be given, repeat or acute, whatever their conditions.
GENERAL_DRUGS = (
    "paracetamol",
    "omeprazole",
    "amoxicillin",
    "cetirizine",
    "levothyroxine",
    "tramadol",
)

ALL_CONCEPTS: tuple[Concept, ...] = (
    *(c.concept for c in CONDITIONS),
    SYSTOLIC,
    DIASTOLIC,
    BMI,
    WEIGHT,
    HEIGHT,
    HBA1C,
    ALCOHOL,
    *SMOKING,
    MEDICATION_REVIEW,
    *FAMILY_HISTORY,
    DRUG_ALLERGY,
    *(a for a, _ in ALLERGY_CODES),
    SYPHILIS,
    UNMAPPED,
)
#: EMIS CodeIds (made up): stable per concept, by position in :data:`ALL_CONCEPTS`.
EMIS_CODE_IDS: dict[str, int] = {
    c.key: 1_200_001 + i for i, c in enumerate(ALL_CONCEPTS) if c.available_in("emis")
}


@dataclass(frozen=True)
class Org:
    """An organisation: TPP-style internal id (SystmOne), ODS-style code, name."""

    tpp_id: int
    ods: str
    name: str


SYSTMONE_PRACTICE = Org(5001, "Y90011", "Ambridge Surgery")
EMIS_PRACTICE = Org(0, "Y90022", "Felpersham Medical Centre")
HOSPITAL = Org(5002, "R9Z", "Borchester General Hospital NHS Trust")
COMMUNITY = Org(5003, "R9Y", "Borsetshire Community Health Services")
ICB = Org(0, "Q9Z", "NHS Borsetshire Integrated Care Board")
#: The council: a made-up GSS-style local authority code.
COUNCIL = Org(0, "E06000999", "Borsetshire Council")
CARE_HOMES = (
    Org(0, "VXA01", "Grey Gables Care Home"),
    Org(0, "VXA02", "Willow Farm Nursing Home"),
    Org(0, "VXA03", "The Laurels Residential Home"),
)
#: Where the region's information-governance officers work (no records of its own).
IG_OFFICE = Org(0, "Y90099", "Borsetshire Shared Care Record IG Office")
