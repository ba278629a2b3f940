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

``adafactor_single`` is the literal loop and the reference. ``adafactor_batched`` is the fast path (the default of
the optimizer): the same equations in the parameter's dtype, in three passes over G and one update of W. It takes
row and column sums of G^2 (adding n eps1 and m eps1 to the sums instead of eps1 to every entry), forms the unit
U' = N_ij x_i rsqrt(s_j) with the row factor x = sqrt(1^T a / c) rsqrt(a) computed in float64 and rounded once,
keeps the scalars (1/sqrt(c) unfactored, 1/(1 - beta1^t), the clip and max(eps2, RMS(W))) out of every entry, and
steps W <- (1 - rho_t wd) W - (rho_t s) U' with that scalar s. Only tensors below ``STACK_BELOW`` entries are
stacked by (shape, dtype, step count, kind of state): a stack copies every gradient and statistic in and out. The
RMS of U' and W are float32 norms read on the host once per step (per bucket on CPU, where a read costs no sync);
where one overflowed or underflowed in a way that matters, that tensor's direction is formed again in the literal
float64 arithmetic. The two paths agree to a few float32 roundings (tests/optim/test_factored_fast.py states the
tolerances; float64 parameters agree to 1e-12). Moments are updated in place.
"""

from __future__ import annotations

import math
from collections.abc import Callable

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


def _direction_single(
    w, g, exp_avg, row, col, v, t, *, beta1, beta2, decay_rate, eps1, eps2, clip_threshold, scale_parameter
) -> torch.Tensor:
    beta_t, _ = adafactor_beta2(t, beta2, decay_rate)
    g2 = g * g + eps1
    if row is not None:
        ema_(row, g2.sum(dim=-1), beta_t)
        ema_(col, g2.sum(dim=-2), beta_t)
    else:
        ema_(v, g2, beta_t)
    if exp_avg is not None:
        ema_(exp_avg, g, beta1)
    return _literal_direction(
        w,
        g,
        exp_avg,
        row,
        col,
        v,
        t,
        beta1=beta1,
        beta2=beta2,
        decay_rate=decay_rate,
        eps2=eps2,
        clip_threshold=clip_threshold,
        scale_parameter=scale_parameter,
    )


def _literal_direction(
    w, g, exp_avg, row, col, v, t, *, beta1, beta2, decay_rate, eps2, clip_threshold, scale_parameter
) -> torch.Tensor:
    """D_t from moments already updated to step t, in the literal arithmetic (float64 U, rounded once)."""
    _, corr = adafactor_beta2(t, beta2, decay_rate)
    if row is not None:
        inv = _inv_sqrt_vhat(row, col, corr)
    else:
        inv = ((corr * v.double()).rsqrt(),)  # c v overflows float32 where v is near its largest value
    num = g if exp_avg is None else exp_avg / bias_correction(beta1, t)
    u = rms_clip(_precondition(num, inv), clip_threshold)
    return u * torch.clamp(rms(w), min=eps2) if scale_parameter else u


#: the fast path stacks a bucket only when its tensors have fewer entries than this: for larger ones the copies in
#: and out (two passes over every gradient and statistic) cost more than the per-tensor kernel launches they save
STACK_BELOW = 1 << 16
#: a float32 norm in (_NORM_LOW, inf) has lost nothing to overflow or underflow of the squares; outside it, the
#: RMS is taken again in float64 (or shown not to matter), see :func:`_scale`
_NORM_LOW = 1e-15


def _fast_groups(params, rows, exp_avgs, steps) -> list[tuple[tuple, list[int]]]:
    buckets = bucket_indices(
        params,
        key=lambda i, w: (tuple(w.shape), w.dtype, w.device, rows[i] is not None, exp_avgs[i] is not None, steps[i]),
    )
    out = []
    for key, idx in buckets.items():
        if len(idx) > 1 and params[idx[0]].numel() < STACK_BELOW:
            out.append((key, idx))
        else:
            out.extend((key, [i]) for i in idx)
    return out


def _take(tensors, idx) -> torch.Tensor:
    """A bucket as one (k, ...) tensor: a stack (a copy), or for one tensor a view of it (written through)."""
    return tensors[idx[0]].unsqueeze(0) if len(idx) == 1 else stack(tensors, idx)


def _put_(targets, idx, stacked: torch.Tensor) -> None:
    if len(idx) > 1:
        unstack_(targets, idx, stacked)


def _member_norms(x: torch.Tensor) -> torch.Tensor:
    """||x_j||_2 of each member of a stack (k, ...), in x's dtype; a stack of scalars gives |x|."""
    return x.abs() if x.dim() == 1 else torch.linalg.vector_norm(x, dim=tuple(range(1, x.dim())))


def _units_fast(
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
    emit: Callable[[int, torch.Tensor, float], None],
    reuse: bool = False,
) -> None:
    """The fast path: updates the moments in place and calls ``emit(i, unit, scale)`` once per parameter, with
    D_i = scale * unit (see the module doc).

    ``reuse=False``: every unit is a tensor of its own, and the norms of all parameters reach the host in one
    transfer per device, after the last kernel. ``reuse=True`` (CPU, where reading a number costs no sync): each
    bucket is finished and emitted before the next one starts, and the units of unstacked factored parameters
    share one scratch buffer per dtype, so ``emit`` must be done with a unit when it returns (the last stage is);
    a fresh large buffer per parameter would cost its page faults every step.
    """
    groups = _fast_groups(params, rows, exp_avgs, steps)
    scratch: dict[torch.dtype, torch.Tensor] = {}
    if reuse:
        for (shape, dtype, device, factored, *_), idx in groups:
            if factored and len(idx) == 1 and math.prod(shape) > scratch.get(dtype, torch.empty(0)).numel():
                scratch[dtype] = torch.empty(math.prod(shape), dtype=dtype, device=device)
    pending = []
    for (shape, dtype, _, factored, momentum, t), idx in groups:
        beta_t, corr = adafactor_beta2(t, beta2, decay_rate)
        G = _take(grads, idx)
        f = 1.0  # the scalar factor of U kept out of the unit (one multiply less per entry)
        if factored:
            R, C = _take(rows, idx), _take(cols, idx)
            if dtype in scratch and len(idx) == 1:
                G2 = torch.mul(G, G, out=scratch[dtype][: G.numel()].view(G.shape))
            else:
                G2 = G * G
            # sum(G^2) + n eps1: eps1 is added to the sums, not to every entry
            ema_(R, G2.sum(dim=-1).add_(shape[-1] * eps1), beta_t)
            ema_(C, G2.sum(dim=-2).add_(shape[-2] * eps1), beta_t)
            _put_(rows, idx, R)
            _put_(cols, idx, C)
            # sqrt(1^T a / c) rsqrt(a) in float64 (1^T a overflows float32), rounded once; a float32 row factor
            # beyond the largest float32 only meets zero gradients (their row sum is tiny), so clamp it there
            r = R.double()
            x = (r.sum(dim=-1, keepdim=True) / corr).sqrt() * r.rsqrt()
            if dtype != torch.float64:
                x = x.clamp_(max=torch.finfo(dtype).max).to(dtype)
            y = C.rsqrt()
        else:
            V = _take(sqs, idx)
            ema_(V, (G * G).add_(eps1), beta_t)
            _put_(sqs, idx, V)
            f = corr**-0.5
        N = G
        if momentum:
            M = _take(exp_avgs, idx)
            ema_(M, G, beta1)
            _put_(exp_avgs, idx, M)
            N = M
            f /= bias_correction(beta1, t)
        if factored:  # G2 is spent: the unit overwrites it
            U = torch.mul(N, y.unsqueeze(-2), out=G2).mul_(x.unsqueeze(-1))
        else:
            U = V.rsqrt().mul_(N)
        W = _take(params, idx)
        pending.append((idx, U, f, (_member_norms(U), _member_norms(W) if scale_parameter else None)))
        if reuse:
            _emit_units(
                pending,
                params,
                grads,
                exp_avgs,
                rows,
                cols,
                sqs,
                steps,
                emit,
                beta1,
                beta2,
                decay_rate,
                eps2,
                clip_threshold,
                scale_parameter,
            )
            pending = []
    _emit_units(
        pending,
        params,
        grads,
        exp_avgs,
        rows,
        cols,
        sqs,
        steps,
        emit,
        beta1,
        beta2,
        decay_rate,
        eps2,
        clip_threshold,
        scale_parameter,
    )


def _emit_units(
    pending,
    params,
    grads,
    exp_avgs,
    rows,
    cols,
    sqs,
    steps,
    emit,
    beta1,
    beta2,
    decay_rate,
    eps2,
    clip_threshold,
    scale_parameter,
) -> None:
    """The scales of the pending buckets from their norms (one host transfer), then ``emit`` for each member."""
    if not pending:
        return
    for (idx, U, f, _), values in zip(pending, _to_host([p[3] for p in pending])):
        for j, (i, u) in enumerate(zip(idx, U.unbind(0))):
            s = _scale(
                values[0][j],
                None if values[1] is None else values[1][j],
                f,
                math.sqrt(max(1, params[i].numel())),
                params[i].dtype,
                eps2=eps2,
                clip_threshold=clip_threshold,
                scale_parameter=scale_parameter,
            )
            if s is None:  # out of float32's safe range: the literal float64 arithmetic for this tensor
                u = _literal_direction(
                    params[i],
                    grads[i],
                    exp_avgs[i],
                    rows[i],
                    cols[i],
                    sqs[i],
                    t=steps[i],
                    beta1=beta1,
                    beta2=beta2,
                    decay_rate=decay_rate,
                    eps2=eps2,
                    clip_threshold=clip_threshold,
                    scale_parameter=scale_parameter,
                )
                s = 1.0
            emit(i, u, s)


def _to_host(pairs) -> list[tuple]:
    """The (k,) norm tensors of ``pairs`` (entries may be ``None``) as Python lists: one transfer per device."""
    by_device: dict[torch.device, list[torch.Tensor]] = {}
    for t in (t for pair in pairs for t in pair if t is not None):
        by_device.setdefault(t.device, []).append(t)
    host: dict[int, list[float]] = {}
    for ts in by_device.values():
        values = torch.cat([t.double() for t in ts]).tolist()
        k = 0
        for t in ts:
            host[id(t)] = values[k : k + t.numel()]
            k += t.numel()
    return [tuple(None if t is None else host[id(t)] for t in pair) for pair in pairs]


def _scale(nu, nw, f, size, dtype, *, eps2, clip_threshold, scale_parameter) -> float | None:
    """s with D = s U' of the fast path, from ||U'|| (``nu``), ||W|| (``nw``), U = f U' and size = sqrt(numel).

    ``None`` where the norms (float32, of float32 tensors) cannot be trusted: an overflow (inf), or a norm so
    small that its squares underflowed while the result depends on it (a clip that may act, a RMS(W) above eps2).
    """
    if not math.isfinite(nu) or (nw is not None and not math.isfinite(nw)):
        return None
    if dtype != torch.float64:
        if clip_threshold is not None and nu <= _NORM_LOW and f * _NORM_LOW / size > clip_threshold:
            return None
        if nw is not None and nw <= _NORM_LOW and eps2 < _NORM_LOW:
            return None
    s = f
    if clip_threshold is not None:
        s /= max(1.0, f * nu / size / clip_threshold)
    if scale_parameter:
        s *= max(eps2, nw / size)
    return s


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
        batched: the fast path of the module doc (the directions then cost one more multiply each than in
            :func:`adafactor_batched`, which folds the scalar into the step size).

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
        out: list[torch.Tensor] = [None] * len(params)  # type: ignore[list-item]

        def keep(i: int, unit: torch.Tensor, scale: float) -> None:
            out[i] = unit if scale == 1.0 else unit.mul_(scale)

        _units_fast(params, grads, exp_avgs, exp_avg_sq_rows, exp_avg_sq_cols, exp_avg_sqs, steps, **kw, emit=keep)
        return out
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
    if batched and step is apply_update_:  # the Euclidean last stage: each D_i's scalar goes into its step size

        def last_stage(i: int, unit: torch.Tensor, scale: float) -> None:
            rho = adafactor_step_size(steps[i], lr, relative_step, warmup_init)
            step([params[i]], [unit], rho * scale, rho * weight_decay)

        _units_fast(
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
            emit=last_stage,
            reuse=all(p.device.type == "cpu" for p in params),
        )
        return
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
    """The step of :func:`adafactor_single` on the fast path of the module doc (float32 arithmetic for float32
    parameters, small tensors of one shape, dtype, device, kind of state and step count stacked). Same arguments;
    equal to a few roundings. With the default ``step`` (:func:`~adaptim.functional.common.apply_update_`) each
    parameter is stepped with rho_t times its scalar s, D_i = s U'_i never formed; any other ``step`` receives the
    directions D_i once per distinct rho_t, as documented for :func:`adafactor_last_stage`."""
    _adafactor(**locals(), batched=True)
