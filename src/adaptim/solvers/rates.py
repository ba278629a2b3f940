"""Fitting the observed convergence rate of an error sequence, in the sense of A.2.2 (Q-convergence)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from adaptim.online import _checks

__all__ = ["RateFit", "fit_rate"]

KINDS = ("sublinear", "linear", "quadratic")


@dataclass(frozen=True)
class RateFit:
    """Three models of an error sequence e_t > 0 (A.2.2), fitted in log space, and which one fits best.

    Attributes:
        kind: the best model, ``"sublinear"``, ``"linear"`` or ``"quadratic"`` (smallest ``residuals`` entry).
        alpha: sublinear exponent, from least squares of log e_t = log C - alpha log t over all points.
        c_sublinear: the C of that fit (e_t ~ C t^{-alpha}).
        beta: linear factor, the geometric mean of e_{t+1}/e_t (e_{t+1} ~ beta e_t).
        c_quadratic: the C of e_{t+1} ~ C e_t^2, the geometric mean of e_{t+1}/e_t^2.
        order: the slope p of log e_{t+1} against log e_t (least squares): about 1 for linear, 2 for quadratic
            convergence (``nan`` when all e_t are equal).
        residuals: for each kind, the root-mean-square error of its one-step prediction of log e_{t+1} from e_t
            (sublinear: log e_t - alpha log((t+1)/t); linear: log e_t + log beta; quadratic: log C + 2 log e_t),
            in nats; the three are on one scale, so the smallest says which model describes the steps.
        n: the number of errors fitted.
    """

    kind: str
    alpha: float
    c_sublinear: float
    beta: float
    c_quadratic: float
    order: float
    residuals: dict[str, float]
    n: int

    def fits(self, kind: str, rtol: float = 0.1) -> bool:
        """Whether ``kind`` fits about as well as the best: residual <= best residual * (1 + rtol) + 1e-9."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        rtol = _checks.number(rtol, "rtol")
        if not (0 <= rtol < math.inf):
            raise ValueError(f"rtol must be a finite number >= 0, got {rtol!r}")
        best = self.residuals[self.kind]
        return self.residuals[kind] <= best * (1 + rtol) + 1e-9


def fit_rate(errors: Sequence[float], t: Sequence[float] | None = None) -> RateFit:
    """Fit the rate of an error sequence e_t (e.g. J(w_t) - J^* or ||w_t - w^*||) in the sense of A.2.2.

    A.2.2: e_{t+1} = beta e_t (beta < 1) is linear, e_{t+1} = C e_t^2 quadratic, anything slower sublinear,
    e.g. e_t = O(t^{-alpha}). All three models are fitted; ``kind`` names the one whose one-step predictions
    of log e_{t+1} are closest (see :class:`RateFit`).

    Only a converging sequence has a rate: the errors must decrease overall, e_n < e_1 (so beta < 1) with a
    positive fitted exponent alpha; otherwise (constant, growing, or no net decrease) ``ValueError`` says the
    errors do not decrease, rather than report a "linear" factor beta >= 1 or a "sublinear" alpha <= 0.

    Args:
        errors: array-like of shape (n,), n >= 3, every entry finite and > 0 (trim the iterates where the error
            has reached rounding before fitting).
        t: optional times of shape (n,), positive and increasing (default 1, 2, ..., n); only the sublinear fit
            uses them.

    Returns:
        A :class:`RateFit`.

    Raises:
        ValueError: fewer than 3 errors, an error that is not finite or not > 0, errors that do not decrease
            (e_n >= e_1 or alpha <= 0), ``t`` of the wrong shape or not positive and increasing.
    """
    e = (
        np.asarray(errors, dtype=np.float64).reshape(-1)
        if not hasattr(errors, "detach")
        else (errors.detach().cpu().double().numpy().reshape(-1))
    )
    n = e.size
    if n < 3:
        raise ValueError(f"fit_rate needs at least 3 errors, got {n}")
    if not np.all(np.isfinite(e)) or not np.all(e > 0):
        bad = int(np.flatnonzero(~(np.isfinite(e) & (e > 0)))[0])
        raise ValueError(f"every error must be finite and > 0; errors[{bad}] = {e[bad]!r}")
    tt = np.arange(1, n + 1, dtype=np.float64) if t is None else np.asarray(t, dtype=np.float64).reshape(-1)
    if tt.shape != (n,):
        raise ValueError(f"t must have shape ({n},), got {tt.shape}")
    if not np.all(np.isfinite(tt)) or not np.all(tt > 0) or not np.all(np.diff(tt) > 0):
        raise ValueError("t must be finite, positive and increasing")
    le, lt = np.log(e), np.log(tt)
    # sublinear: global least squares of log e on log t
    slope, intercept = np.polyfit(lt, le, 1)
    alpha = -float(slope)
    if not (e[-1] < e[0] and alpha > 0):
        raise ValueError(
            f"the errors do not decrease (e_1 = {e[0]:.3g}, e_n = {e[-1]:.3g}, fitted exponent alpha = {alpha:.3g}): "
            "a sequence that does not converge has no rate"
        )
    prev, nxt = le[:-1], le[1:]
    pred_sub = prev - alpha * (lt[1:] - lt[:-1])
    log_beta = float(np.mean(nxt - prev))
    log_cq = float(np.mean(nxt - 2 * prev))
    residuals = {
        "sublinear": _rms(nxt - pred_sub),
        "linear": _rms(nxt - prev - log_beta),
        "quadratic": _rms(nxt - 2 * prev - log_cq),
    }
    order = float(np.polyfit(prev, nxt, 1)[0]) if np.ptp(prev) > 0 else math.nan
    kind = min(KINDS, key=lambda k: residuals[k])
    return RateFit(
        kind=kind,
        alpha=alpha,
        c_sublinear=float(np.exp(intercept)),
        beta=float(np.exp(log_beta)),
        c_quadratic=float(np.exp(log_cq)),
        order=order,
        residuals=residuals,
        n=n,
    )


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x))))
