"""One rule per kind of value (rsmooth.validation): each edge that takes a sigma, an alpha or a count refuses a
bad one with the same typed error and the same words."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rsmooth.errors import SettingError
from rsmooth.sequential import SequentialTest, thresholds_for
from rsmooth.smoothing import Smooth, lower_confidence_bound
from rsmooth.validation import check_alpha, check_int, check_non_negative, check_positive_int, check_sigma


@pytest.mark.parametrize("sigma", [0, -0.5, math.nan, math.inf, "0.25", True, None])
def test_a_sigma_must_be_a_positive_number(sigma):
    with pytest.raises(SettingError, match=r"^sigma must be a positive number, got ") as caught:
        check_sigma(sigma)
    assert caught.value.name == "sigma" and caught.value.value is sigma
    assert isinstance(caught.value, ValueError)  # callers that catch ValueError keep working


@pytest.mark.parametrize("alpha", [0, 0.5, 0.7, -1e-3, math.nan, "0.001"])
def test_an_alpha_must_lie_strictly_between_0_and_a_half(alpha):
    with pytest.raises(SettingError, match=r"^--alpha must lie in \(0, 0.5\), got "):
        check_alpha(alpha, "--alpha")


def test_accepted_values_come_back_as_plain_python_numbers():
    assert check_sigma(np.float32(0.25)) == 0.25 and type(check_sigma(np.float32(0.25))) is float
    assert check_alpha(torch.tensor(0.001)) == pytest.approx(0.001)
    assert check_positive_int(np.int64(3), "n") == 3 and type(check_positive_int(np.int64(3), "n")) is int
    assert check_int(0, "start", 0) == 0 and check_non_negative(0, "eps") == 0.0


@pytest.mark.parametrize(
    ("value", "minimum", "message"),
    [
        (0, 1, "n must be a positive integer, got 0"),
        (2.0, 1, "n must be a positive integer, got 2.0"),
        (True, 1, "n must be a positive integer, got True"),
        (-1, 0, "n must be a non-negative integer, got -1"),
        (1, 2, "n must be an integer >= 2, got 1"),
    ],
)
def test_a_count_must_be_an_integer_at_least_its_minimum(value, minimum, message):
    with pytest.raises(SettingError) as caught:
        check_int(value, "n", minimum)
    assert str(caught.value) == message


def test_every_entry_point_refuses_a_bad_sigma_and_alpha_in_the_same_words():
    model = torch.nn.Linear(1, 2)
    for build in (lambda: Smooth(model, 2, -1.0), lambda: thresholds_for(np.array([0.5]), -1.0)):
        with pytest.raises(SettingError, match=r"^sigma must be a positive number, got -1\.0$"):
            build()
    for call in (
        lambda: lower_confidence_bound(5, 10, 0.5),
        lambda: SequentialTest.for_radii([0.25, 0.5], 0.25, 0.5, 1000),
        lambda: Smooth(model, 2, 0.25).certify_batch(torch.zeros(1, 1), 10, 10, 0.5, 10),
    ):
        with pytest.raises(SettingError, match=r"^alpha must lie in \(0, 0.5\), got 0\.5$"):
            call()
    with pytest.raises(SettingError, match=r"^beta must lie in \(0, 0.5\), got 0\.5$"):
        SequentialTest.for_radii([0.25], 0.25, 0.001, 1000, beta=0.5)
