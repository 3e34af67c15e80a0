"""Issue 24: the default model's scores are calibrated (a temperature fitted on a validation split, folded into
the classifier), and the fit and the error measure are right on data whose answer is known."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
from calibrate_default_head import expected_calibration_error, fit_temperature, softmax

HEAD = REPO / "mixedclf" / "assets" / "default_head" / "head.json"


def overconfident(n: int = 20_000, true_t: float = 2.5, seed: int = 0):
    """Labels drawn from softmax(z); the model says z * true_t, as an overconfident head does."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, size=(n, 2))
    p = softmax(z)
    labels = (rng.random(n) < p[:, 1]).astype(int)
    return z * true_t, labels


def test_the_fitted_temperature_undoes_overconfidence():
    logits, labels = overconfident()
    t = fit_temperature(logits, labels)
    assert t == pytest.approx(2.5, rel=0.08)
    assert expected_calibration_error(softmax(logits / t), labels) < 0.02
    assert expected_calibration_error(softmax(logits), labels) > 0.05


def test_expected_calibration_error_on_known_bins():
    probs = np.array([[0.1, 0.9]] * 10 + [[0.4, 0.6]] * 10)
    labels = np.array([1] * 9 + [0] + [1] * 3 + [0] * 7)  # 90% right at 0.9; 30% right at 0.6
    assert expected_calibration_error(probs, labels) == pytest.approx(0.5 * 0 + 0.5 * 0.3)


def test_the_default_head_is_calibrated_and_the_doc_says_by_how_much():
    head = json.loads(HEAD.read_text(encoding="utf-8"))
    cal = head["calibration"]
    assert cal["temperature"] > 1  # the trained head was overconfident
    assert cal["ece_after"] < cal["ece_before"] and cal["nll_after"] < cal["nll_before"]
    assert cal["validation_rows"] > 1000 and cal["test_rows"] > 1000
    doc = (REPO / "docs" / "default-model.md").read_text(encoding="utf-8")
    for value in (cal["ece_before"], cal["ece_after"], round(cal["temperature"], 2)):
        assert f"{value:.3f}".rstrip("0") in doc or f"{value}" in doc, value
