"""Linear algebra shared by adaptim's methods: PSD matrix powers (and, later, Newton-Schulz, Kronecker tools)."""

from adaptim.linalg.psd import psd_power

__all__ = ["psd_power"]
