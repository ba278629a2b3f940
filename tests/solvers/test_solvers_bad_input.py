"""Input handling of adaptim.solvers: numbers of other types, non-finite starts, non-converging rate fits."""

import math

import numpy as np
import pytest
import torch

from adaptim.solvers import fit_rate, gradient_descent, nesterov_agd, newton


def quad(w):
    return 0.5 * (w**2).sum()


W0 = torch.ones(2, dtype=torch.float64)


# 2. a sequence that does not converge has no rate
@pytest.mark.parametrize(
    "errors",
    [[1, 2, 4, 8, 16], [1, 1, 1, 1], [1.0, 0.5, 2.0, 1.0], [3.0, 1.0, 1.0, 3.0, 3.0]],
)
def test_fit_rate_rejects_non_decreasing_errors(errors):
    with pytest.raises(ValueError, match="the errors do not decrease"):
        fit_rate(errors)


def test_fit_rate_still_fits_converging_sequences():
    assert fit_rate([0.5**k for k in range(8)]).kind == "linear"
    assert fit_rate([1.0 / k for k in range(1, 20)]).kind == "sublinear"
    assert fit_rate([1e-1, 1e-2, 1e-4, 1e-8]).kind == "quadratic"
    # not monotone, but converging overall (as Nesterov's errors)
    fit = fit_rate([1.0, 0.6, 0.7, 0.3, 0.35, 0.1])
    assert fit.beta < 1 and fit.alpha > 0


def test_fit_rate_fits_rtol_checked():
    fit = fit_rate([0.5**k for k in range(8)])
    assert fit.fits("linear", np.float64(0.1))
    with pytest.raises(ValueError, match="rtol"):
        fit.fits("linear", True)
    with pytest.raises(ValueError, match="rtol"):
        fit.fits("linear", math.nan)


# 3. numbers of other types
def test_methods_accept_numpy_and_tensor_numbers():
    ref = gradient_descent(quad, W0, 2.0, 3).iterates
    for L, steps in ((torch.tensor(2.0), np.int64(3)), (np.float32(2.0), torch.tensor(3)), (np.array(2.0), 3)):
        assert torch.allclose(gradient_descent(quad, W0, L, steps).iterates, ref)
    assert nesterov_agd(quad, W0, np.float64(2.0), np.int32(2)).steps == 2
    assert torch.allclose(
        newton(quad, W0, np.int64(1), lr=np.float32(1.0)).iterates[-1], torch.zeros(2, dtype=torch.float64)
    )


@pytest.mark.parametrize("L", [True, torch.tensor(True), math.nan, np.float64(math.inf), 0.0, -1.0, "1", torch.ones(2)])
def test_methods_reject_bad_L_naming_it(L):
    with pytest.raises(ValueError, match="L \\(the smoothness constant\\)"):
        gradient_descent(quad, W0, L, 3)


@pytest.mark.parametrize("steps", [True, 3.0, np.float64(3.0), -1, "3", torch.tensor(3.0)])
def test_methods_reject_bad_steps_naming_it(steps):
    with pytest.raises(ValueError, match="steps must be an integer"):
        nesterov_agd(quad, W0, 1.0, steps)


@pytest.mark.parametrize("lr", [True, math.nan, 0.0, 1.5, "1"])
def test_newton_rejects_bad_lr(lr):
    with pytest.raises(ValueError, match="lr"):
        newton(quad, W0, 2, lr=lr)


def test_history_errors_and_distances_checked():
    h = gradient_descent(quad, W0, 1.0, 2)
    assert torch.equal(h.errors(np.float64(0.0)), h.values)
    assert torch.equal(h.errors(torch.tensor(0.0)), h.values)
    with pytest.raises(ValueError, match="j_star"):
        h.errors(math.nan)
    with pytest.raises(ValueError, match="w_star must be finite"):
        h.distances(torch.tensor([math.nan, 0.0]))
    with pytest.raises(ValueError, match="w_star must have d = 2"):
        h.distances(torch.zeros(3))
    assert torch.allclose(h.distances(np.zeros(2)), torch.linalg.vector_norm(h.iterates, dim=1))


# 6. an f (or gradient) that is not finite at w0 is the start point's fault, not a divergence
@pytest.mark.parametrize("method", [gradient_descent, nesterov_agd, newton])
def test_non_finite_f_at_w0_is_reported_as_such(method):
    f = lambda w: quad(w) * math.nan
    args = (1.0, 3) if method is not newton else (3,)
    with pytest.raises(ValueError, match="f is not finite at the start point w0"):
        method(f, W0, *args)
    # also with zero steps: the start value itself is reported
    with pytest.raises(ValueError, match="start point w0"):
        method(f, W0, *((1.0, 0) if method is not newton else (0,)))


@pytest.mark.parametrize("method", [gradient_descent, nesterov_agd, newton])
def test_non_finite_gradient_at_w0_is_reported_as_such(method):
    grad = lambda w: torch.full_like(w, math.nan)
    args = (1.0, 3) if method is not newton else (3,)
    with pytest.raises(ValueError, match="gradient of f is not finite at the start point w0"):
        method(quad, W0, *args, grad=grad)
