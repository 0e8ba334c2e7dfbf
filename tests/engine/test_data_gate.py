"""The data gate's arithmetic: what is out of line, what is only flagged, what is noise."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lure_engine.data_gate import (
    DataGatePolicy,
    Scored,
    accuracy_drop_p_value,
    conflicting_labels,
    json_safe,
    judge_data,
    label_skew_p_value,
    pixel_hashes,
)

POLICY = DataGatePolicy()


def test_a_collapse_of_the_live_models_accuracy_is_out_of_line():
    verdict = judge_data(Scored(30, 300), Scored(800, 900), None, 0, POLICY)
    assert verdict.out_of_line and "disagree" in verdict.reasons[0]
    assert verdict.numbers["accuracy_drop_p"] < 1e-50


def test_a_drop_within_the_tolerance_or_within_noise_is_not():
    # 10 points down on 300 rows: inside the 15-point tolerance
    assert not judge_data(Scored(210, 300), Scored(720, 900), None, 0, POLICY).out_of_line
    # 20 points down, but on 20 rows: not significant at 0.001
    noisy = judge_data(Scored(12, 20), Scored(720, 900), None, 0, POLICY)
    assert not noisy.out_of_line and noisy.numbers["accuracy_drop_p"] > 0.001


def test_without_a_reference_only_conflicts_can_quarantine():
    assert not judge_data(Scored(0, 300), None, None, 0, POLICY).out_of_line
    conflicted = judge_data(Scored(0, 300), None, None, 30, POLICY)
    assert conflicted.out_of_line and "another label" in conflicted.reasons[0]
    assert judge_data(Scored(0, 300), None, None, 3, POLICY).flags  # 1 %: flagged only


def test_a_skewed_label_distribution_is_flagged_never_quarantined():
    stream = np.repeat(np.arange(10), 100)
    skewed = np.repeat([0, 1, 2], 100)
    p = label_skew_p_value(skewed, stream, 10)
    assert p < 1e-10
    verdict = judge_data(Scored(270, 300), Scored(810, 900), p, 0, POLICY)
    assert not verdict.out_of_line and "label distribution" in verdict.flags[0]
    assert label_skew_p_value(np.repeat(np.arange(10), 30), stream, 10) > 0.5


def test_conflicts_are_exact_pixels_under_another_label():
    images = np.random.default_rng(0).integers(0, 255, (4, 8, 8, 1), dtype=np.uint8)
    stream = dict(zip(pixel_hashes(images), [0, 1, 2, 3], strict=True))
    assert conflicting_labels(images, np.array([0, 1, 9, 9]), stream) == 2
    other = images.copy()
    other[0, 0, 0, 0] ^= 1  # one pixel differs: a different image
    assert conflicting_labels(other[:1], np.array([5]), stream) == 0


def test_the_drop_test_is_exact_at_its_boundary():
    assert accuracy_drop_p_value(Scored(50, 100), Scored(65, 100), 0.15) == pytest.approx(0.5)
    assert accuracy_drop_p_value(Scored(0, 100), Scored(100, 100), 0.15) == 0.0


def test_records_hold_no_nan_and_an_unknown_mode_is_refused():
    assert json_safe({"a": [math.nan, 1.0], "b": math.inf}) == {"a": [None, 1.0], "b": None}
    with pytest.raises(ValueError, match="mode"):
        DataGatePolicy(mode="ignore")
