"""User-facing errors.

Everything that a user can cause (a missing file, a corrupt PLY, a tensor of the wrong shape) raises a
:class:`LyraError` whose message is one line naming the problem and the fix. The CLI prints that line and
exits with code 2; library callers can catch it like any exception.
"""

from __future__ import annotations


class LyraError(Exception):
    """A problem with the user's input or setup, described in one line."""

    exit_code = 2


class InputError(LyraError, ValueError):
    """An input (file, tensor, argument) is missing, unreadable or of the wrong form."""
