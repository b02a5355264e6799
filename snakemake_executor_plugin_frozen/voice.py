"""How the run's parts tell the user something: through the executor, which writes to
Snakemake's log with "frozen: " first (``Executor.say``/``Executor.warn``)."""

from typing import Protocol


class Voice(Protocol):
    def say(self, message: str) -> None: ...

    def warn(self, message: str) -> None: ...
