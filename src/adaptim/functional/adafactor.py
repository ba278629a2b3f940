"""Adafactor (Section 4.7, (52); Section 4.7.1; Shazeer and Stern, 2018), as pure update rules.

For a parameter W (m x n, or (..., m, n) factored over its last two dimensions) with gradient G at step t:

    beta_t = beta2                         (a float: (52)'s EMA, with bias correction c_t = 1/(1 - beta2^t))
           = 1 - t^decay_rate, c_t = 1     (beta2 = None: change (5) of 4.7.1, the schedule replaces correction)
    a_t = beta_t a_{t-1} + (1 - beta_t) (G^2 + eps1) 1_n        row sums     (52)
    s_t = beta_t s_{t-1} + (1 - beta_t) (G^2 + eps1)^T 1_m      column sums  (52)
    Vhat_t = c_t a_t s_t^T / (1_m^T a_t)                                     (52), change (1)
    (unfactored: v_t = beta_t v_{t-1} + (1 - beta_t)(G^2 + eps1), Vhat_t = c_t v_t)
    N_t = G_t            (beta1 = None, change (2))
        = m_t / (1 - beta1^t),  m_t = beta1 m_{t-1} + (1 - beta1) G_t     (beta1 a float: Adam's first moment)
    U_t = N_t / sqrt(Vhat_t);   Uhat_t = U_t / max(1, RMS(U_t) / d)        change (3), d = clip_threshold
    rho_t = lr                                       (relative_step = False; lr already carries s_t)
          = min(lr, 1/sqrt(t))                       (relative_step = True; lr = 1e-2: the paper's relative step)
          = min(lr, 1e-6 t, 1/sqrt(t))               (relative_step and warmup_init; lr = 1e-2: the paper's)
    alpha_t = rho_t max(eps2, RMS(W_t))              (scale_parameter, change (4)) or rho_t
    W_{t+1} = (1 - rho_t weight_decay) W_t - alpha_t Uhat_t

eps1 is added to G^2 as in the paper's Algorithm 4. U_t = N_t / sqrt(Vhat_t) is formed in float64 as
N_ij sqrt(1^T a_t / c_t) rsqrt(a_t)_i rsqrt(s_t)_j and rounded once: in float32 the ratio a_i / 1^T a underflows
(a row of eps1 = 1e-30 next to one of 1e16 gives 1e-46) and 1/sqrt(Vhat) overflows (up to about 1e45 where a row
and a column of G vanish next to large entries) although U itself is moderate; both gave NaN parameters. The
RMS of U and of W (changes 3 and 4) are accumulated in float64 too (U can reach 1e33, whose square overflows).

Choices the notes leave open (documented on :class:`adaptim.optim.adafactor.Adafactor` as well): the first
moment is the *bias-corrected EMA of G* in the numerator (the notes' M_t / sqrt(A_t B_t)), clipped together with
the preconditioned update; Hugging Face and fairseq instead average the clipped update, uncorrected. Weight decay
is decoupled and multiplied by rho_t but not by RMS(W_t) (they multiply by alpha_t, i.e. also by RMS(W_t)).

In stages: :func:`adafactor_directions` updates the moments and returns the direction
D_t = max(eps2, RMS(W_t)) Uhat_t (or Uhat_t), so that alpha_t Uhat_t = rho_t D_t; :func:`adafactor_last_stage`
then steps W <- (1 - rho_t weight_decay) W - rho_t D_t through the common last stage
(:func:`adaptim.functional.common.apply_update_`, or a replacement), once per distinct rho_t.

``adafactor_single`` is the literal loop, ``adafactor_batched`` stacks parameters of one shape, step count and kind
of state and updates each stack at once; they agree to rounding. Moments are updated in place.
"""

from __future__ import annotations

import math

import torch

from adaptim.functional.common import StepFn, apply_update_, bias_correction, bucket_indices, ema_, stack, unstack_
from adaptim.linalg.norms import rms

__all__ = [
    "adafactor_single",
    "adafactor_batched",
    "adafactor_directions",
    "adafactor_last_stage",
    "adafactor_beta2",
    "adafactor_step_size",
    "factored_second_moment",
    "rms_clip",
]


def adafactor_step_size(step: int, lr: float | None, relative_step: bool, warmup_init: bool) -> float:
    """rho_t at step t = ``step`` (an int >= 1) for the group's current ``lr`` (a float >= 0, schedule included).

    ``relative_step=False``: ``lr`` itself. ``relative_step=True``: the relative step min(lr, 1/sqrt(t)), with
    ``warmup_init`` min(lr, 1e-6 t, 1/sqrt(t)); the lr is the largest relative step, as in torch.optim.Adafactor,
    and at lr = 1e-2 this is exactly the paper's min(1e-2, 1/sqrt(t)) (min(1e-6 t, 1/sqrt(t))) of 4.7.1.
    ``lr=None`` (older callers) means 1e-2 there.
    """
    if not relative_step:
        return float(lr)
    rho = min(1e-2 if lr is None else float(lr), 1.0 / math.sqrt(step))
    return min(rho, 1e-6 * step) if warmup_init else rho


def adafactor_beta2(step: int, beta2: float | None, decay_rate: float) -> tuple[float, float]:
    """(beta_t, c_t): a float beta2 gives (beta2, 1/(1 - beta2^t)) (bias-corrected EMA of (52));
    ``None`` gives (1 - t^decay_rate, 1) (change (5) of 4.7.1; beta_1 = 0, so no bias arises)."""
    if beta2 is None:
        return 1.0 - step**decay_rate, 1.0
    return beta2, 1.0 / bias_correction(beta2, step)


def factored_second_moment(row: torch.Tensor, col: torch.Tensor, correction: float = 1.0) -> torch.Tensor:
    """Vhat = c a s^T / (1^T a) of (52): row sums a (..., m), column sums s (..., n) -> (..., m, n)."""
    return correction * row.unsqueeze(-1) * col.unsqueeze(-2) / row.sum(dim=-1)[..., None, None]


def rms_clip(u: torch.Tensor, threshold: float | None) -> torch.Tensor:
    """Change (3) of 4.7.1 on one layer's update u (any shape): u / max(1, RMS(u) / threshold), a new tensor.

    An update with RMS(u) <= threshold is returned as it is; a larger one is scaled to RMS exactly threshold,
    direction kept (case C10). ``threshold=None`` returns u itself (no clipping)."""
    if threshold is None:
        return u
    return u / torch.clamp(rms(u) / threshold, min=1.0)


def _inv_sqrt_vhat(row: torch.Tensor, col: torch.Tensor, correction) -> tuple[torch.Tensor, torch.Tensor]:
    """1 / sqrt(Vhat) of (52) as float64 factors sqrt(1^T a / c) rsqrt(a) (..., m, 1) and rsqrt(s) (..., 1, n),
    whose product is never formed (see the module doc); ``correction`` broadcasts against ``row``."""
    r = row.double()
    r = (r.sum(dim=-1, keepdim=True) / correction).sqrt() * r.rsqrt()
    return r.unsqueeze(-1), col.double().rsqrt().unsqueeze(-2)


def _precondition(num: torch.Tensor, inv: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """U = N / sqrt(Vhat): N times each float64 factor of ``inv`` in turn, rounded once to N's dtype."""
    u = num.double()
    for f in inv:
        u = u * f
    return u.to(num.dtype)


def _layer_rms(x: torch.Tensor) -> torch.Tensor:
    """RMS of each parameter of a stack (k, ...), kept as (k, 1, ..., 1); a stack of scalars gives |x|."""
    if x.dim() == 1:
        return x.abs()
    return rms(x, tuple(range(1, x.dim()))).view(-1, *([1] * (x.dim() - 1)))


def _direction_single(
    w, g, exp_avg, row, col, v, t, *, beta1, beta2, decay_rate, eps1, eps2, clip_threshold, scale_parameter
) -> torch.Tensor:
    beta_t, corr = adafactor_beta2(t, beta2, decay_rate)
    g2 = g * g + eps1
    if row is not None:
        ema_(row, g2.sum(dim=-1), beta_t)
        ema_(col, g2.sum(dim=-2), beta_t)
        inv = _inv_sqrt_vhat(row, col, corr)
    else:
        ema_(v, g2, beta_t)
        inv = ((corr * v.double()).rsqrt(),)  # c v overflows float32 where v is near its largest value
    num = g
    if exp_avg is not None:
        ema_(exp_avg, g, beta1)
        num = exp_avg / bias_correction(beta1, t)
    u = rms_clip(_precondition(num, inv), clip_threshold)
    return u * torch.clamp(rms(w), min=eps2) if scale_parameter else u


def _directions_batched(
    params,
    grads,
    exp_avgs,
    rows,
    cols,
    sqs,
    steps,
    *,
    beta1,
    beta2,
    decay_rate,
    eps1,
    eps2,
    clip_threshold,
    scale_parameter,
) -> list[torch.Tensor]:
    out: list[torch.Tensor] = [None] * len(params)  # type: ignore[list-item]
    # one bucket per shape, kind of state and step count, so beta_t, c_t and 1 - beta_t stay Python floats
    # (formed in float32, 1 - fl32(0.999) would be off by 1e-5)
    buckets = bucket_indices(
        params,
        key=lambda i, w: (tuple(w.shape), w.dtype, w.device, rows[i] is not None, exp_avgs[i] is not None, steps[i]),
    )
    for (*_, factored, momentum, t), idx in buckets.items():
        beta_t, corr = adafactor_beta2(t, beta2, decay_rate)
        G = stack(grads, idx)
        G2 = G * G + eps1
        if factored:
            R, C = stack(rows, idx), stack(cols, idx)
            ema_(R, G2.sum(dim=-1), beta_t)
            ema_(C, G2.sum(dim=-2), beta_t)
            inv = _inv_sqrt_vhat(R, C, corr)
            unstack_(rows, idx, R)
            unstack_(cols, idx, C)
        else:
            V = stack(sqs, idx)
            ema_(V, G2, beta_t)
            inv = ((corr * V.double()).rsqrt(),)
            unstack_(sqs, idx, V)
        num = G
        if momentum:
            M = stack(exp_avgs, idx)
            ema_(M, G, beta1)
            num = M / bias_correction(beta1, t)
            unstack_(exp_avgs, idx, M)
        U = _precondition(num, inv)
        if clip_threshold is not None:
            U = U / torch.clamp(_layer_rms(U) / clip_threshold, min=1.0)
        if scale_parameter:
            U = U * torch.clamp(_layer_rms(stack(params, idx)), min=eps2)
        for i, u in zip(idx, U.unbind(0)):
            out[i] = u
    return out


def adafactor_directions(
    params,
    grads,
    exp_avgs,
    exp_avg_sq_rows,
    exp_avg_sq_cols,
    exp_avg_sqs,
    steps,
    *,
    beta1: float | None,
    beta2: float | None,
    decay_rate: float,
    eps1: float,
    eps2: float,
    clip_threshold: float | None,
    scale_parameter: bool,
    batched: bool = True,
) -> list[torch.Tensor]:
    """Update the moments in place and return D_t = max(eps2, RMS(W_t)) Uhat_t (``scale_parameter``) or Uhat_t.

    Args:
        params, grads: W_t and G_t, real float32/float64 tensors of equal shapes (both only read).
        exp_avgs: m_{t-1} per parameter, or ``None`` entries (beta1 = None).
        exp_avg_sq_rows, exp_avg_sq_cols: a_{t-1} (..., m) and s_{t-1} (..., n) for factored parameters, else
            ``None`` entries; exp_avg_sqs: v_{t-1} (the parameter's shape) for unfactored ones, else ``None``.
        steps: t per parameter (Python ints >= 1, already incremented).
        Other keywords: see the module doc; eps1 > 0, eps2 >= 0, clip_threshold > 0 or None.
        batched: stack parameters of one shape, dtype, device, kind of state and step count.

    Returns:
        New tensors of the parameters' shapes.
    """
    kw = dict(
        beta1=beta1,
        beta2=beta2,
        decay_rate=decay_rate,
        eps1=eps1,
        eps2=eps2,
        clip_threshold=clip_threshold,
        scale_parameter=scale_parameter,
    )
    if batched:
        return _directions_batched(params, grads, exp_avgs, exp_avg_sq_rows, exp_avg_sq_cols, exp_avg_sqs, steps, **kw)
    return [
        _direction_single(*args, **kw)
        for args in zip(params, grads, exp_avgs, exp_avg_sq_rows, exp_avg_sq_cols, exp_avg_sqs, steps)
    ]


def adafactor_last_stage(
    params,
    directions,
    steps,
    *,
    lr: float | None,
    relative_step: bool,
    warmup_init: bool,
    weight_decay: float,
    step: StepFn = apply_update_,
) -> None:
    """W <- (1 - rho_t weight_decay) W - rho_t D_t, rho_t = :func:`adafactor_step_size` of each parameter's t:
    one call ``step(params, directions, rho_t, rho_t * weight_decay)`` per distinct rho_t (one in the usual case
    of equal step counts)."""
    rhos = [adafactor_step_size(t, lr, relative_step, warmup_init) for t in steps]
    for rho, idx in bucket_indices(rhos, key=lambda i, r: r).items():
        step([params[i] for i in idx], [directions[i] for i in idx], rho, rho * weight_decay)


def _adafactor(
    params,
    grads,
    exp_avgs,
    exp_avg_sq_rows,
    exp_avg_sq_cols,
    exp_avg_sqs,
    steps,
    *,
    lr,
    beta1,
    beta2,
    decay_rate,
    eps1,
    eps2,
    clip_threshold,
    relative_step,
    scale_parameter,
    warmup_init,
    weight_decay,
    step,
    batched,
) -> None:
    directions = adafactor_directions(
        params,
        grads,
        exp_avgs,
        exp_avg_sq_rows,
        exp_avg_sq_cols,
        exp_avg_sqs,
        steps,
        beta1=beta1,
        beta2=beta2,
        decay_rate=decay_rate,
        eps1=eps1,
        eps2=eps2,
        clip_threshold=clip_threshold,
        scale_parameter=scale_parameter,
        batched=batched,
    )
    adafactor_last_stage(
        params,
        directions,
        steps,
        lr=lr,
        relative_step=relative_step,
        warmup_init=warmup_init,
        weight_decay=weight_decay,
        step=step,
    )


def adafactor_single(
    params,
    grads,
    exp_avgs,
    exp_avg_sq_rows,
    exp_avg_sq_cols,
    exp_avg_sqs,
    steps,
    *,
    lr: float | None,
    beta1: float | None,
    beta2: float | None,
    decay_rate: float,
    eps1: float,
    eps2: float,
    clip_threshold: float | None,
    relative_step: bool,
    scale_parameter: bool,
    warmup_init: bool,
    weight_decay: float,
    step: StepFn = apply_update_,
) -> None:
    """One Adafactor step on each parameter, in place (the literal loop of the module's equations).

    :func:`adafactor_directions` then :func:`adafactor_last_stage`; the arguments are theirs. ``lr`` is the
    group's current lr, schedule included: rho_t when ``relative_step`` is False, else its cap (see
    :func:`adafactor_step_size`); ``step`` is the last stage
    ``step(params, directions, lr, decay)`` (default :func:`adaptim.functional.common.apply_update_`).
    """
    _adafactor(**locals(), batched=False)


def adafactor_batched(
    params,
    grads,
    exp_avgs,
    exp_avg_sq_rows,
    exp_avg_sq_cols,
    exp_avg_sqs,
    steps,
    *,
    lr: float | None,
    beta1: float | None,
    beta2: float | None,
    decay_rate: float,
    eps1: float,
    eps2: float,
    clip_threshold: float | None,
    relative_step: bool,
    scale_parameter: bool,
    warmup_init: bool,
    weight_decay: float,
    step: StepFn = apply_update_,
) -> None:
    """The step of :func:`adafactor_single`, with parameters of one shape, dtype, device, kind of state and step
    count stacked and updated as one batch. Same arguments; equal to rounding."""
    _adafactor(**locals(), batched=True)
