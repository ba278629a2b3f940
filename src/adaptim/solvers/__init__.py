"""Appendix A's deterministic methods on a differentiable J : R^d -> R and a fit of their observed rates.

* :func:`gradient_descent` - step 1/L (Lemma S.5, (158)).
* :func:`nesterov_agd` - Nesterov's accelerated method with tau_t = t/(t+3) (A.1).
* :func:`newton` - Newton's method, pure or damped (Theorem A.1, A.2.1).
* :func:`gradient`, :func:`hessian` - autograd's grad J(w) and grad^2 J(w) in float64.
* :func:`fit_rate` - sublinear exponent, linear factor, or quadratic behaviour of an error sequence (A.2.2).

Each method returns a :class:`SolverHistory` (iterates of shape (steps + 1, d) in float64 and J at each); J is a
torch callable, differentiated by autograd unless gradient (and Hessian) callables are given.
"""

from adaptim.solvers.methods import (
    SolverError,
    SolverHistory,
    gradient,
    gradient_descent,
    hessian,
    nesterov_agd,
    newton,
)
from adaptim.solvers.rates import RateFit, fit_rate

__all__ = [
    "SolverError",
    "SolverHistory",
    "gradient",
    "hessian",
    "gradient_descent",
    "nesterov_agd",
    "newton",
    "RateFit",
    "fit_rate",
]
