"""The adaptive regret bounds (32)-(43) and Shampoo's (Section 5) against hand-computed tiny runs."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from adaptim.online.bounds_adaptive import (
    adagrad_diagonal_bound,
    adagrad_norm_bound,
    adagrad_norm_oracle_bound,
    full_matrix_adagrad_bound,
    shampoo_bound,
)


def _run(grads, iterates, u, shape=None):
    grads = torch.tensor(grads, dtype=torch.float64)
    return SimpleNamespace(
        grads=grads,
        iterates=None if iterates is None else torch.tensor(iterates, dtype=torch.float64),
        comparator=torch.tensor(u, dtype=torch.float64),
        shape=shape or (grads.shape[1],),
        adversary=None,
    )


# g_1 = (3, 0), g_2 = (0, 4); w_1 = (0, 0), w_2 = (1, 1); u = (2, -1):
# w_1 - u = (-2, 1), w_2 - u = (-1, 2): D_1 = D = sqrt(5), delta = (2, 2), |delta_1| = (2, 1); S_T = 25,
# beta = (3, 4), O_T = diag(9, 16).
RUN = _run([[3.0, 0.0], [0.0, 4.0]], [[0.0, 0.0], [1.0, 1.0]], [2.0, -1.0])
R5 = math.sqrt(5)


def test_adagrad_norm_oracle_is_d1_times_root_sum_of_squares():
    assert adagrad_norm_oracle_bound(RUN) == pytest.approx(5 * R5, rel=1e-14)
    # another comparator: u = 0 gives D_1 = 0
    assert adagrad_norm_oracle_bound(RUN, u=[0.0, 0.0]) == 0.0


def test_adagrad_norm_bound_34_and_its_lr_and_tight_forms():
    assert adagrad_norm_bound(RUN) == pytest.approx(1.5 * R5 * 5, rel=1e-14)
    # lr = 2: D^2 sqrt(S) / (2 lr) + lr sqrt(S) = 25/4 + 10
    assert adagrad_norm_bound(RUN, 2.0) == pytest.approx(16.25, rel=1e-14)
    # tight: 25/4 + (1/2)(2/3 * 9 + 2/5 * 16) = 6.25 + 6.2
    assert adagrad_norm_bound(RUN, 2.0, tight=True) == pytest.approx(12.45, rel=1e-14)
    # eps = 1 enlarges only 1/eta_T: 5 * 6 / 4 + 10
    assert adagrad_norm_bound(RUN, 2.0, eps=1.0) == pytest.approx(17.5, rel=1e-14)
    # (34) at lr = D is exactly 1.5 times (32) when D = D_1
    assert adagrad_norm_bound(RUN) / adagrad_norm_oracle_bound(RUN) == pytest.approx(1.5, rel=1e-14)


def test_adagrad_diagonal_bounds_38_39():
    assert adagrad_diagonal_bound(RUN, oracle=True) == pytest.approx(2 * 3 + 1 * 4, rel=1e-14)
    assert adagrad_diagonal_bound(RUN) == pytest.approx(1.5 * (2 * 3 + 2 * 4), rel=1e-14)
    # shared lr = 4: sum_i (delta_i^2 / 8 + 4) beta_i = 4.5 * 7
    assert adagrad_diagonal_bound(RUN, 4.0) == pytest.approx(31.5, rel=1e-14)
    # per-coordinate lr = delta gives (39)
    assert adagrad_diagonal_bound(RUN, [2.0, 2.0]) == pytest.approx(21.0, rel=1e-14)
    # tight, lr = 4: first 4*3/8 + 4*4/8 = 3.5; sums g^2/sqrt(S_t): coordinate 0: 9/3, coordinate 1: 0 (0/0) + 16/4
    assert adagrad_diagonal_bound(RUN, 4.0, tight=True) == pytest.approx(3.5 + 0.5 * 4 * 7, rel=1e-14)
    assert adagrad_diagonal_bound(RUN, 4.0, eps=1.0) == pytest.approx(4 * 4 / 8 + 4 * 5 / 8 + 28, rel=1e-14)
    # Hölder: (38) <= (32)
    assert adagrad_diagonal_bound(RUN, oracle=True) <= adagrad_norm_oracle_bound(RUN)


def test_full_matrix_bounds_41_43_on_a_diagonal_o_t():
    assert full_matrix_adagrad_bound(RUN, kind="oracle") == pytest.approx(7 * R5, rel=1e-14)
    assert full_matrix_adagrad_bound(RUN, kind="diagonal") == pytest.approx(7 * R5, rel=1e-14)
    assert full_matrix_adagrad_bound(RUN) == pytest.approx(10.5 * R5, rel=1e-14)
    assert full_matrix_adagrad_bound(RUN, 1.0) == pytest.approx(5 * 7 / 2 + 7, rel=1e-14)
    # tight, lr = 1: 17.5 + (1/2)(9 / 3 + 16 / 4) with the pseudo-inverse of O_1 = diag(9, 0)
    assert full_matrix_adagrad_bound(RUN, 1.0, kind="tight") == pytest.approx(21.0, rel=1e-12)


def test_full_matrix_oracle_below_diagonal_when_o_t_is_not_diagonal():
    # one gradient (3, 4): tr(O_T^{1/2}) = ||g|| = 5 < 3 + 4 (Lemma S.1); w_1 - u = (1, 0)
    run = _run([[3.0, 4.0]], [[0.0, 0.0]], [-1.0, 0.0])
    assert full_matrix_adagrad_bound(run, kind="oracle") == pytest.approx(5.0, rel=1e-14)
    assert full_matrix_adagrad_bound(run, kind="diagonal") == pytest.approx(7.0, rel=1e-14)
    # damping: tr((O + I)^{1/2}) = sqrt(26) + 1; per_step lr = 1: D^2 tr / 2 + (tr - 2 sqrt(1))
    tr = math.sqrt(26) + 1
    assert full_matrix_adagrad_bound(run, 1.0, eps=1.0) == pytest.approx(tr / 2 + tr - 2, rel=1e-14)


def test_shampoo_bound_on_a_hand_computed_2x2_run():
    # G_1 = e_1 e_1^T, G_2 = 2 e_2 e_2^T: L_T = R_T = diag(1, 4), tr(L^{1/4}) tr(R^{1/4}) = (1 + sqrt 2)^2, r = 1
    G = [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 2.0]]
    run = _run(G, [[0.0] * 4, [1.0, 0.0, 0.0, 1.0]], [0.0] * 4, shape=(2, 2))
    tr = (1 + math.sqrt(2)) ** 2
    assert shampoo_bound(run) == pytest.approx(math.sqrt(2) * math.sqrt(2) * tr, rel=1e-13)  # D sqrt(2r) tr
    assert shampoo_bound(run, 1.0) == pytest.approx(2 * tr / 2 + tr, rel=1e-13)
    # tight: D^2 tr / 2 + (1/2)(1 + 2 * 2 * (1/sqrt 2)^2)
    assert shampoo_bound(run, 1.0, tight=True) == pytest.approx(tr + 1.5, rel=1e-12)
    assert shampoo_bound(run, 1.0, rank=2) == pytest.approx(tr + 2 * tr, rel=1e-13)
    # a full-rank gradient raises r to 2
    full = _run([[1.0, 0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0, 0.0]], [0.0] * 4, shape=(2, 2))
    assert shampoo_bound(full) == pytest.approx(1 * 2 * 4, rel=1e-13)  # D sqrt(2r) tr(I^{1/4})^2, r = 2


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="lr"):
        adagrad_norm_bound(RUN, 0.0)
    with pytest.raises(ValueError, match="lr"):
        adagrad_diagonal_bound(RUN, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="eps"):
        adagrad_norm_bound(RUN, 1.0, eps=-1.0)
    with pytest.raises(ValueError, match="kind"):
        full_matrix_adagrad_bound(RUN, kind="full")
    with pytest.raises(ValueError, match="shape"):
        shampoo_bound(RUN)
    with pytest.raises(ValueError, match="tight"):
        adagrad_diagonal_bound(RUN, tight=True)
    with pytest.raises(ValueError, match="iterates"):
        adagrad_norm_oracle_bound(_run([[1.0, 0.0]], None, [0.0, 0.0]))


# the bounds hold for the library's optimizers on real runs: regret <= (18) itself <= the bound after Fact 2.1


def test_adagrad_norm_regret_below_34_on_a_projected_logistic_stream():
    import adaptim
    from adaptim.online import LogisticLosses, breast_cancer_stream, run_online

    X, y = breast_cancer_stream(0)
    adv = LogisticLosses(X[:80], y[:80], radius=1.0)
    run = run_online(lambda p: adaptim.AdaGradNorm(p, lr=1.0), adv, projection=adv.domain)
    tight = adagrad_norm_bound(run, 1.0, eps=1e-10, tight=True)
    assert 0 < run.regret() <= tight <= adagrad_norm_bound(run, 1.0, eps=1e-10)


def test_diagonal_adagrad_regret_below_its_bound_on_a_boxed_hinge_stream():
    import adaptim
    from adaptim.online import HingeLosses, breast_cancer_stream, run_online

    X, y = breast_cancer_stream(0)
    adv = HingeLosses(X[:80, :6], y[:80], bound=0.5)
    run = run_online(lambda p: adaptim.AdaGrad(p, lr=0.5, fused=False), adv, projection=adv.domain)
    tight = adagrad_diagonal_bound(run, 0.5, eps=1e-10, tight=True)
    assert run.regret() <= tight <= adagrad_diagonal_bound(run, 0.5, eps=1e-10)
    assert adagrad_diagonal_bound(run, oracle=True) <= adagrad_norm_oracle_bound(run)


def test_full_matrix_adagrad_regret_below_43():
    import adaptim
    from adaptim.online import QuadraticLosses, run_online

    gen = torch.Generator().manual_seed(0)
    z = torch.randn(40, 4, generator=gen, dtype=torch.float64) @ torch.randn(4, 4, generator=gen, dtype=torch.float64)
    run = run_online(lambda p: adaptim.FullMatrixAdaGrad(p, lr=1.0, eps=1e-12), QuadraticLosses(z + 1.0))
    tight = full_matrix_adagrad_bound(run, 1.0, kind="tight", eps=1e-12)
    assert run.regret() <= tight <= full_matrix_adagrad_bound(run, 1.0, eps=1e-12)
    assert full_matrix_adagrad_bound(run, kind="oracle") < full_matrix_adagrad_bound(run, kind="diagonal")


def test_shampoo_regret_below_section_5_bound():
    import adaptim
    from adaptim.online import QuadraticLosses, run_online

    gen = torch.Generator().manual_seed(1)
    z = torch.randn(30, 3, 2, generator=gen, dtype=torch.float64) + 2.0
    make = lambda p: adaptim.Shampoo(p, lr=1.0, eps=1e-12, grafting=None, precondition_frequency=1)
    run = run_online(make, QuadraticLosses(z))
    tight = shampoo_bound(run, 1.0, eps=1e-12, tight=True)
    assert run.regret() <= tight <= shampoo_bound(run, 1.0, eps=1e-12)
