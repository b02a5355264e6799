"""The one error type of the record commands."""

from __future__ import annotations


class RecordError(Exception):
    """A refusal: the message names the snapshot, file or setting at fault and what to do;
    ``exit_code`` is the command's exit status (2: bad input, as for a usage error)."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code
