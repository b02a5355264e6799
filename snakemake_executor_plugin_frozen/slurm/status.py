"""Interpret SLURM job states: parsing, outcome mapping, missing jobs, poll interval."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum


class Outcome(Enum):
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"


@dataclass(frozen=True)
class JobState:
    """One job's state as printed by SLURM, e.g. ``CANCELLED by 0`` and exit ``0:0``."""

    state: str
    exit_code: str | None = None  # "<code>:<signal>"; squeue does not report it
    nodes: str = ""  # where it ran (a hostlist), if SLURM said
    reason: str = ""  # why it pends, if SLURM said

    @property
    def base(self) -> str:
        # sacct appends the uid to CANCELLED ("CANCELLED by 0").
        words = self.state.split()
        return words[0].upper() if words else "UNKNOWN"


_SUCCESS_STATES = frozenset({"COMPLETED"})
_FAILED_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "TIMEOUT",
        "ERROR",
        "REVOKED",
        "SPECIAL_EXIT",
        "PREEMPTED",
    }
)
# With requeue, SLURM puts these jobs back in the queue itself.
_REQUEUED_BY_SLURM = frozenset({"NODE_FAIL", "PREEMPTED"})
# Every other state squeue/sacct can print for a job that may still end on its own.
_RUNNING_STATES = frozenset(
    {
        "PENDING",
        "RUNNING",
        "CONFIGURING",
        "COMPLETING",
        "REQUEUED",
        "REQUEUE_FED",
        "REQUEUE_HOLD",
        "RESIZING",
        "SUSPENDED",
        "STOPPED",
        "SIGNALING",
        "STAGE_OUT",
        "RESV_DEL_HOLD",
        "POWER_UP_NODE",
        "LAUNCH_FAILED",
        "UPDATE_DB",
    }
)
_KNOWN_STATES = _SUCCESS_STATES | _FAILED_STATES | _RUNNING_STATES

_HINTS = {
    "TIMEOUT": "it hit its time limit; raise the 'runtime' resource (minutes)",
    "OUT_OF_MEMORY": "it ran out of memory; raise the 'mem_mb' or 'mem_mb_per_cpu' resource",
    "CANCELLED": "it was cancelled (scancel or an administrator)",
    "NODE_FAIL": "its node failed (excluded from later submissions of this run); consider "
    "--frozen-requeue",
    "PREEMPTED": "a job of higher priority took its place; consider --frozen-requeue",
    "BOOT_FAIL": "its node failed to boot",
    "DEADLINE": "it missed its deadline",
}


# A pending job array is one row, "123_[2-20%4]" or "123_[1,3-5]"; tasks are "123_7".
_ARRAY_RANGE_RE = re.compile(r"^(\d+)_\[([0-9,\-]+)(?:%\d+)?\]$")
_NOT_SET = {"", "None", "(null)", "None assigned"}


def job_ids_of(field: str) -> list[str]:
    """The job ids one row stands for: itself, or each task of a pending array range."""
    match = _ARRAY_RANGE_RE.match(field)
    if match is None:
        return [field]
    array, ranges = match.groups()
    ids = []
    for part in ranges.split(","):
        first, _, last = part.partition("-")
        if first:
            ids += [f"{array}_{task}" for task in range(int(first), int(last or first) + 1)]
    return ids


def _value(fields: list[str], index: int) -> str:
    value = fields[index].strip() if len(fields) > index else ""
    return "" if value in _NOT_SET else value


def _parse_rows(stdout: str, exit_codes: bool) -> dict[str, JobState]:
    states: dict[str, JobState] = {}
    for line in stdout.splitlines():
        fields = line.strip().split("|")
        # Skips blank lines, squeue's "CLUSTER: x" headers (with -M) and job steps
        # ("123.batch", "123.0") should a caller drop -X.
        if len(fields) < 2 or not fields[0] or "." in fields[0]:
            continue
        rest = fields[2:] if exit_codes else ["", *fields[2:]]
        state = JobState(
            fields[1].strip(),
            exit_code=_value(rest, 0) or None,
            nodes=_value(rest, 1),
            reason=_value(rest, 2),
        )
        # A later row wins: sacct lists a requeued job's newest record last.
        for job_id in job_ids_of(fields[0].strip()):
            states[job_id] = state
    return states


SACCT_FORMAT = "JobID,State,ExitCode,NodeList,Reason"
SQUEUE_FORMAT = "%i|%T|%N|%r"


def parse_sacct(stdout: str) -> dict[str, JobState]:
    """Parse ``sacct -X --parsable2 --noheader --format=`` ``SACCT_FORMAT`` (trailing
    columns may be absent)."""
    return _parse_rows(stdout, exit_codes=True)


def parse_squeue(stdout: str) -> dict[str, JobState]:
    """Parse ``squeue -h -t all -o`` ``SQUEUE_FORMAT`` (no exit codes)."""
    return _parse_rows(stdout, exit_codes=False)


def outcome(state: str, requeue: bool = False) -> Outcome:
    """Map a SLURM state to an outcome; matched on the first word (``CANCELLED by 0``).

    ``UNKNOWN`` and unrecognised states count as RUNNING, never as success: a premature
    success would let Snakemake accept outputs the job may still be writing. Such jobs
    stay "unaccounted for" in ``MissingJobs`` and fail after its grace period.
    With ``requeue`` SLURM requeues NODE_FAIL and PREEMPTED jobs itself, so they keep
    running; ``StuckJobs`` bounds how long one may stay so.
    """
    base = JobState(state).base
    if base in _SUCCESS_STATES:
        return Outcome.SUCCESS
    if base in _FAILED_STATES and not (requeue and base in _REQUEUED_BY_SLURM):
        return Outcome.FAILED
    return Outcome.RUNNING


# Pending reasons that no amount of waiting resolves: the job asks for more than any node
# or the partition gives, or names what does not exist.
HOPELESS_PENDING_REASONS = frozenset(
    {
        "PartitionConfig",
        "PartitionNodeLimit",
        "PartitionTimeLimit",
        "BadConstraints",
        "InvalidAccount",
        "InvalidQOS",
        "DependencyNeverSatisfied",
        "QOSMaxCpuPerJobLimit",
        "QOSMaxMemoryPerJob",
        "QOSMaxWallDurationPerJobLimit",
        "QOSMaxGRESPerJob",
        "QOSMaxNodePerJobLimit",
    }
)
# Between states: the job neither runs its script nor has ended, and gets no further
# without outside help (a node back from failure, a requeue that did not happen).
_LIMBO_STATES = frozenset({"COMPLETING", "LAUNCH_FAILED", "STAGE_OUT", *_REQUEUED_BY_SLURM})


def stuck_in(state: JobState, requeue: bool = False) -> str | None:
    """What the job waits for if it may wait forever (else None), e.g. ``PENDING
    (PartitionConfig)``."""
    if state.base == "PENDING" and state.reason in HOPELESS_PENDING_REASONS:
        return f"PENDING ({state.reason})"
    if state.base in _LIMBO_STATES and outcome(state.state, requeue) is Outcome.RUNNING:
        return state.base
    return None


def failure_message(job_id: str, state: JobState) -> str:
    """E.g. ``SLURM job 123 ended TIMEOUT (exit 0:0): it hit its time limit; ...``."""
    message = f"SLURM job {job_id} ended {state.state}"
    if state.exit_code:
        message += f" (exit {state.exit_code})"
    if hint := _HINTS.get(state.base):
        message += f": {hint}"
    return message


class MissingJobs:
    """Track jobs without a definite state: absent from every query, or UNKNOWN.

    A job can be invisible for a while: sacct learns of new jobs up to ~30 s late, and
    squeue forgets finished jobs after MinJobAge. Only when that lasts longer than
    ``grace_seconds`` is it reported, so the caller can fail the job instead of waiting
    forever. Call ``update`` only after a query that succeeded.
    """

    def __init__(
        self, grace_seconds: float = 600.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._grace = grace_seconds
        self._clock = clock
        self._since: dict[str, float] = {}

    def update(self, job_ids: Iterable[str], states: Mapping[str, JobState]) -> dict[str, str]:
        """Record one status query; return ``{job_id: error message}`` for overdue jobs."""
        now = self._clock()
        active = set(job_ids)
        # Jobs no longer asked about are done (or given up) and need no tracking.
        self._since = {j: t for j, t in self._since.items() if j in active}
        overdue: dict[str, str] = {}
        for job_id in active:
            state = states.get(job_id)
            if state is not None and state.base in _KNOWN_STATES:
                self._since.pop(job_id, None)
                continue
            since = self._since.setdefault(job_id, now)
            if now - since > self._grace:
                overdue[job_id] = self._message(job_id, state, now - since)
        return overdue

    @staticmethod
    def _message(job_id: str, state: JobState | None, seconds: float) -> str:
        minutes = f"{seconds / 60:.1f} minutes"
        if state is None:
            return (
                f"SLURM job {job_id} has not been visible in sacct or squeue for {minutes}: "
                "it may have been purged (MinJobAge) without job accounting, or accounting "
                f"lags badly. Check 'sacct -j {job_id}' and the job's SLURM log."
            )
        return (
            f"SLURM job {job_id} has reported the state {state.state!r} for {minutes}; it "
            f"tells neither that the job runs nor how it ended. Check 'sacct -j {job_id}'."
        )


class StuckJobs:
    """Bound the time a job may stay in a state that may never end (``stuck_in``).

    A pending job whose reason is hopeless, a job left COMPLETING by an unresponsive
    node, or a preempted job that SLURM did not requeue would keep a workflow waiting
    forever. After ``bound_seconds`` in the same such state the caller ends it as an
    error (and cancels it). A change of state or reason starts the clock again.
    """

    def __init__(
        self,
        bound_seconds: float = 600.0,
        requeue: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._bound = bound_seconds
        self._requeue = requeue
        self._clock = clock
        self._since: dict[str, tuple[str, float]] = {}

    def update(self, states: Mapping[str, JobState]) -> dict[str, str]:
        """Record the states of one query; return ``{job_id: message}`` for overdue jobs."""
        now = self._clock()
        overdue: dict[str, str] = {}
        since: dict[str, tuple[str, float]] = {}
        for job_id, state in states.items():
            what = stuck_in(state, self._requeue)
            if what is None:
                continue
            previous = self._since.get(job_id)
            start = previous[1] if previous and previous[0] == what else now
            since[job_id] = (what, start)
            if now - start > self._bound:
                overdue[job_id] = (
                    f"SLURM job {job_id} has been {what} for {(now - start) / 60:.1f} "
                    f"minutes, a state it may never leave on its own; frozen cancelled it "
                    f"(the bound is --frozen-stuck-minutes). Check 'scontrol show job {job_id}'"
                    " and the job's resources."
                )
        self._since = since
        return overdue


class PollInterval:
    """Seconds to wait between status queries.

    Starts short so quick jobs are noticed quickly, grows by ``factor`` while nothing
    finishes, and resets once something does. The cap stays below SLURM's default
    MinJobAge (300 s) so a squeue-only setup still sees finished jobs.
    """

    def __init__(self, initial: float = 2.0, factor: float = 1.5, maximum: float = 60.0) -> None:
        if initial <= 0 or factor < 1 or maximum < initial:
            raise ValueError(
                "poll interval needs initial > 0, factor >= 1 and maximum >= initial, got "
                f"initial={initial}, factor={factor}, maximum={maximum}"
            )
        self._initial = initial
        self._factor = factor
        self._maximum = maximum
        self.current = initial

    def next(self, finished: bool) -> float:
        """Update after a poll cycle and return the seconds until the next one."""
        if finished:
            self.current = self._initial
        else:
            self.current = min(self.current * self._factor, self._maximum)
        return self.current
