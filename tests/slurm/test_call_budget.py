"""The run's status calls wait for their turn (slurm/call_budget.py): evenly spaced, at most
``per_minute`` a minute and never two within MIN_GAP seconds."""

import asyncio
import itertools

import pytest
from helpers.cluster import Clock

from snakemake_executor_plugin_frozen.slurm.call_budget import MIN_GAP, CallBudget


def budget(per_minute: float, clock: Clock) -> CallBudget:
    async def sleep(seconds: float) -> None:
        clock.now += seconds

    return CallBudget(per_minute, clock=clock, sleep=sleep)


@pytest.mark.parametrize("per_minute, spacing", [(10, 6.0), (60, MIN_GAP), (1, 60.0)])
def test_calls_are_evenly_spaced(per_minute: float, spacing: float) -> None:
    clock = Clock()
    b = budget(per_minute, clock)
    times = []

    async def calls() -> None:
        for _ in range(5):
            await b.turn()
            times.append(clock.now)
            clock.now += 0.5  # the call itself

    asyncio.run(calls())
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert gaps == [spacing] * 4 and b.calls == 5
    assert min(gaps) >= MIN_GAP and len(times) / ((times[-1] - times[0] + spacing) / 60) <= (
        per_minute
    )


def test_a_call_after_a_pause_does_not_wait() -> None:
    clock = Clock()
    b = budget(10, clock)
    asyncio.run(b.turn())
    assert b.wait_seconds() == 6.0
    clock.now += 100
    assert b.wait_seconds() == 0.0


def test_a_budget_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="must be > 0"):
        CallBudget(0)


def test_a_call_made_outside_the_turns_keeps_the_next_one_away() -> None:
    """The cluster's configuration (scontrol), asked before the first status call, counts
    as one: the first sacct comes a full spacing after it."""
    clock = Clock()
    b = budget(10, clock)
    b.note_call()
    noted = clock.now
    clock.now += 1.0
    asyncio.run(b.turn())
    assert clock.now - noted == 6.0 and b.calls == 2
