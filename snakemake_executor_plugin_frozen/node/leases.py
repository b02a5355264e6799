"""Leases: which jobs use a snapshot's copy on this node, so that the last one removes it.

`<host>.<jobid>.<pid>` for the batch shell of a SLURM job (`<host>.<pid>` outside SLURM)
lives while that very process does: its `holder` records the host, the pid namespace and the
process's start time, so a recycled pid does not keep a dead job's lease alive, and a lease
from another pid namespace (per-job namespaces) is never judged by whichever process has
that number here: it is kept until its own `leave`. The job id in the name keeps the leases
of jobs whose shells have the same pid in their own namespaces apart.
A job spanning several nodes runs `enter --job-lease` on every node of its allocation
(through `srun`, one task per node) after the first node's own `enter`: each node extracts
or checks its own copy at the same path, leased as `<host>.job<jobid>` until `leave
--job-lease` (no process of ours lives on there to be checked).
"""

import os
import re
from collections.abc import Mapping
from contextlib import suppress

from snakemake_executor_plugin_frozen.dirfd import FOLDER, READ, discard, new_file

JOB_ID = re.compile(r"[0-9A-Za-z_]+")
# squeue states of a job none of whose processes runs any more ("": squeue does not list
# it, so it ended a while ago); any other, known or not, counts as running.
_NOT_RUNNING = frozenset(
    {"", "PENDING", "COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED"}
    | {"BOOT_FAIL", "DEADLINE", "OUT_OF_MEMORY"}
)


def lease_name(host: str, holder: int | None, job_lease: str | None, job_id: str) -> str:
    if job_lease:
        return f"{host}.job{job_lease}"
    return f"{host}.{job_id}.{holder}" if job_id else f"{host}.{holder}"


def holder_record(host: str, holder: int | None, job_lease: str | None) -> str:
    if job_lease:
        return f"job {host} {job_lease}"
    return f"pid {host} {pid_namespace()} {holder} {process_start(holder or 0) or '-'}"


def lease_is_live(record: str, host: str, namespace: str) -> bool:
    """A lease of a process on this host and in this pid namespace lives while that very
    process (same pid, same start time) does. Any other (another node's on a shared scratch,
    another pid namespace's, a multi-node job's) cannot be checked here: it is kept."""
    process = _local_process(record, host, namespace)
    return process is None or process_start(process[0]) == process[1]


def _local_process(record: str, host: str, namespace: str) -> tuple[int, str] | None:
    """(pid, start time) of a lease's process when it is one of this host and pid
    namespace, which can be checked here; else None."""
    fields = record.split()
    if len(fields) != 5 or fields[:3] != ["pid", host, namespace] or not fields[3].isdigit():
        return None
    return int(fields[3]), fields[4]


def lease_job_id(name: str, record: str) -> str:
    """The SLURM job id of the lease `name` holding `record`, "" if it has none: a job
    lease's record holds it; a process's lease has it in its name, `<host>.<jobid>.<pid>`,
    whose host and pid its record holds (a host name may hold dots)."""
    fields = record.split()
    if len(fields) == 3 and fields[0] == "job":
        return fields[2] if JOB_ID.fullmatch(fields[2]) else ""
    if len(fields) == 5 and fields[0] == "pid":
        job_id = name.removeprefix(f"{fields[1]}.").removesuffix(f".{fields[3]}")
        if name == f"{fields[1]}.{job_id}.{fields[3]}" and JOB_ID.fullmatch(job_id):
            return job_id
    return ""


def lease_is_stale(
    name: str, record: str, host: str, namespace: str, jobs: Mapping[str, str] | None
) -> bool:
    """Whether no running job holds the lease `name` (holding `record`), for removing what
    a killed job left behind; `jobs` maps SLURM job ids to their squeue state ("" for one
    squeue does not list), None when SLURM could not be asked. Nothing is stale on doubt:
    - a lease of a process of this host and pid namespace is stale once that process is
      gone (its pid dead or another process's), unless SLURM says its job still runs (its
      other processes may still run from the copy);
    - any other (another node's on a shared scratch, another pid namespace's, a multi-node
      job's, which cannot be checked here) only when SLURM says its job does not run."""
    job_id = lease_job_id(name, record)
    state = jobs.get(job_id) if jobs is not None and job_id else None
    job_over = state is not None and state in _NOT_RUNNING
    process = _local_process(record, host, namespace)
    if process is None:
        return job_over
    return process_start(process[0]) != process[1] and (state is None or job_over)


def pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return "-"


def process_start(pid: int) -> str:
    """When process `pid` started (clock ticks after boot), "" if there is none: a later
    process that got the same pid has another start."""
    fields = stat_fields(pid)
    return fields[19] if fields else ""  # field 22 of proc(5)


def stat_fields(pid: int) -> list[str] | None:
    """Fields 3 onwards of /proc/<pid>/stat (state, ppid, pgrp, ...), None if no process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].decode().split()  # the name may hold ')'
    except OSError:
        return None


def open_leases(base: int, snapshot_id: str, create: bool) -> int | None:
    name = f"{snapshot_id}.leases"
    if create:
        with suppress(FileExistsError):
            os.mkdir(name, 0o700, dir_fd=base)
    try:
        return os.open(name, FOLDER, dir_fd=base)
    except FileNotFoundError:
        return None


def take_lease(base: int, snapshot_id: str, name: str, record: str, host: str) -> None:
    """`<id>.leases/<name>/`, holding `record`, made whole under a temporary name."""
    leases = open_leases(base, snapshot_id, create=True)
    assert leases is not None  # just made
    try:
        prune_stale(leases, host)
        discard(leases, name)  # a dead job's, whose pid this job now has (outside SLURM)
        temporary = f".{name}.{os.urandom(6).hex()}.tmp"
        os.mkdir(temporary, 0o700, dir_fd=leases)
        fd = os.open(temporary, FOLDER, dir_fd=leases)
        try:
            with new_file(fd, "holder", 0o600) as f:
                f.write(record.encode())
        finally:
            os.close(fd)
        os.rename(temporary, name, src_dir_fd=leases, dst_dir_fd=leases)
    finally:
        os.close(leases)


def release(base: int, snapshot_id: str, name: str, host: str) -> list[str]:
    """Drop the lease `name`; return the leases still live."""
    leases = open_leases(base, snapshot_id, create=False)
    if leases is None:
        return []
    try:
        discard(leases, name)
        return prune_stale(leases, host)
    finally:
        os.close(leases)


def prune_stale(leases: int, host: str) -> list[str]:
    """Remove dead holders' leases (with their job folders) and debris; return the live."""
    namespace = pid_namespace()
    live = []
    for name in sorted(os.listdir(leases)):
        if not name.startswith(".") and lease_is_live(read_holder(leases, name), host, namespace):
            live.append(name)
        else:
            discard(leases, name)
    return live


def read_holder(leases: int, name: str) -> str:
    try:
        fd = os.open(name, FOLDER, dir_fd=leases)
    except OSError:
        return ""
    try:
        holder = os.open("holder", READ, dir_fd=fd)
        with open(holder, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""
    finally:
        os.close(fd)
