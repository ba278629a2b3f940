"""Online convex optimization (Section 1): the protocol, adversaries, regret and its bounds, online-to-batch.

``run_online(make_optimizer, adversary)`` plays any torch optimizer against a loss sequence and returns an
:class:`OnlineRun` with the regret against the best fixed point in hindsight and the quantities (D, D_1, L,
sum ||g_t||², O_T, L_T, R_T) that the bounds of :mod:`adaptim.online.bounds` take.
"""

from adaptim.online.adversaries import (
    AbsoluteLosses,
    Adversary,
    HingeLosses,
    LinearLosses,
    LogisticLosses,
    QuadraticLosses,
    RandomSign,
    ReddiCounterexample,
    breast_cancer_stream,
    breast_cancer_table,
)
from adaptim.online.batch import OnlineToBatch, excess_risk, online_to_batch, sample_stream
from adaptim.online.bounds import (
    heavy_ball_bound,
    heavy_ball_optimal_bound,
    heavy_ball_optimal_lr,
    mirror_descent_bound,
    sgd_anytime_bound,
    sgd_bound,
    sgd_optimal_bound,
    sgd_optimal_lr,
)
from adaptim.online.hindsight import best_fixed
from adaptim.online.protocol import Box, L2Ball, OnlineRun, box, l2_ball, run_online

__all__ = [
    "run_online",
    "OnlineRun",
    "l2_ball",
    "box",
    "L2Ball",
    "Box",
    "Adversary",
    "LinearLosses",
    "AbsoluteLosses",
    "HingeLosses",
    "QuadraticLosses",
    "LogisticLosses",
    "RandomSign",
    "ReddiCounterexample",
    "breast_cancer_stream",
    "breast_cancer_table",
    "best_fixed",
    "mirror_descent_bound",
    "sgd_bound",
    "sgd_optimal_lr",
    "sgd_optimal_bound",
    "sgd_anytime_bound",
    "heavy_ball_bound",
    "heavy_ball_optimal_lr",
    "heavy_ball_optimal_bound",
    "online_to_batch",
    "OnlineToBatch",
    "sample_stream",
    "excess_risk",
]

# AdaGrad's (Section 3) and Shampoo's (Section 5) regret bounds
from adaptim.online.bounds_adaptive import (
    adagrad_diagonal_bound,
    adagrad_norm_bound,
    adagrad_norm_oracle_bound,
    full_matrix_adagrad_bound,
    shampoo_bound,
)

__all__ += [
    "adagrad_norm_oracle_bound",
    "adagrad_norm_bound",
    "adagrad_diagonal_bound",
    "full_matrix_adagrad_bound",
    "shampoo_bound",
]
