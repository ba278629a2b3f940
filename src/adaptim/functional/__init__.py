"""Pure update rules, one module per method family: a literal single-tensor loop and a foreach path for each."""

from adaptim.functional.adafactor import (
    adafactor_batched,
    adafactor_beta2,
    adafactor_directions,
    adafactor_last_stage,
    adafactor_single,
    adafactor_step_size,
    factored_second_moment,
    rms_clip,
)
from adaptim.functional.adagrad import (
    adagrad_direction_foreach,
    adagrad_direction_single,
    adagrad_foreach,
    adagrad_norm_step,
    adagrad_norm_step_size,
    adagrad_single,
    full_matrix_adagrad_direction,
    full_matrix_adagrad_single,
)
from adaptim.functional.adam import (
    adam_direction_foreach,
    adam_direction_single,
    adam_foreach,
    adam_single,
    bias_corrections,
)
from adaptim.functional.adam_nmf import adam_nmf_batched, adam_nmf_directions, adam_nmf_single, floored_square
from adaptim.functional.muon import adjust_lr_ratio, muon_batched, muon_directions, muon_momentum_, muon_single
from adaptim.functional.rmsprop import (
    rmsprop_direction_foreach,
    rmsprop_direction_single,
    rmsprop_foreach,
    rmsprop_single,
)
from adaptim.functional.sgd import lookahead_point, sgd_direction_foreach, sgd_direction_single, sgd_foreach, sgd_single
from adaptim.functional.shampoo import (
    ShampooPreconditioner,
    block_slices,
    idealized_shampoo_batched,
    idealized_shampoo_directions,
    idealized_shampoo_single,
    init_shampoo_state,
    mode_gram,
    mode_product,
    shampoo_batched,
    shampoo_directions,
    shampoo_exponent,
    shampoo_single,
)
from adaptim.functional.steepest import steepest_batched, steepest_directions, steepest_single

__all__ = [
    "sgd_single",
    "sgd_foreach",
    "adagrad_single",
    "adagrad_foreach",
    "adagrad_norm_step",
    "full_matrix_adagrad_single",
    "rmsprop_single",
    "rmsprop_foreach",
    "adam_single",
    "adam_foreach",
    "bias_corrections",
    "muon_single",
    "muon_batched",
    "muon_momentum_",
    "muon_directions",
    "steepest_single",
    "steepest_batched",
    "steepest_directions",
    "adjust_lr_ratio",
    "shampoo_single",
    "shampoo_batched",
    "shampoo_directions",
    "idealized_shampoo_single",
    "idealized_shampoo_batched",
    "idealized_shampoo_directions",
    "ShampooPreconditioner",
    "init_shampoo_state",
    "block_slices",
    "shampoo_exponent",
    "mode_gram",
    "mode_product",
    "adafactor_single",
    "adafactor_batched",
    "adafactor_step_size",
    "adafactor_beta2",
    "adafactor_directions",
    "adafactor_last_stage",
    "factored_second_moment",
    "rms_clip",
    "adam_nmf_single",
    "adam_nmf_batched",
    "adam_nmf_directions",
    "floored_square",
]
# the direction of each elementwise rule, for callers that supply their own last stage
__all__ += [
    "sgd_direction_single",
    "sgd_direction_foreach",
    "lookahead_point",
    "adagrad_direction_single",
    "adagrad_direction_foreach",
    "adagrad_norm_step_size",
    "full_matrix_adagrad_direction",
    "rmsprop_direction_single",
    "rmsprop_direction_foreach",
    "adam_direction_single",
    "adam_direction_foreach",
]
