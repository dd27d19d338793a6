"""Names, addresses and phone numbers for synthetic people, and the ways sources misspell them.

All text here must encode in Windows-1252 (the SystmOne extract), so accented names use only
Latin-1 letters. Places are fictional (Borsetshire); postcodes use the area ``BO``, which no
real UK postcode has; phone numbers come from Ofcom's ranges reserved for drama.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

MALE_NAMES = (
    "John",
    "Jonathan",
    "Stephen",
    "Sean",
    "Philip",
    "Geoffrey",
    "David",
    "Michael",
    "Peter",
    "Robert",
    "James",
    "Thomas",
    "Christopher",
    "Andrew",
    "Mark",
    "Paul",
    "Richard",
    "Daniel",
    "Matthew",
    "Anthony",
    "Alan",
    "Brian",
    "Kevin",
    "Mohammed",
    "Tariq",
    "Kwame",
    "José",
    "Noël",
    "Oliver",
    "Harry",
    "George",
    "Arthur",
    "Eddie",
    "Tom",
    "Kenton",
    "Neil",
)
FEMALE_NAMES = (
    "Catherine",
    "Ann",
    "Sarah",
    "Elizabeth",
    "Renée",
    "Zoë",
    "Chloé",
    "Margaret",
    "Susan",
    "Helen",
    "Mary",
    "Patricia",
    "Jennifer",
    "Linda",
    "Karen",
    "Emma",
    "Olivia",
    "Amelia",
    "Fatima",
    "Aisha",
    "Priya",
    "Siobhan",
    "Anaïs",
    "Jill",
    "Peggy",
    "Lynda",
    "Clarrie",
    "Shula",
    "Ruth",
    "Pat",
    "Hazel",
    "Kirsty",
)
SURNAMES = (
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Williams",
    "Wilson",
    "Johnson",
    "Davies",
    "Patel",
    "Robinson",
    "Wright",
    "Thompson",
    "Evans",
    "Walker",
    "White",
    "Roberts",
    "Green",
    "Hall",
    "Wood",
    "Jackson",
    "Clarke",
    "Archer",
    "Aldridge",
    "Grundy",
    "Carter",
    "Snell",
    "Tucker",
    "Pargetter",
    "Horrobin",
    "McDonald",
    "McCreary",
    "O'Brien",
    "O'Neill",
    "Smith-Jones",
    "Ahmed",
    "Khan",
    "Okafor",
    "Nowak",
    "Müller",
    "Brontë",
    "Lefèvre",
    "Gómez",
)
TITLES = {"M": ("Mr", "Mr", "Mr", "Dr"), "F": ("Mrs", "Ms", "Miss", "Mrs", "Dr")}
#: Spellings of one first name that different sources hold for the same person.
FIRST_NAME_VARIANTS = {
    "John": "Jon",
    "Jonathan": "Johnathan",
    "Catherine": "Katherine",
    "Stephen": "Steven",
    "Sean": "Shaun",
    "Philip": "Phillip",
    "Geoffrey": "Jeffrey",
    "Ann": "Anne",
    "Sarah": "Sara",
    "Elizabeth": "Elisabeth",
    "Renée": "Renee",
    "Zoë": "Zoe",
    "Chloé": "Chloe",
    "José": "Jose",
    "Noël": "Noel",
    "Anaïs": "Anais",
    "Lynda": "Linda",
    "Mohammed": "Muhammad",
    "Siobhan": "Shivaun",
    "Michael": "Micheal",
}

STREETS = (
    "Church Lane",
    "Mill Road",
    "Station Road",
    "High Street",
    "The Green",
    "Back Lane",
    "Manor Way",
    "Orchard Close",
    "Willow Drive",
    "Meadow View",
    "Brookfield Road",
    "Lakey Hill",
    "Heydon Berrow",
    "Hollowtree Lane",
    "Blossom Hill Road",
    "Sawyer's Row",
)
PLACES = (
    ("Ambridge", "Borchester"),
    ("Penny Hassett", "Borchester"),
    ("Edgeley", "Borchester"),
    ("Loxley Barrett", "Felpersham"),
    ("Darrington", "Felpersham"),
    ("", "Borchester"),
    ("", "Felpersham"),
    ("Hollerton", "Borchester"),
)
COUNTY = "Borsetshire"
_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"  # letters used in the inward part of UK postcodes


@dataclass(frozen=True)
class Address:
    house: str
    street: str
    locality: str
    town: str
    postcode: str

    @property
    def line1(self) -> str:
        return f"{self.house} {self.street}"

    def one_line(self) -> str:
        parts = [self.line1, self.locality, self.town, COUNTY]
        return ", ".join(p for p in parts if p)


def address(rng: random.Random) -> Address:
    locality, town = rng.choice(PLACES)
    house = str(rng.randint(1, 120)) if rng.random() < 0.9 else f"Flat {rng.randint(1, 12)}"
    postcode = (
        f"BO{rng.randint(1, 9)} {rng.randint(1, 9)}{rng.choice(_LETTERS)}{rng.choice(_LETTERS)}"
    )
    return Address(house, rng.choice(STREETS), locality, town, postcode)


def first_name(rng: random.Random, sex: str) -> str:
    return rng.choice(MALE_NAMES if sex == "M" else FEMALE_NAMES)


def other_first_name(rng: random.Random, sex: str, taken: str) -> str:
    """A first name that is neither ``taken`` nor a spelling of it (a twin's name)."""
    clash = {taken, FIRST_NAME_VARIANTS.get(taken, taken)}
    while True:
        name = first_name(rng, sex)
        if name not in clash and FIRST_NAME_VARIANTS.get(name) not in clash:
            return name


def variant(rng: random.Random, first: str, surname: str) -> tuple[str, str]:
    """The same name as another source might hold it: respelt, de-hyphenated, or re-cased."""
    if first in FIRST_NAME_VARIANTS and rng.random() < 0.7:
        return FIRST_NAME_VARIANTS[first], surname
    if "-" in surname:
        return first, surname.replace("-", " ")
    if "'" in surname:
        return first, surname.replace("'", "")
    return first, surname.upper()


def landline(rng: random.Random) -> str:
    return f"01632 960{rng.randint(0, 999):03d}"


def mobile(rng: random.Random) -> str:
    return f"07700 900{rng.randint(0, 999):03d}"
