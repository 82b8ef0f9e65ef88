"""The errors every layer raises for a mistake the user can fix (a value, a file, a setting).

It lives at the bottom of the package so that teachers, data and config checks can raise
it without depending on the command-line layer, which turns it into a one-paragraph
message and exit code 2 (:func:`magdi_lightning.cli.errors.user_errors`). It is a
``ValueError``, so code that already handles bad values handles it too.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RecordError", "UserError", "preview"]

#: Characters of a value quoted in an error message.
_PREVIEW_CHARS = 40


class UserError(ValueError):
    """A problem in the user's input, config or environment, with a message saying how to fix it."""


class RecordError(UserError):
    """A record of an input file (a graph, a question, a prediction) that is not valid,
    located by file, line and field so the user can find and fix it."""

    def __init__(
        self, message: str, *, file: str | None = None, line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.reason = message
        self.file = file
        self.line = line
        self.field = field
        where = ":".join(str(part) for part in (file, line) if part is not None)
        prefix = f"{where}: " if where else ""
        at = f"field '{field}': " if field else ""
        super().__init__(f"{prefix}{at}{message}")

    def located(self, *, file: str | None = None, line: int | None = None) -> RecordError:
        """The same error with the file and line of the record filled in."""
        return RecordError(
            self.reason, file=self.file or file, line=self.line or line, field=self.field
        )


def preview(value: Any) -> str:
    """A short excerpt of a (possibly huge) value for error messages: strings quoted."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) > _PREVIEW_CHARS:
        text = text[:_PREVIEW_CHARS] + "…"
    return repr(text) if isinstance(value, str) else text
