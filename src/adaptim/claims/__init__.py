"""The notes' quantitative claims, each checked by the library's own optimizers and tools.

``adaptim reproduce [NAME ...] [--out DIR] [--quick] [--list]`` runs them; :func:`run_claims` does the same from
Python. Each claim lives in its own module here (``adaptim/claims/<name with underscores>.py``) and defines
``CLAIM`` (or ``CLAIMS``), a :class:`Claim` whose ``run(ctx)`` records checks on a :class:`Context` and may
return a matplotlib figure. ``docs/claims.md`` lists every claim with its section, statement, measured values
and figure.

A claim never re-implements the method it checks: it calls the public optimizers and functions users call, so a
failing claim means the library is wrong or the notes are.
"""

from adaptim.claims._core import (
    Check,
    Claim,
    ClaimResult,
    Context,
    all_claims,
    claims_markdown,
    get_claim,
    run_claims,
    write_claims,
)

__all__ = [
    "Check",
    "Claim",
    "ClaimResult",
    "Context",
    "all_claims",
    "claims_markdown",
    "get_claim",
    "run_claims",
    "write_claims",
]
