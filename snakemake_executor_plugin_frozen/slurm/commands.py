"""Thin subprocess layer: ``sbatch``, status queries (``sacct``/``squeue``), ``scancel``.

Every command is an argv list (no shell). Transient controller errors are retried a few
times with a short back-off; everything else fails at once with SLURM's own message.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from .status import JobState, parse_sacct, parse_squeue
from .submit import parse_sbatch_output

_log = logging.getLogger(__name__)

# Ids per sacct/squeue/scancel call, keeping command lines far below ARG_MAX.
CHUNK_SIZE = 500

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


def run_sbatch(
    argv: Sequence[str], attempts: int = 3, timeout: float = 60.0, retry_delay: float = 2.0
) -> str:
    """Submit with ``sbatch`` and return the job id; raise ``SbatchError`` on failure.

    Only transient errors are retried. A timed-out call may still have created the job
    (SLURM gives no way to tell), so a retry can in rare cases leave a duplicate job.
    """
    result, attempt = _run_retrying_sync(argv, timeout, attempts, retry_delay)
    call = shlex.join(argv)
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


async def _run_retrying(
    argv: Sequence[str], timeout: float, attempts: int, retry_delay: float
) -> _Result:
    for attempt in range(1, max(attempts, 1) + 1):
        result = await _run_async(argv, timeout)
        if not _should_retry(result, attempt, attempts):
            break
        _log.debug("%s attempt %d failed transiently: %s", argv[0], attempt, result.output)
        await asyncio.sleep(retry_delay * attempt)
    return result


@dataclass(frozen=True)
class _Query:
    """Settings shared by the commands of one ``query_states`` call."""

    clusters: bool
    timeout: float
    attempts: int
    retry_delay: float

    async def run(self, argv: list[str]) -> _Result:
        return await _run_retrying(argv, self.timeout, self.attempts, self.retry_delay)

    async def sacct(self, job_ids: Sequence[str], completion: bool = False) -> dict[str, JobState]:
        states: dict[str, JobState] = {}
        for chunk in _chunks(job_ids):
            argv = ["sacct", "-X", "--parsable2", "--noheader"]
            if completion:
                # Reads the jobcomp log, which works without slurmdbd (SLURM 22.05).
                argv.append("-c")
            elif self.clusters:
                argv.append("--clusters=all")
            argv += ["--format=JobIdRaw,State,ExitCode", "-j", ",".join(chunk)]
            result = await self.run(argv)
            if not sacct_usable(result.returncode, result.output):
                raise StatusQueryError(f"{shlex.join(argv)}: {result.output}")
            states.update(parse_sacct(result.stdout))
        return states

    async def squeue(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        states: dict[str, JobState] = {}
        for chunk in _chunks(job_ids):
            states.update(await self._squeue_chunk(chunk))
        return states

    async def _squeue_chunk(self, chunk: list[str]) -> dict[str, JobState]:
        argv = ["squeue", "-h", "-t", "all", "-o", "%i|%T", "-j", ",".join(chunk)]
        if self.clusters:
            argv.append("--clusters=all")
        result = await self.run(argv)
        if result.returncode == 0:
            return parse_squeue(result.stdout)
        if "invalid job id specified" not in result.output.lower():
            raise StatusQueryError(f"{shlex.join(argv)}: {result.output}")
        if len(chunk) == 1:
            return {}  # purged after MinJobAge
        # One purged id can fail the whole call: ask for each id on its own.
        states: dict[str, JobState] = {}
        for job_id in chunk:
            states.update(await self._squeue_chunk([job_id]))
        return states


async def query_states(
    job_ids: Sequence[str],
    clusters: bool = False,
    *,
    timeout: float = 60.0,
    attempts: int = 3,
    retry_delay: float = 1.0,
) -> dict[str, JobState]:
    """Current states of the given jobs, by id; jobs no source knows are left out.

    sacct is asked first; ids it does not (yet) know are looked up in squeue. Without
    usable accounting, squeue answers for all ids and ``sacct -c`` (the jobcomp log)
    for jobs squeue has already forgotten. Raises ``StatusQueryError`` if neither sacct
    nor squeue answered, so the caller does not take silence for missing jobs.
    """
    query = _Query(clusters, timeout, attempts, retry_delay)
    ids = list(dict.fromkeys(job_ids))
    if not ids:
        return {}
    sacct_error: StatusQueryError | None = None
    try:
        states = await query.sacct(ids)
    except StatusQueryError as e:
        _log.debug("sacct unusable, falling back to squeue: %s", e)
        sacct_error, states = e, {}
    missing = [j for j in ids if j not in states]
    if missing:
        try:
            states.update(await query.squeue(missing))
        except StatusQueryError as e:
            if sacct_error is not None:
                raise StatusQueryError(
                    f"no SLURM status source answered: {sacct_error}; {e}"
                ) from None
            _log.debug("squeue failed for jobs unknown to sacct: %s", e)
    missing = [j for j in ids if j not in states]
    if sacct_error is not None and missing:
        try:
            states.update(await query.sacct(missing, completion=True))
        except StatusQueryError as e:
            _log.debug("sacct -c unusable: %s", e)
    return states


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
