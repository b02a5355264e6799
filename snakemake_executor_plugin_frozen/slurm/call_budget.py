"""How often a run may ask SLURM about its jobs: every status call (sacct, squeue) waits for
its turn, so that a run makes at most ``per_minute`` calls a minute and never two within
``MIN_GAP`` seconds, however many jobs end at once. The controller and its database are
shared by every user of the cluster (Snakemake-Profiles/slurm#74, snakemake#2167); the run
learns of a job's end from the job's own end hint, not from asking sooner."""

import asyncio
import time
from collections.abc import Awaitable, Callable

# Seconds: two status calls are never closer than this, whatever the per-minute budget.
MIN_GAP = 3.0
DEFAULT_PER_MINUTE = 10.0


class CallBudget:
    def __init__(
        self,
        per_minute: float = DEFAULT_PER_MINUTE,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if per_minute <= 0:
            raise ValueError(f"status calls per minute must be > 0, got {per_minute}")
        # Evenly spaced calls keep both bounds at every moment, not only on average.
        self.spacing = max(MIN_GAP, 60.0 / per_minute)
        self.calls = 0
        self._clock = clock
        self._sleep = sleep
        self._last: float | None = None

    def wait_seconds(self) -> float:
        """How long the next call would wait now."""
        if self._last is None:
            return 0.0
        return max(0.0, self._last + self.spacing - self._clock())

    def note_call(self) -> None:
        """A call made without waiting for a turn, before the run's first status call (the
        cluster's configuration): it counts, and the next turn keeps its distance from it."""
        self._last = self._clock()
        self.calls += 1

    async def turn(self) -> None:
        """Wait for the next call's turn and take it."""
        delay = self.wait_seconds()
        if delay > 0:
            await self._sleep(delay)
        self._last = self._clock()
        self.calls += 1
