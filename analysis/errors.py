"""Errors a kernel raises on purpose when a region's data cannot support its test.

A wrapper that runs a kernel per region (``digit_tests``, ``turnout_tests``, ``turnout_models``,
``mebane_table``) catches these, and only these: the region stays in its table as a row with
the reason in its ``note``. Anything else (a wrong column, a wrong parameter, a bug) is the
caller's error and propagates; a broad ``except Exception`` there turned such errors into NaN rows
that silently left their test family (issue 17, point 5).
"""

from __future__ import annotations

__all__ = ["InsufficientData", "convergence_note"]


class InsufficientData(ValueError):
    """A region's data cannot support the test: too few usable units, or a degenerate sample.

    A ``ValueError`` so that callers catching ``ValueError`` keep working.
    """


def convergence_note(what: str, message: str) -> str:
    """The note a result or table row carries when an optimiser did not report success."""
    return f"{what} did not converge ({message or 'no message'}); its estimates are not reliable"
