"""fit_rate on synthetic sequences of each kind (A.2.2)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from adaptim.solvers import fit_rate


def test_sublinear_power_law():
    t = np.arange(1, 51)
    r = fit_rate(5.0 * t**-1.5)
    assert r.kind == "sublinear" and r.n == 50
    assert r.alpha == pytest.approx(1.5, abs=1e-12) and r.c_sublinear == pytest.approx(5.0, rel=1e-12)
    assert r.residuals["sublinear"] < 1e-12 < r.residuals["linear"]
    assert r.fits("sublinear") and not r.fits("linear") and not r.fits("quadratic")


def test_sublinear_with_explicit_times():
    t = np.array([10.0, 15.0, 30.0, 35.0, 80.0])  # not geometric: 2/t on doubling times would be linear too
    r = fit_rate(2.0 / t, t=t)
    assert r.kind == "sublinear" and r.alpha == pytest.approx(1.0, abs=1e-12)


def test_linear_geometric_sequence():
    r = fit_rate(3.0 * 0.7 ** np.arange(30))
    assert r.kind == "linear" and r.beta == pytest.approx(0.7, rel=1e-12)
    assert r.order == pytest.approx(1.0, abs=1e-9)
    assert r.residuals["linear"] < 1e-12


def test_quadratic_sequence():
    e = [0.1]
    for _ in range(5):
        e.append(2.0 * e[-1] ** 2)  # 0.1, 0.02, 8e-4, 1.28e-6, 3.3e-12, 2.1e-23
    r = fit_rate(torch.tensor(e, dtype=torch.float64))
    assert r.kind == "quadratic" and r.c_quadratic == pytest.approx(2.0, rel=1e-9)
    assert r.order == pytest.approx(2.0, abs=1e-9)


def test_fits_rejects_unknown_kind():
    with pytest.raises(ValueError, match="kind"):
        fit_rate([1.0, 0.5, 0.25]).fits("cubic")


@pytest.mark.parametrize(
    "errors, match",
    [
        ([1.0, 0.5], "at least 3"),
        ([1.0, 0.0, 0.1], r"errors\[1\]"),
        ([1.0, math.nan, 0.1], r"errors\[1\]"),
        ([1.0, 0.5, -0.1], r"errors\[2\]"),
    ],
)
def test_bad_errors_are_refused(errors, match):
    with pytest.raises(ValueError, match=match):
        fit_rate(errors)


def test_bad_times_are_refused():
    with pytest.raises(ValueError, match="shape"):
        fit_rate([1.0, 0.5, 0.25], t=[1, 2])
    with pytest.raises(ValueError, match="increasing"):
        fit_rate([1.0, 0.5, 0.25], t=[1, 3, 2])
    with pytest.raises(ValueError, match="positive"):
        fit_rate([1.0, 0.5, 0.25], t=[0, 1, 2])
