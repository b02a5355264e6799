"""Thin subprocess layer: ``sbatch``, status queries (``sacct``/``squeue``), ``scancel``.

Every command is an argv list (no shell). Transient controller errors are retried a few
times with a short back-off; everything else fails at once with SLURM's own message.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shlex
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from .call_budget import CallBudget
from .status import (
    SACCT_FORMAT,
    SQUEUE_FORMAT,
    JobState,
    Outcome,
    outcome,
    parse_sacct,
    parse_squeue,
)

_log = logging.getLogger(__name__)

# Ids per sacct/squeue/scancel call, keeping command lines far below ARG_MAX.
CHUNK_SIZE = 500
# What sbatch --parsable prints ("<id>" or "<id>;<cluster>"), and what some site wrappers
# print instead.
_BARE_JOB_ID_RE = re.compile(r"^(\d+)(?:;\S+)?$")
_SUBMITTED_RE = re.compile(r"Submitted batch job (\d+)")

# Lower-case fragments of messages from a controller or slurmdbd that is busy,
# restarting or briefly unreachable ("Socket timed out on send/recv operation", ...).
_TRANSIENT = (
    "timed out",
    "unable to contact slurm controller",
    "temporarily unable to accept job",
    "resource temporarily unavailable",
    "connection refused",
    "connection reset",
    "zero bytes were transmitted or received",
    "problem talking to the database",
)
# scancel complaints about jobs that are already gone: nothing left to cancel.
_ALREADY_GONE = ("already completing or completed", "invalid job id specified")


class SlurmCommandError(RuntimeError):
    """A SLURM command failed."""


class SbatchError(SlurmCommandError):
    """``sbatch`` failed for one job; report it as that job's error."""


class StatusQueryError(SlurmCommandError):
    """No status source answered; keep the jobs and try again next cycle."""


@dataclass(frozen=True)
class _Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return f"{self.stdout}\n{self.stderr}".strip()


def is_transient(output: str) -> bool:
    """Whether a failed command's output points to a passing controller/database hiccup."""
    text = output.lower()
    return any(fragment in text for fragment in _TRANSIENT)


def sacct_usable(returncode: int, output: str) -> bool:
    """Whether sacct's answer can be used, or status must come from squeue instead.

    Without slurmdbd, sacct prints "Slurm accounting storage is disabled" and exits 1;
    a missing binary or a database that stays down after retries end up here too.
    """
    return returncode == 0 and "accounting storage is disabled" not in output.lower()


def _chunks(job_ids: Sequence[str]) -> Iterator[list[str]]:
    unique = list(dict.fromkeys(job_ids))
    for start in range(0, len(unique), CHUNK_SIZE):
        yield unique[start : start + CHUNK_SIZE]


def _should_retry(result: _Result, attempt: int, attempts: int) -> bool:
    return result.returncode != 0 and attempt < attempts and is_transient(result.output)


def _not_found(argv: Sequence[str]) -> _Result:
    return _Result(127, "", f"{argv[0]}: command not found (is SLURM installed and on PATH?)")


def _timed_out(argv: Sequence[str], timeout: float) -> _Result:
    # Worded to count as transient: a busy controller can stall any client.
    return _Result(-9, "", f"{argv[0]} timed out after {timeout:g} s")


def _run(argv: Sequence[str], timeout: float) -> _Result:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        return _not_found(argv)
    except subprocess.TimeoutExpired:
        return _timed_out(argv, timeout)
    return _Result(done.returncode, done.stdout, done.stderr)


async def _run_async(argv: Sequence[str], timeout: float) -> _Result:
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
    except FileNotFoundError:
        return _not_found(argv)
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return _timed_out(argv, timeout)
    assert proc.returncode is not None  # communicate() waited for the exit
    return _Result(
        proc.returncode, stdout.decode(errors="replace"), stderr.decode(errors="replace")
    )


def _run_retrying_sync(
    argv: Sequence[str], timeout: float, attempts: int, retry_delay: float
) -> tuple[_Result, int]:
    """Run, retrying transient controller errors; return the last result and its attempt."""
    attempts = max(attempts, 1)
    for attempt in range(1, attempts + 1):
        result = _run(argv, timeout)
        if not _should_retry(result, attempt, attempts):
            break
        _log.debug("%s attempt %d failed transiently: %s", argv[0], attempt, result.output)
        time.sleep(retry_delay * attempt)
    return result, attempt


@dataclass(frozen=True)
class Submission:
    """What tells one sbatch call's job apart: the run's job name and a token in its
    comment, so that after a failed call we can ask SLURM whether it made the job."""

    run_name: str
    token: str


def find_submitted(submission: Submission, timeout: float = 60.0) -> str | None:
    """The id of the job the submission created, None if the controller has none;
    raises ``SlurmCommandError`` if the controller does not answer."""
    argv = ["squeue", "-h", "-t", "all", f"--name={submission.run_name}", "-o", "%i|%k"]
    result = _run(argv, timeout)
    if result.returncode != 0:
        raise SlurmCommandError(f"{shlex.join(argv)}: {result.output}")
    for line in result.stdout.splitlines():
        job_id, _, comment = line.partition("|")
        if submission.token in comment.split():
            # A pending array shows as "123_[0-9]", a started task as "123_4".
            return job_id.strip().split("_", 1)[0]
    return None


def parse_sbatch_output(stdout: str) -> str:
    """Job id from ``sbatch --parsable`` output (``<id>`` or ``<id>;<cluster>``).

    Site wrappers sometimes add lines around it, so a single bare id line or a
    ``Submitted batch job <id>`` line is accepted too. Raises ``ValueError`` otherwise.
    """
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    bare = {m.group(1) for line in lines if (m := _BARE_JOB_ID_RE.match(line))}
    if len(bare) == 1:
        return bare.pop()
    submitted = set(_SUBMITTED_RE.findall(stdout))
    if not bare and len(submitted) == 1:
        return submitted.pop()
    raise ValueError(f"cannot find exactly one SLURM job id in the sbatch output: {stdout!r}")


def run_sbatch(
    argv: Sequence[str],
    submission: Submission | None = None,
    attempts: int = 3,
    timeout: float = 60.0,
    retry_delay: float = 2.0,
) -> str:
    """Submit with ``sbatch`` and return the job id; raise ``SbatchError`` on failure.

    Only transient errors are retried, and with ``submission`` only once SLURM said that
    the failed call made no job: "Socket timed out" is just when the controller may have
    created it, and a blind retry would leave a duplicate that nobody tracks or cancels.
    """
    call = shlex.join(argv)
    attempts = max(attempts, 1)
    for attempt in range(1, attempts + 1):
        result = _run(argv, timeout)
        if result.returncode == 0 or not is_transient(result.output):
            break
        _log.debug("sbatch attempt %d failed transiently: %s", attempt, result.output)
        time.sleep(retry_delay * attempt)
        if submission is not None:
            made = _made_by_failed_call(submission, attempts, timeout, retry_delay)
            if made is not None:
                return made
    if result.returncode != 0:
        # Only retried (transient) failures say how often they were tried.
        tries = f", {attempt} attempts" if attempt > 1 else ""
        raise SbatchError(
            f"sbatch failed (exit {result.returncode}{tries}): "
            f"{result.stderr.strip() or result.stdout.strip()}\n    sbatch call: {call}"
        )
    try:
        return parse_sbatch_output(result.stdout)
    except ValueError as e:
        raise SbatchError(
            f"sbatch succeeded but {e}; a job may have been submitted, check squeue."
            f"\n    sbatch call: {call}"
        ) from None


def _made_by_failed_call(
    submission: Submission, attempts: int, timeout: float, retry_delay: float
) -> str | None:
    """The job a failed sbatch call created, or None once the controller said there is
    none; raises ``SbatchError`` when it cannot tell (a retry might duplicate the job)."""
    for attempt in range(1, attempts + 1):
        try:
            return find_submitted(submission, timeout)
        except SlurmCommandError as e:
            if attempt == attempts:
                raise SbatchError(
                    "sbatch failed transiently and the controller could not be asked whether "
                    f"the job was created anyway ({e}); not retried, so as not to run it "
                    f"twice. Look for job comment token {submission.token} in "
                    f"'squeue --name={submission.run_name} -o %i,%k'."
                ) from None
            time.sleep(retry_delay * attempt)
    return None


async def _run_retrying(
    argv: Sequence[str],
    timeout: float,
    attempts: int,
    retry_delay: float,
    budget: CallBudget | None = None,
) -> _Result:
    """``budget``: each attempt waits for its turn (``CallBudget``)."""
    for attempt in range(1, max(attempts, 1) + 1):
        if budget is not None:
            await budget.turn()
        result = await _run_async(argv, timeout)
        if not _should_retry(result, attempt, attempts):
            break
        _log.debug("%s attempt %d failed transiently: %s", argv[0], attempt, result.output)
        await asyncio.sleep(retry_delay * attempt)
    return result


@dataclass(frozen=True)
class StatusAnswer:
    """What one round of status queries found out."""

    states: dict[str, JobState]
    # False when a source failed for some ids: their absence says nothing.
    complete: bool = True


@dataclass
class _Query:
    """One ``query_states`` round: the run's jobs by name, each source asked once."""

    run_name: str
    since: datetime
    clusters: bool
    timeout: float
    attempts: int
    retry_delay: float
    budget: CallBudget | None = None

    async def run(self, argv: list[str]) -> _Result:
        return await _run_retrying(argv, self.timeout, self.attempts, self.retry_delay, self.budget)

    @property
    def _cluster_args(self) -> list[str]:
        return ["--clusters=all"] if self.clusters else []

    async def sacct(self) -> dict[str, JobState]:
        argv = [
            "sacct",
            "-X",
            "--parsable2",
            "--noheader",
            *self._cluster_args,
            f"--name={self.run_name}",
            # Without a start time sacct shows only jobs of today: a run past midnight
            # would lose its jobs.
            f"--starttime={self.since.strftime('%Y-%m-%dT%H:%M:%S')}",
            f"--format={SACCT_FORMAT}",
        ]
        result = await self.run(argv)
        if not sacct_usable(result.returncode, result.output):
            raise StatusQueryError(f"{shlex.join(argv)}: {result.output}")
        return parse_sacct(result.stdout)

    async def squeue(self) -> dict[str, JobState]:
        argv = ["squeue", "-h", "-t", "all", *self._cluster_args]
        argv += [f"--name={self.run_name}", "-o", SQUEUE_FORMAT]
        result = await self.run(argv)
        if result.returncode != 0:
            raise StatusQueryError(f"{shlex.join(argv)}: {result.output}")
        return parse_squeue(result.stdout)

    async def by_ids(self, job_ids: Sequence[str], completion: bool = False) -> dict[str, JobState]:
        """sacct for these jobs by id: ``--name`` misses jobs that never became eligible
        (cancelled while pending) and new ones slurmdbd has not filed under the name yet.
        ``completion``: from the jobcomp log instead, which works without slurmdbd."""
        states: dict[str, JobState] = {}
        for chunk in _chunks(job_ids):
            if completion:
                argv = ["sacct", "-X", "-c", "--parsable2", "--noheader"]
                argv.append("--format=JobIdRaw,State,ExitCode")
            else:
                argv = ["sacct", "-X", "--parsable2", "--noheader", *self._cluster_args]
                argv.append(f"--format={SACCT_FORMAT}")
            argv += ["-j", ",".join(chunk)]
            result = await self.run(argv)
            if not sacct_usable(result.returncode, result.output):
                raise StatusQueryError(f"{shlex.join(argv)}: {result.output}")
            states.update(parse_sacct(result.stdout))
        return states


async def query_states(
    job_ids: Sequence[str],
    run_name: str,
    since: datetime,
    clusters: bool = False,
    *,
    timeout: float = 60.0,
    attempts: int = 3,
    retry_delay: float = 1.0,
    budget: CallBudget | None = None,
) -> StatusAnswer:
    """Current states of the given jobs of the run named ``run_name`` (its ``--job-name``),
    submitted after ``since``; jobs no source knows are left out of the answer.

    One ``sacct --name`` call answers for the whole run, whatever its size; ``squeue
    --name`` only for jobs sacct does not know yet (slurmdbd learns of new jobs late,
    pending array tasks not at all) or says are pending (why they wait). Without usable
    accounting squeue answers for all, and the jobcomp log for jobs squeue has already
    forgotten. Raises ``StatusQueryError`` if neither sacct nor squeue answered, so the
    caller does not take silence for missing jobs; a partial answer says so
    (``complete=False``). Each call waits for its turn in ``budget``.
    """
    ids = list(dict.fromkeys(job_ids))
    if not ids:
        return StatusAnswer({})
    query = _Query(run_name, since, clusters, timeout, attempts, retry_delay, budget)
    sacct_error: StatusQueryError | None = None
    try:
        states = await query.sacct()
    except StatusQueryError as e:
        _log.debug("sacct unusable, falling back to squeue: %s", e)
        sacct_error, states = e, {}
    complete = True
    # A pending job's reason is the controller's: slurmdbd may never learn it (sacct says
    # "None" where squeue says PartitionConfig), and the bound on hopeless jobs needs it.
    pending = [j for j in ids if j in states and states[j].base == "PENDING"]
    if pending or any(j not in states for j in ids):
        try:
            found = await query.squeue()
        except StatusQueryError as e:
            if sacct_error is not None:
                raise StatusQueryError(
                    f"no SLURM status source answered: {sacct_error}; {e}"
                ) from None
            _log.debug("squeue failed for jobs unknown to sacct: %s", e)
            complete = False
        else:
            # sacct's answer is final (exit codes); squeue's fills the gaps and tells what
            # a pending job waits for.
            states = {**found, **states, **{j: found[j] for j in pending if j in found}}
            ended = [
                j
                for j in ids
                if j in found
                and states[j] is found[j]
                and outcome(found[j].state) is not Outcome.RUNNING
            ]
            if sacct_error is None and ended:
                # Ended before sacct knew it by name: its exit code is worth one more call.
                try:
                    states.update(await query.by_ids(ended))
                except StatusQueryError as e:
                    _log.debug("sacct -j failed, keeping squeue's word: %s", e)
    missing = [j for j in ids if j not in states]
    if sacct_error is not None and missing:
        try:
            states.update(await query.by_ids(missing, completion=True))
        except StatusQueryError as e:
            _log.debug("sacct -c unusable: %s", e)
    return StatusAnswer(_per_job(ids, states), complete)


def _per_job(ids: Sequence[str], states: dict[str, JobState]) -> dict[str, JobState]:
    """The states of the asked ids. An array cancelled before any task started is one row
    of its own id ("123", no task): that state is each of its tasks'."""
    answer = {}
    for job_id in ids:
        state = states.get(job_id) or states.get(job_id.split("_", 1)[0] if "_" in job_id else "")
        if state is not None:
            answer[job_id] = state
    return answer


def max_array_size(timeout: float = 30.0) -> int | None:
    """The cluster's MaxArraySize (task indices stay below it), if scontrol tells."""
    result = _run(["scontrol", "show", "config"], timeout)
    match = re.search(r"^MaxArraySize\s*=\s*(\d+)", result.stdout, re.MULTILINE)
    return int(match.group(1)) if result.returncode == 0 and match else None


def scancel(
    job_ids: Sequence[str],
    clusters: bool = False,
    timeout: float = 60.0,
    attempts: int = 3,
    retry_delay: float = 1.0,
) -> None:
    """Cancel jobs; raise ``SlurmCommandError`` unless each one is cancelled or already gone.
    Transient controller errors are retried: a failed cancel leaves jobs running."""
    problems: list[str] = []
    for chunk in _chunks(job_ids):
        argv = ["scancel", *(["--clusters=all"] if clusters else []), *chunk]
        result, _ = _run_retrying_sync(argv, timeout, attempts, retry_delay)
        lines = [
            line
            for line in result.output.splitlines()
            if line.strip() and not any(gone in line.lower() for gone in _ALREADY_GONE)
        ]
        if result.returncode != 0 and (lines or not result.output):
            problems.append(f"{shlex.join(argv)} (exit {result.returncode}): " + "; ".join(lines))
    if problems:
        raise SlurmCommandError("scancel failed: " + " | ".join(problems))
