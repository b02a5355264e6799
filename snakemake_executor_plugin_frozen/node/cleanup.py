"""What earlier jobs left behind on this node, removed by a later job's `enter`.

What a job killed by SIGKILL, or one on a crashed node, leaves behind (it never runs
`leave`), and kept copies nobody uses any more, are removed by a later job's `enter` on
that node: all entries of one snapshot together, under its lock if nobody holds it, once
none of them changed for `--stale-after` seconds (taking or releasing a lease changes the
leases folder) and no running job holds a lease. A lease of a process of this host and pid
namespace is held while that process lives, or while SLURM says its job runs; any other
(another node's on a shared scratch, another pid namespace's, a multi-node job's) only
counts as unheld when SLURM says its job does not run. SLURM is asked once (squeue), about
these jobs and this one: an answer that does not list this job is no answer, and without
one nothing that depends on it is removed. A copy that a live process still runs from
(its FROZEN_COPY names it: an orphan of a killed batch shell) is kept too. Only names that
are ours are touched, through the folder's fd, never following a link; a copy is made
writable (by fd) only to remove it. The work is bounded (the oldest few snapshots, about
a second) and its errors are logged, never the job's.
"""

import errno
import fcntl
import math
import os
import re
import stat
import sys
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from snakemake_executor_plugin_frozen.dirfd import READ, discard, is_at, remove_tree
from snakemake_executor_plugin_frozen.node import contract
from snakemake_executor_plugin_frozen.node.copy import remove_copy
from snakemake_executor_plugin_frozen.node.leases import (
    lease_is_stale,
    lease_job_id,
    open_leases,
    pid_namespace,
    read_holder,
)

_CLEANUP_SECONDS = 1.0  # no removal is started after this: the job is waiting
_CLEANUP_SNAPSHOTS = 8  # the oldest this many snapshots' entries are looked at, per job
_SQUEUE_SECONDS = 2.0
# Entries of the per-user folder that are ours, by snapshot id: the copy, its seal, lock and
# leases, and the temporary names of extract_at (`.<id>.<12 hex>.tmp`), copy._write_atomic
# (`.<id>.seal.<12 hex>.tmp`) and discard (`.<id>.deleting.<12 hex>`, also of `<id>.leases`).
_OURS = re.compile(r"(?P<id>[0-9a-f]{8,64})(?:\.seal|\.lock|\.leases)?")
_DEBRIS = re.compile(
    r"\.(?P<id>[0-9a-f]{8,64})(?:\.seal|\.leases)?\.(?:[0-9a-f]{12}\.tmp|deleting\.[0-9a-f]{12})"
)


def snapshot_of(name: str) -> str | None:
    """The snapshot id an entry of the per-user folder belongs to, None if it is not ours."""
    match = _OURS.fullmatch(name) or _DEBRIS.fullmatch(name)
    return match["id"] if match else None


def clean_stale(
    base: int, folder: Path, current: str, stale_after: float, host: str, own_job: str
) -> None:
    """Remove what earlier jobs left of other snapshots than `current` in the per-user
    folder (a job killed by SIGKILL or on a crashed node never runs `leave`; a kept copy
    nobody uses any more): a snapshot's entries go together, once none of them changed for
    `stale_after` seconds and no running job holds them (`Holders`), under its lock if
    nobody holds it. SLURM is asked once (`own_job`: this job's id, "" outside SLURM).
    Bounded, and never fails the job: errors are logged and ignored."""
    if math.isinf(stale_after):
        return
    started = time.monotonic()
    try:
        old = _old_snapshots(base, current, stale_after)
        if not old:
            return
        holders = Holders(
            host,
            pid_namespace(),
            slurm_job_states(_job_ids(base, old), own_job),
            copies_in_use(folder),
        )
        for snapshot_id in old:
            if time.monotonic() - started > _CLEANUP_SECONDS:
                return
            try:
                removed = _remove_if_stale(base, snapshot_id, stale_after, holders)
            except OSError as e:
                print(
                    f"frozen: could not remove what earlier jobs left of snapshot {snapshot_id} "
                    f"in {folder}: {e}; ignored",
                    file=sys.stderr,
                )
                continue
            if removed:
                names, idle = removed
                print(
                    f"frozen: removed what earlier jobs left of snapshot {snapshot_id} in "
                    f"{folder} ({', '.join(names)}): unused for {_duration(idle)} and held by "
                    "no running job",
                    file=sys.stderr,
                )
    except Exception as e:  # whatever went wrong, this job's own snapshot is ready
        print(f"frozen: could not clean up old entries in {folder}: {e}; ignored", file=sys.stderr)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


@dataclass(frozen=True)
class Holders:
    """What tells whether running jobs still hold a snapshot's entries on this node."""

    host: str
    namespace: str  # this process's pid namespace
    jobs: Mapping[str, str] | None  # squeue states by job id; None: SLURM gave no answer
    in_use: frozenset[str]  # the copies that live processes run from

    def hold(self, snapshot_id: str, leases: Sequence[tuple[str, str]]) -> bool:
        if snapshot_id in self.in_use:
            return True
        return not all(
            lease_is_stale(name, record, self.host, self.namespace, self.jobs)
            for name, record in leases
        )


def copies_in_use(folder: Path) -> frozenset[str]:
    """The snapshot ids of the copies in `folder` that live processes (those whose
    environment this user can read) run from: every process of a job inherits its
    FROZEN_COPY, and some may outlive the job's shell (SLURM's proctrack/linuxproc leaves
    running what a killed batch shell started)."""
    prefix = f"{contract.FROZEN_COPY}={folder}/".encode()
    found = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read()
        except OSError:  # gone, or another user's
            continue
        found.update(
            entry[len(prefix) :].decode(errors="replace")
            for entry in environ.split(b"\0")
            if entry.startswith(prefix)
        )
    return frozenset(found)


def _old_snapshots(base: int, current: str, stale_after: float) -> list[str]:
    """The snapshots (not `current`) whose entries all are older than `stale_after`
    seconds, the oldest first, at most _CLEANUP_SNAPSHOTS."""
    entries: dict[str, list[str]] = {}
    for name in os.listdir(base):
        snapshot_id = snapshot_of(name)
        if snapshot_id and snapshot_id != current:
            entries.setdefault(snapshot_id, []).append(name)
    now = time.time()
    last_changes = ((_last_change(base, names), i) for i, names in entries.items())
    old = sorted((t, i) for t, i in last_changes if t is not None and now - t >= stale_after)
    return [snapshot_id for _, snapshot_id in old[:_CLEANUP_SNAPSHOTS]]


def _last_change(folder: int, names: Sequence[str]) -> float | None:
    """The newest mtime of these entries (their own: links are not followed); every lease
    taken or released changes its leases folder's. None when none of them is left."""
    times = []
    for name in names:
        with suppress(FileNotFoundError):
            times.append(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mtime)
    return max(times, default=None)


def _job_ids(base: int, snapshot_ids: Sequence[str]) -> set[str]:
    """The SLURM job ids of the snapshots' leases (a snapshot whose leases cannot be read
    is left to _remove_if_stale, which says why)."""
    found = set()
    for snapshot_id in snapshot_ids:
        with suppress(OSError):
            found.update(lease_job_id(*lease) for lease in _leases(base, snapshot_id))
    return found - {""}


def _leases(base: int, snapshot_id: str) -> list[tuple[str, str]]:
    """(name, holder record) of each lease of the snapshot."""
    try:
        leases = open_leases(base, snapshot_id, create=False)
    except OSError as e:
        if e.errno in (errno.ENOTDIR, errno.ELOOP):
            return []  # not a folder (a link, a file): no job could take a lease in it
        raise
    if leases is None:
        return []
    try:
        names = [name for name in os.listdir(leases) if not name.startswith(".")]
        return [(name, read_holder(leases, name)) for name in names]
    finally:
        os.close(leases)


def slurm_job_states(job_ids: set[str], own_job: str) -> dict[str, str] | None:
    """The squeue state of each of `job_ids` ("" for one it does not list), asking about
    this job too: an answer that does not list it (or no answer, or none outside SLURM)
    is no answer to go by, and gives None."""
    if not job_ids or not own_job:
        return None
    import subprocess  # here: most jobs never ask, and the node helper starts on every job

    asked = ",".join(sorted(job_ids | {own_job}))
    command = ["squeue", "--noheader", "--jobs", asked, "--format", "%A|%T"]
    try:
        listed = subprocess.run(
            command, capture_output=True, text=True, timeout=_SQUEUE_SECONDS, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    # %A is the job's own id, an array task's too (whose %i would be `<array>_<task>`).
    states = dict(line.strip().partition("|")[::2] for line in listed.splitlines())
    if own_job not in states:
        return None
    return {job_id: states.get(job_id, "") for job_id in job_ids}


def _remove_if_stale(
    base: int, snapshot_id: str, stale_after: float, holders: Holders
) -> tuple[list[str], float] | None:
    """Under the snapshot's lock, unless a job holds it: if its entries are still unused
    and unheld (checked again: a job may have come since), remove them and return their
    names and how long they were unused."""
    lock_name = f"{snapshot_id}.lock"
    lock_changed = _last_change(base, [lock_name])  # before taking it may make it
    lock = _lock_if_free(base, snapshot_id)
    if lock is None:
        return None
    try:
        names = sorted(n for n in os.listdir(base) if snapshot_of(n) == snapshot_id)
        changes = [_last_change(base, [n for n in names if n != lock_name]), lock_changed]
        last = max((t for t in changes if t is not None), default=None)
        if last is None:  # all gone meanwhile, but for the lock just made
            os.unlink(lock_name, dir_fd=base)
            return None
        idle = time.time() - last
        if idle < stale_after or holders.hold(snapshot_id, _leases(base, snapshot_id)):
            return None
        discard(base, f"{snapshot_id}.leases")  # with the job folders of its dead leases
        for name in names:
            if name.startswith("."):
                remove_tree(base, name)
        remove_copy(base, snapshot_id)
        return names, idle
    finally:
        os.close(lock)


def _lock_if_free(base: int, snapshot_id: str) -> int | None:
    """The snapshot's lock (an fd to close) if nobody holds it, else None (see locked)."""
    name = f"{snapshot_id}.lock"
    # O_NONBLOCK: a FIFO planted at the name must not hang the job.
    flags = READ | os.O_CREAT | os.O_NONBLOCK
    fd = os.open(name, flags, 0o600, dir_fd=base)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if stat.S_ISREG(os.fstat(fd).st_mode) and is_at(fd, base, name):
            return fd
    except BlockingIOError:
        pass
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return None
