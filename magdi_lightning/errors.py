"""The error every layer raises for a mistake the user can fix (a value, a file, a setting).

It lives at the bottom of the package so that teachers, data and config checks can raise
it without depending on the command-line layer, which turns it into a one-paragraph
message and exit code 2 (:func:`magdi_lightning.cli.errors.user_errors`). It is a
``ValueError``, so code that already handles bad values handles it too.
"""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(ValueError):
    """A problem in the user's input, config or environment, with a message saying how to fix it."""
