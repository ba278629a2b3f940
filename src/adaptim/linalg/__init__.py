"""Linear algebra shared by adaptim's methods: PSD matrix powers, Kronecker tools (Appendix G), matrix iterations
(Appendix Q)."""

from adaptim.linalg.iteration import (OnlineOrthogonalIteration, online_orthogonal_iteration_step,
                                      orthogonal_iteration, power_iteration)
from adaptim.linalg.kron import kron, nearest_kronecker_product, rearrange, unvec, vec
from adaptim.linalg.psd import psd_power

__all__ = ["psd_power", "vec", "unvec", "kron", "rearrange", "nearest_kronecker_product", "power_iteration",
           "orthogonal_iteration", "online_orthogonal_iteration_step", "OnlineOrthogonalIteration"]
