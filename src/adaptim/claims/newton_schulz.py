"""Appendix Q.3-Q.3.1, (146)-(147): Newton-Schulz coefficient systems, the local convergence order measured on
singular values, the "jordan" coefficients' range, and the FLOP counts."""

from __future__ import annotations

import numpy as np
import torch
from numpy.polynomial import Polynomial
from torch.utils.flop_counter import FlopCounterMode

from adaptim.claims._core import Claim, Context
from adaptim.linalg import NS_COEFFICIENTS, newton_schulz, newton_schulz_coefficients, orthogonal_iteration

F64 = torch.float64


def _phi(coeffs) -> Polynomial:
    """phi(x) = sum_i c_i x^(2i-1) as a numpy polynomial."""
    c = np.zeros(2 * len(coeffs))
    c[1::2] = coeffs
    return Polynomial(c)


def _matrix(rng: np.random.Generator, x: np.ndarray, m: int | None = None) -> np.ndarray:
    """U diag(x) V^T with random orthonormal U (m x k), V (k x k): the singular values are x."""
    k = len(x)
    U, _ = np.linalg.qr(rng.standard_normal((m or k, k)))
    V, _ = np.linalg.qr(rng.standard_normal((k, k)))
    return (U * x) @ V.T


def _svals(Y: torch.Tensor) -> np.ndarray:
    return np.sort(np.linalg.svd(Y.numpy(), compute_uv=False))


def _check_systems(ctx: Context) -> None:
    # the notes' systems: c1 + c2 = 1, c1 + 3 c2 = 0; and c1 + c2 + c3 = 1, c1 + 3 c2 + 5 c3 = 0, 6 c2 + 20 c3 = 0
    sol2 = np.linalg.solve([[1, 1], [1, 3]], [1, 0])
    sol3 = np.linalg.solve([[1, 1, 1], [1, 3, 5], [0, 6, 20]], [1, 0, 0])
    ctx.close(
        "P = 2: newton_schulz_coefficients(2) vs the notes' 2x2 system", sol2, newton_schulz_coefficients(2), atol=1e-15
    )
    ctx.close("P = 2: ... = (3/2, -1/2) as the notes state", [1.5, -0.5], newton_schulz_coefficients(2), atol=0)
    ctx.close(
        "P = 3: newton_schulz_coefficients(3) vs the notes' 3x3 system", sol3, newton_schulz_coefficients(3), atol=1e-15
    )
    ctx.close(
        "P = 3: ... = (15/8, -5/4, 3/8) as the notes state",
        [15 / 8, -5 / 4, 3 / 8],
        newton_schulz_coefficients(3),
        atol=0,
    )
    for P in (4, 5, 6):
        phi = _phi(newton_schulz_coefficients(P))
        derivs = [phi(1.0)] + [phi.deriv(k)(1.0) for k in range(1, P + 1)]
        ctx.close(
            f"P = {P}: phi(1) = 1 and phi^(k)(1) = 0 for k = 1..{P - 1}", [1.0] + [0.0] * (P - 1), derivs[:P], atol=1e-9
        )
        ctx.ge(f"P = {P}: |phi^({P})(1)| > 0 (so the order n_loc is exactly {P})", abs(derivs[P]), 1e-6)


def _errors(X: np.ndarray, coeffs, K: int) -> np.ndarray:
    """1 - sigma_i after k = 0..K library iterations (singular values sorted; phi is monotone on [0, 1])."""
    return np.array([1.0 - _svals(newton_schulz(torch.from_numpy(X), coeffs, k)) for k in range(K + 1)])


def _check_order(ctx: Context, rng: np.random.Generator) -> None:
    n = ctx.size(24, 48)
    X = _matrix(rng, np.linspace(0.05, 1.0, n))
    x0 = np.sort(np.linalg.svd(X, compute_uv=False)) / np.linalg.norm(X)
    # (147) acts on singular values by the scalar map: sigma(X_k) = phi^k(sigma(X_0)), X_0 = X / ||X||_F
    for P in (2, 3, 4):
        coeffs = newton_schulz_coefficients(P)
        phi = _phi(coeffs)
        K = {2: 12, 3: 8, 4: 6}[P]
        eps = _errors(X, coeffs, K)
        pred = x0.copy()
        for _ in range(K):
            pred = phi(pred)
        ctx.close(
            f"P = {P}: singular values after {K} steps = phi^{K}(singular values of X / ||X||_F)",
            1 - pred,
            eps[-1],
            atol=1e-12,
        )
        a, b = eps[:-1].reshape(-1), eps[1:].reshape(-1)
        keep = (a > 0) & (a < 0.2) & (b > 1e-12)  # the asymptotic regime, above float64 rounding
        slope, _ = np.polyfit(np.log(a[keep]), np.log(b[keep]), 1)
        ctx.close(
            f"P = {P}: convergence order, slope of log eps_(k+1) on log eps_k ({keep.sum()} pairs)", P, slope, atol=0.1
        )
    ctx.note("tolerance (order)", "eps_next = C eps^P (1 + O(eps)) with eps < 0.2: the fitted slope is within 0.1 of P")
    # phi'(1) != 0 collapses to linear convergence: phi(x) = 1.25 x - 0.25 x^3 has phi(1) = 1, phi'(1) = 1/2
    # (the smallest singular value, 0.05 / ||x||, needs about 20 steps of phi(x) ~ 1.25 x to come near 1)
    lin, K = (1.25, -0.25), 36
    e_k, e_next = (1.0 - _svals(newton_schulz(torch.from_numpy(X), lin, k))[0] for k in (K, K + 1))
    ctx.close(
        f"phi'(1) = 1/2: linear convergence, eps_(k+1) / eps_k at k = {K} (error {e_k:.1e})",
        0.5,
        e_next / e_k,
        atol=1e-3,
    )


def _check_jordan(ctx: Context, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    coeffs = NS_COEFFICIENTS["jordan"]
    ctx.close(
        "'jordan' coefficients are the notes' (3.4445, -4.7750, 2.0315)", [3.4445, -4.7750, 2.0315], coeffs, atol=0
    )
    # the named presets are the notes' polynomials: "cubic" is (146)'s P = 2 solution, "quintic" P = 3's
    ctx.close("'cubic' preset = the P = 2 system's solution (3/2, -1/2)", [1.5, -0.5], NS_COEFFICIENTS["cubic"], atol=0)
    ctx.close(
        "'quintic' preset = the P = 3 system's solution (15/8, -5/4, 3/8)",
        [15 / 8, -5 / 4, 3 / 8],
        NS_COEFFICIENTS["quintic"],
        atol=0,
    )
    for name, P in (("cubic", 2), ("quintic", 3)):
        x = torch.linspace(0.05, 1.0, 20, dtype=torch.float64)
        d = torch.diag(x)  # singular values x: one preset step must apply the notes' polynomial to each
        s_out = torch.linalg.svdvals(newton_schulz(d / d.norm(), name, 1)).flip(0).numpy()
        y = (x / x.norm()).numpy()
        poly = sum(c * y ** (2 * k + 1) for k, c in enumerate(newton_schulz_coefficients(P)))
        ctx.close(f"one '{name}' step maps each singular value through the P = {P} polynomial", poly, s_out, rtol=1e-12)
    # 1 is not a fixed point: a rank-1 matrix (normalized singular value 1) moves to phi(1) = c1 + c2 + c3 = 0.701
    u, v = rng.standard_normal((6, 1)), rng.standard_normal((1, 5))
    s1 = _svals(newton_schulz(torch.from_numpy(u @ v), "jordan", 1))[-1]
    ctx.close(
        "'jordan': a singular value at 1 maps to phi(1) = c1 + c2 + c3 = 0.7010, not 1", sum(coeffs), s1, atol=1e-12
    )
    # singular values spread over [1.5e-3, 1] (after X / ||X||_F) land in 1 ± 0.3 after K = 5 steps
    n = 64
    x = np.concatenate([[1.0], np.geomspace(2.5e-3, 0.3, n - 1)])
    X = _matrix(rng, x, m=n + 16)
    x0 = np.sort(x) / np.linalg.norm(x)
    s = _svals(newton_schulz(torch.from_numpy(X), "jordan", 5))
    grid = np.geomspace(x0.min(), 1.0, 200_001)
    phi = _phi(coeffs)
    for _ in range(5):
        grid = phi(grid)
    ctx.note("normalized singular values", f"{x0.min():.2e} .. {x0.max():.3f}")
    ctx.ge(
        f"'jordan', 5 steps: smallest singular value >= 0.7 (the notes' 1 - 0.3), slack 0.02 (inputs from "
        f"{x0.min():.1e})",
        s.min(),
        0.7,
        atol=0.02,
    )
    ctx.le("'jordan', 5 steps: largest singular value <= 1.3 (the notes' 1 + 0.3)", s.max(), 1.3)
    ctx.ge(
        "... and within the exact range of the 5-step scalar map over [x_min, 1] (a 200001-point grid)",
        s.min(),
        grid.min(),
        atol=1e-9,
    )
    ctx.le("... upper end", s.max(), grid.max(), atol=1e-9)
    ctx.ge("'jordan' does not converge to 1: max |sigma - 1| after 5 steps", np.abs(s - 1).max(), 0.15)
    ctx.note(
        "jordan range",
        f"measured singular values after 5 steps: [{s.min():.4f}, {s.max():.4f}]; the 5-step map sends "
        f"[{x0.min():.1e}, 1] into [{grid.min():.4f}, {grid.max():.4f}]: the notes' 1 ± 0.3 holds for the upper "
        "end, the lower end is 1 - 0.32",
    )
    return x0, s


def _flops(fn) -> int:
    with FlopCounterMode(display=False) as fc:
        fn()
    return int(fc.get_total_flops())


def _check_flops(ctx: Context, rng: np.random.Generator) -> None:
    m = 64
    X = torch.from_numpy(rng.standard_normal((m, m)))
    for fused in (False, True):
        got = _flops(lambda fused=fused: newton_schulz(X, "jordan", 5, fused=fused))
        ctx.close(
            f"NS, P = 3, K = 5, m = n = {m}, {'fused' if fused else 'literal'} path: matmul FLOPs = 30 m^3",
            30 * m**3,
            got,
            atol=0,
        )
    mr, nr = 32, 80
    Xr = torch.from_numpy(rng.standard_normal((mr, nr)))
    got = _flops(lambda: newton_schulz(Xr, "jordan", 5))
    ctx.close(
        f"NS, m x n = {mr} x {nr}: 5 (2m^2n + 2m^3 + 2m^2n) FLOPs", 5 * (4 * mr * mr * nr + 2 * mr**3), got, atol=0
    )
    got = _flops(lambda: newton_schulz(Xr.T.contiguous(), "jordan", 5))
    ctx.close(
        f"NS, tall {nr} x {mr}: the same count (the Gram matrix is taken on the short side)",
        5 * (4 * mr * mr * nr + 2 * mr**3),
        got,
        atol=0,
    )
    # orthogonal iteration: the products X V of (142) are 2 n^2 m each (QR is LAPACK, not counted)
    S = torch.from_numpy(rng.standard_normal((m, m)))
    S = S @ S.T
    got = _flops(lambda: orthogonal_iteration(S, k=m, num_iters=5))
    ctx.close(
        "orthogonal iteration, K = 5, m = n: matmul FLOPs 5 x 2n^3 (+ one product for the Rayleigh quotients)",
        6 * 2 * m**3,
        got,
        atol=0,
    )
    per_iter = 2 + 4 - 4 / 3  # 2 n^2 m + 4 n m^2 - 4/3 m^3 at m = n, in units of n^3
    ctx.close(
        "the notes' '≈ 24 m^3' for 5 orthogonal iterations: 5 (2 + 4 - 4/3) = 23.3", 24.0, 5 * per_iter, rtol=0.05
    )
    ctx.close("the notes' '≈ 5 m^3' online (one iteration): 14/3 = 4.67", 5.0, per_iter, rtol=0.07)


def run(ctx: Context):
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(ctx.seed)
    _check_systems(ctx)
    _check_order(ctx, rng)
    _check_jordan(ctx, rng)
    _check_flops(ctx, rng)

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    x = np.linspace(0, 1.25, 500)
    sets = {
        "cubic (3/2, -1/2)": NS_COEFFICIENTS["cubic"],
        "quintic (15/8, -5/4, 3/8)": NS_COEFFICIENTS["quintic"],
        "jordan (3.4445, -4.7750, 2.0315)": NS_COEFFICIENTS["jordan"],
    }
    for i, (label, c) in enumerate(sets.items()):
        ax1.plot(x, _phi(c)(x), color=f"C{i}", label=label)
    ax1.plot(x, x, "k:", lw=1, label="y = x")
    ax1.axhline(1.0, color="gray", lw=0.8)
    ax1.set_ylim(-0.1, 1.6)
    ax1.set_xlabel("singular value x")
    ax1.set_ylabel(r"$\phi(x)$")
    ax1.set_title("one step: the odd polynomials of Q.3.1")
    ax1.legend(fontsize=8)
    xs = np.geomspace(1e-3, 1.0, 800)
    for i, (label, c) in enumerate(sets.items()):
        y = xs.copy()
        for _ in range(5):
            y = _phi(c)(y)
        ax2.semilogx(xs, y, color=f"C{i}", label=label.split(" ")[0])
    ax2.axhspan(0.7, 1.3, color="C2", alpha=0.12, label="1 ± 0.3")
    ax2.set_xlabel(r"normalized singular value $x_0$ of $X/\|X\|_F$")
    ax2.set_ylabel(r"$\phi^{5}(x_0)$")
    ax2.set_title("after K = 5 steps")
    ax2.legend(fontsize=8)
    fig.suptitle("newton-schulz (Q.3.1): the polynomials and their 5-fold iterates")
    fig.tight_layout()
    return fig


CLAIM = Claim(
    name="newton-schulz",
    section="Q.3, Q.3.1, (146)-(147)",
    statement="The coefficients with phi(1) = 1 and phi^(k)(1) = 0 (k < P) solve the notes' linear systems ((3/2, "
    "-1/2), (15/8, -5/4, 3/8)) and give local convergence of order P on every singular value; the 'jordan' "
    "coefficients flatten singular values to about 1 ± 0.3 in 5 steps without converging to 1; P = 3 costs "
    "6 m^3 FLOPs per step, 30 m^3 for K = 5.",
    run=run,
)
