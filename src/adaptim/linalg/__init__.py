"""Linear algebra shared by adaptim's methods: PSD matrix powers, Kronecker tools (Appendix G), matrix iterations
(Appendix Q),
Newton-Schulz orthogonalization (Q.3), norms, duals and steepest directions (Appendix M, (67)-(69)), NMF under
the I-divergence (Appendix L), matrix views of tensors of any order."""

from adaptim.linalg.iteration import (
    OnlineOrthogonalIteration,
    online_orthogonal_iteration_step,
    orthogonal_iteration,
    power_iteration,
)
from adaptim.linalg.kron import kron, nearest_kronecker_product, rearrange, unvec, vec
from adaptim.linalg.newton_schulz import (
    NS_COEFFICIENTS,
    NS_DTYPES,
    check_ns_bounded,
    newton_schulz,
    newton_schulz_coefficients,
    orthogonalize,
    resolve_ns_coefficients,
    resolve_ns_dtype,
)
from adaptim.linalg.nmf import idiv, nmf, nmf_step, rank1_nmf
from adaptim.linalg.norms import (
    DUAL_NORM,
    NORMS,
    dual_norm,
    elementwise_inf_norm,
    elementwise_l1_norm,
    frobenius_norm,
    matrix_norm,
    norm_subgradient,
    nuclear_norm,
    rms,
    spectral_norm,
    steepest_direction,
)
from adaptim.linalg.psd import psd_power
from adaptim.linalg.views import as_matrix, matrix_view_shape

__all__ = [
    "psd_power",
    "vec",
    "unvec",
    "kron",
    "rearrange",
    "nearest_kronecker_product",
    "power_iteration",
    "orthogonal_iteration",
    "online_orthogonal_iteration_step",
    "OnlineOrthogonalIteration",
    "newton_schulz",
    "newton_schulz_coefficients",
    "orthogonalize",
    "NS_COEFFICIENTS",
    "resolve_ns_coefficients",
    "NS_DTYPES",
    "resolve_ns_dtype",
    "check_ns_bounded",
    "rms",
    "frobenius_norm",
    "spectral_norm",
    "nuclear_norm",
    "elementwise_inf_norm",
    "elementwise_l1_norm",
    "matrix_norm",
    "dual_norm",
    "steepest_direction",
    "norm_subgradient",
    "NORMS",
    "DUAL_NORM",
    "idiv",
    "nmf_step",
    "nmf",
    "rank1_nmf",
    "matrix_view_shape",
    "as_matrix",
]
