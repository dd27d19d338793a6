"""NEWS2 against the RCP 2017 chart: every band edge of every parameter, on both SpO2 scales, and
the risk bands."""

from __future__ import annotations

from dataclasses import replace

import pytest

from engine.transfer.news2 import Vitals, risk, scores, spo2_score, total

NORMAL = Vitals(16, 97, False, 120, 70, "A", 37.0)


def test_normal_observations_score_nothing() -> None:
    assert total(NORMAL) == 0
    assert risk(NORMAL) == "low"


@pytest.mark.parametrize(
    ("field", "value", "score"),
    [
        ("respiration_rate", 8, 3), ("respiration_rate", 9, 1), ("respiration_rate", 11, 1),
        ("respiration_rate", 12, 0), ("respiration_rate", 20, 0), ("respiration_rate", 21, 2),
        ("respiration_rate", 24, 2), ("respiration_rate", 25, 3),
        ("spo2", 91, 3), ("spo2", 92, 2), ("spo2", 93, 2), ("spo2", 94, 1), ("spo2", 95, 1),
        ("spo2", 96, 0),
        ("systolic_bp", 90, 3), ("systolic_bp", 91, 2), ("systolic_bp", 100, 2),
        ("systolic_bp", 101, 1), ("systolic_bp", 110, 1), ("systolic_bp", 111, 0),
        ("systolic_bp", 219, 0), ("systolic_bp", 220, 3),
        ("pulse", 40, 3), ("pulse", 41, 1), ("pulse", 50, 1), ("pulse", 51, 0), ("pulse", 90, 0),
        ("pulse", 91, 1), ("pulse", 110, 1), ("pulse", 111, 2), ("pulse", 130, 2),
        ("pulse", 131, 3),
        ("temperature", 35.0, 3), ("temperature", 35.1, 1), ("temperature", 36.0, 1),
        ("temperature", 36.1, 0), ("temperature", 38.0, 0), ("temperature", 38.1, 1),
        ("temperature", 39.0, 1), ("temperature", 39.1, 2),
        ("consciousness", "C", 3), ("consciousness", "V", 3), ("consciousness", "U", 3),
        ("on_oxygen", True, 2),
    ],
)  # fmt: skip
def test_each_band_edge_scores_as_the_chart_says(field: str, value: object, score: int) -> None:
    vitals = replace(NORMAL, **{field: value})
    key = "air_or_oxygen" if field == "on_oxygen" else field
    assert scores(vitals)[key] == score
    assert total(vitals) == score


def test_risk_bands() -> None:
    assert risk(replace(NORMAL, respiration_rate=25)) == "low-medium"
    assert risk(replace(NORMAL, respiration_rate=22, spo2=93, pulse=95)) == "medium"
    assert risk(replace(NORMAL, respiration_rate=25, spo2=91, on_oxygen=True)) == "high"


@pytest.mark.parametrize(
    ("spo2", "on_air", "on_oxygen"),
    [
        (70, 3, 3), (83, 3, 3), (84, 2, 2), (85, 2, 2), (86, 1, 1), (87, 1, 1), (88, 0, 0),
        (92, 0, 0), (93, 0, 1), (94, 0, 1), (95, 0, 2), (96, 0, 2), (97, 0, 3), (100, 0, 3),
    ],
)  # fmt: skip
def test_scale_2_scores_each_band_edge_on_air_and_on_oxygen(
    spo2: int, on_air: int, on_oxygen: int
) -> None:
    assert spo2_score(spo2, False, 2) == on_air
    assert spo2_score(spo2, True, 2) == on_oxygen


def test_scale_2_keeps_the_oxygen_row_and_scale_1_stays_the_default() -> None:
    target = replace(NORMAL, spo2=90, spo2_scale=2)
    assert scores(target)["spo2"] == 0 and total(target) == 0
    assert scores(replace(NORMAL, spo2=90))["spo2"] == 3
    too_much = replace(NORMAL, spo2=97, on_oxygen=True, spo2_scale=2)
    assert (scores(too_much)["spo2"], scores(too_much)["air_or_oxygen"]) == (3, 2)
    assert (total(too_much), risk(too_much)) == (5, "medium")
    assert scores(replace(too_much, spo2_scale=1))["spo2"] == 0
