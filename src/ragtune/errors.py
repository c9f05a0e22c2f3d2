"""Errors that reach the user as one clear line.

Every stage raises :class:`RagtuneError` (or a subclass) for problems the user can fix: bad input
files, unknown choices, models that cannot be found. The CLI prints ``error: <message>`` and exits
with code 1 for these; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class RagtuneError(Exception):
    """A problem with the user's input, files or environment, explained in the message."""


class DataError(RagtuneError):
    """Bad training or evaluation data; the message names the file, line and field."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = ""
        if path is not None:
            where = str(path)
            if line is not None:
                where += f":{line}"
            where += ": "
        text = where + message
        if field is not None:
            text += f" (field {field!r})"
        if hint:
            text += f"; hint: {hint}"
        super().__init__(text)
        self.path = path
        self.line = line
        self.field = field
        self.hint = hint


class ModelNotFoundError(RagtuneError):
    """A model id or path that cannot be resolved to weights on disk."""
