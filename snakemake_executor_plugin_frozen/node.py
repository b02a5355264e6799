"""What a job runs on its compute node around Snakemake: `enter` checks the scratch folder,
extracts the snapshot once per node (or proves the copy already there is still the
snapshot's) and prints the shell exports that point the job at it; `run` runs the job's
command and makes sure it ends, and ends with it every process it started; `leave` releases
the snapshot and removes the copy when the node's last job using it has ended.

`run` (every job, whatever the mode) exists because the job's Snakemake does not always end,
nor end what it started. When a pipe() group's producer fails, its local executor kills the
group's shells that have started (not their children: a consumer's subshell blocked opening
the FIFO lives on, orphaned), and a consumer that starts a moment later is not killed at all:
it blocks for good opening a FIFO no producer will open, and Snakemake, having logged its
shutdown, waits for it until the job's time limit. SLURM ends leftover processes only with
proctrack/cgroup. So `run` starts the command in a process group of its own, is the child
subreaper of whatever it orphans, and ends every process of the job (TERM, then KILL):
- `--grace` seconds after the job's Snakemake logged that it is shutting down without
  logging that it is done (the job's log is `run`'s stderr), or after TERM, INT or HUP
  (which it passes on to the job); the status is then 1, or the job's after a signal;
- once the command has ended: what it left behind (its status is kept).
A successful Snakemake never logs that shutdown line; a rule that prints that very line into
the job's log and then runs on for `--grace` seconds would be ended too.

Nothing in scratch is believed unless this user made it there and it is still as made:
- The scratch folder and every folder above it must belong to root or the user and be
  writable by nobody else unless sticky (ssh's StrictModes), and
  `<scratch>/snakemake-frozen-<uid>` must be the user's own real folder with mode 0700. It is
  opened once; everything below it goes through that folder's fd, so no path another user
  could swap is resolved again.
- The archive is hashed as it is extracted (`snapshot.archive.extract_at`): what lands in
  the copy is what had the recorded sha256.
- The copy is read-only (files 0444/0555, folders 0555) and sealed: `<id>.seal` holds the
  archive's sha256 and, for every entry, (path, type, mode, size, inode, mtime_ns,
  ctime_ns). Every `enter` re-stats the copy (no content is read) and compares: a user
  cannot set ctime, so a write, chmod, rename, addition or removal always shows. A copy that
  differs, or that is not this user's, is removed and extracted again, never run.

`<scratch>/snakemake-frozen-<uid>/` holds, per snapshot id:
  <id>/              the copy; the job runs from `<id>/<prefix>`, the copy of the code root
                     (the prefix is empty unless the snapshot holds files from outside it)
  <id>.seal          the copy's seal (0400)
  <id>.lock          serialises extraction, checks, leases and removal (0600)
  <id>.leases/<name>/  one per job using the copy, which is also that job's own folder
                     (FROZEN_JOB_DIR); its `holder` file says who holds it
Names starting with a dot are temporary, and debris once no job holds the lock.

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

Leases: `<host>.<jobid>.<pid>` for the batch shell of a SLURM job (`<host>.<pid>` outside
SLURM) lives while that very process does: its `holder` records the host, the pid namespace
and the process's start time, so a recycled pid does not keep a dead job's lease alive, and
a lease from another pid namespace (per-job namespaces) is never judged by whichever process
has that number here: it is kept until its own `leave`. The job id in the name keeps the
leases of jobs whose shells have the same pid in their own namespaces apart.
A job spanning several nodes runs `enter --job-lease` on every node of its allocation
(through `srun`, one task per node) after the first node's own `enter`: each node extracts
or checks its own copy at the same path, leased as `<host>.job<jobid>` until `leave
--job-lease` (no process of ours lives on there to be checked).

    python -P -m snakemake_executor_plugin_frozen.node enter --archive A --sha256 S --id ID \
        --code-root LIVE [--prefix P] --scratch TEMPLATE [--keep] [--stale-after SECONDS] \
        --holder PID
    python -P -m snakemake_executor_plugin_frozen.node enter ... --scratch-path DIR \
        --job-lease JOBID
    python -P -m snakemake_executor_plugin_frozen.node run [--grace SECONDS] -- PROGRAM ARGS
    python -P -m snakemake_executor_plugin_frozen.node leave [--job-lease JOBID]
"""

import argparse
import ctypes
import errno
import fcntl
import math
import os
import re
import shlex
import signal
import socket
import stat
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_JOB_ID = re.compile(r"[0-9A-Za-z_]+")
# Put first on every job's PYTHONPATH: holds the sitecustomize that every Python process of
# the job runs.
JOBSITE = Path(__file__).resolve().parent / "jobsite"
_PATH = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC  # walk, do not read
_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_SEAL = "snakemake-frozen seal 1"
_TYPES = {stat.S_IFDIR: "d", stat.S_IFREG: "f", stat.S_IFLNK: "l"}


class NodeError(Exception):
    """A job cannot run from its snapshot; the message says why and what to do."""


# -- pure decisions -------------------------------------------------------------------------


def resolve_scratch(template: str, environ: Mapping[str, str]) -> Path:
    """The scratch directory on this node. `{VAR}` placeholders (not `$VAR`, which Snakemake
    expands on the login node) are filled from the job's environment."""
    if not template:
        name = next((n for n in ("SLURM_TMPDIR", "TMPDIR") if environ.get(n)), "")
        if not name:
            return Path("/tmp")
        return absolute(Path(environ[name]), f"${name} (the default of frozen-scratch)")

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if not environ.get(name):
            raise NodeError(
                f"setting frozen-scratch {template!r} names {{{name}}}, but ${name} is not "
                "set on this node; set it in the job environment or change the setting"
            )
        return environ[name]

    return absolute(Path(_PLACEHOLDER.sub(fill, template)), f"setting frozen-scratch {template!r}")


def absolute(scratch: Path, origin: str) -> Path:
    if not scratch.is_absolute():
        raise NodeError(
            f"{origin} gives the relative path {str(scratch)!r}: on the node it would lie in "
            "the job's working directory, inside the live workflow (where the next snapshot "
            "would pack it); set frozen-scratch to an absolute folder, e.g. '{TMPDIR}/frozen'"
        )
    return scratch


def frozen_pythonpath(
    frozen_dir: Path,
    code_root: Path,
    pythonpath: str,
    sys_path: Sequence[str],
    exists=os.path.isdir,
) -> list[str]:
    """PYTHONPATH for the job: the copy's root first, then every entry that points into the
    live code root rewritten to the same place in the copy. `sys_path` brings in directories
    that `.pth` files add (an editable `pip install -e .` of a `src/` package), which must be
    shadowed by their frozen twins too. An entry whose twin is not in the snapshot is kept
    live, as there is nothing frozen to use instead."""

    def twin(entry: str) -> str | None:
        try:
            relative = Path(os.path.abspath(entry)).relative_to(code_root)
        except ValueError:
            return None
        candidate = frozen_dir / relative
        return str(candidate) if exists(candidate) else None

    entries = [str(frozen_dir)]
    for entry in filter(None, pythonpath.split(os.pathsep)):
        entries.append(twin(entry) or entry)
    for entry in sys_path:
        frozen_twin = twin(entry) if entry else None
        if frozen_twin:
            entries.append(frozen_twin)
    return list(dict.fromkeys(entries))


def unsafe(info: os.stat_result, uid: int) -> str:
    """Why someone but root and `uid` could replace what lies in this folder, or ""."""
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid not in (0, uid):
        return f"is owned by uid {info.st_uid}, not by root or you (uid {uid})"
    if mode & 0o022 and not mode & stat.S_ISVTX:
        who = "others" if mode & 0o002 else "its group"
        return f"is writable by {who} (mode {mode:04o}) and not sticky"
    return ""


def lease_name(host: str, holder: int | None, job_lease: str | None, job_id: str) -> str:
    if job_lease:
        return f"{host}.job{job_lease}"
    return f"{host}.{job_id}.{holder}" if job_id else f"{host}.{holder}"


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
        return fields[2] if _JOB_ID.fullmatch(fields[2]) else ""
    if len(fields) == 5 and fields[0] == "pid":
        job_id = name.removeprefix(f"{fields[1]}.").removesuffix(f".{fields[3]}")
        if name == f"{fields[1]}.{job_id}.{fields[3]}" and _JOB_ID.fullmatch(job_id):
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


def seal_difference(sealed: bytes, now: bytes) -> str:
    """What differs between a copy's seal and its state now, for the job's log."""
    old, new = _parse_seal(sealed), _parse_seal(now)
    if old is None or new is None:
        return "its seal is damaged"
    if old[0] != new[0]:
        return f"it was extracted from another archive (sha256 {old[0]})"
    before, after = old[1], new[1]
    changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
    shown = [
        ("its top folder" if p == "." else p)
        + ("" if p in before and p in after else " (missing)" if p in before else " (extra)")
        for p in changed
    ]
    return ", ".join(shown[:3]) + (f" and {len(shown) - 3} more" if len(shown) > 3 else "")


def _parse_seal(data: bytes) -> tuple[str, dict[str, tuple[str, ...]]] | None:
    fields = data.decode("utf-8", "surrogateescape").split("\0")
    if len(fields) < 2 or fields[0] != _SEAL or (len(fields) - 2) % 7:
        return None
    return fields[1], {fields[i]: tuple(fields[i + 1 : i + 7]) for i in range(2, len(fields), 7)}


# -- the scratch folder ---------------------------------------------------------------------


def open_scratch(scratch: Path) -> tuple[int, Path]:
    """The scratch folder, reached from / one folder at a time without following links, each
    folder on the way checked (`unsafe`): its O_PATH fd and real path. Links in the setting
    are resolved once, first; the folders they lead to are what is checked and used."""
    real = Path(os.path.realpath(scratch))
    uid = os.getuid()
    fd, here = os.open("/", _PATH), Path("/")
    try:
        while True:
            why = unsafe(os.fstat(fd), uid)
            if why:
                raise NodeError(
                    f"refusing the scratch folder {scratch}: {here} {why}, so another user "
                    "could replace what lies below it and plant code that this job would run. "
                    f"Make {here} belong to root or you and writable by nobody else (or "
                    "sticky, like /tmp), or change the setting frozen-scratch"
                )
            if here == real:
                return fd, real
            part = real.parts[len(here.parts)]
            try:
                inner = os.open(part, _PATH, dir_fd=fd)
            except FileNotFoundError:
                folder = shlex.quote(str(scratch))
                raise NodeError(
                    f"the scratch folder {scratch} does not exist on {socket.gethostname()}: "
                    f"create it (mkdir -p {folder} && chmod 1777 {folder}) or change the "
                    "setting frozen-scratch"
                ) from None
            except OSError as e:
                raise NodeError(
                    f"cannot reach the scratch folder {scratch}: {here / part}: {e.strerror}; "
                    "fix it or change the setting frozen-scratch"
                ) from e
            os.close(fd)
            fd, here = inner, here / part
    except BaseException:
        os.close(fd)
        raise


def open_user_folder(scratch: Path, create: bool) -> tuple[int, Path]:
    """`<scratch>/snakemake-frozen-<uid>`, private to the user (other users on a shared node
    must not be able to plant or alter code that our jobs would run), made if missing when
    `create`: its fd, opened once, and its path."""
    scratch_fd, real = open_scratch(scratch)
    name = f"snakemake-frozen-{os.getuid()}"
    path = real / name
    try:
        made = create and _make_folder(scratch_fd, name, real)
        try:
            fd = os.open(name, _FOLDER, dir_fd=scratch_fd)
        except FileNotFoundError:
            raise NodeError(f"{path} is gone: nothing to release") from None
        except OSError:
            what = _kind(os.stat(name, dir_fd=scratch_fd, follow_symlinks=False))
            raise NodeError(
                f"{path} is {what}, not a folder: refusing to run code from it. Remove it "
                f"(rm {shlex.quote(str(path))}) or change the setting frozen-scratch"
            ) from None
    finally:
        os.close(scratch_fd)
    if made:
        os.fchmod(fd, 0o700)  # whatever the umask
    info = os.fstat(fd)
    why = _not_private(info)
    if why:
        os.close(fd)
        raise NodeError(
            f"{path} {why}: refusing to run code from it. Remove it (rm -rf "
            f"{shlex.quote(str(path))}; the next job makes it again, private) or change the "
            "setting frozen-scratch"
        )
    return fd, path


def _make_folder(scratch: int, name: str, real: Path) -> bool:
    try:
        os.mkdir(name, 0o700, dir_fd=scratch)
    except FileExistsError:
        return False
    except OSError as e:
        raise NodeError(
            f"cannot create {real / name} in the scratch folder {real}: {e.strerror}; make "
            f"it writable for its users (chmod 1777 {shlex.quote(str(real))}) or change the "
            "setting frozen-scratch"
        ) from e
    return True


def _not_private(info: os.stat_result) -> str:
    uid = os.getuid()
    if info.st_uid != uid:
        return (
            f"is owned by uid {info.st_uid}, not by you (uid {uid}): another user made it, and "
            "what it holds may be theirs"
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode != 0o700:
        return f"has mode {mode:04o}, not 0700: other users could have planted files in it"
    return ""


def _kind(info: os.stat_result) -> str:
    if stat.S_ISLNK(info.st_mode):
        return "a symbolic link"
    return "a file" if stat.S_ISREG(info.st_mode) else "a special file"


def scratch_error(scratch: Path, error: OSError, doing: str) -> NodeError:
    """A problem of the scratch folder, named as one: the folder and the setting."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return NodeError(
            f"the scratch folder {scratch} is full ({error.strerror}) while {doing}: free "
            "space there or set frozen-scratch to a folder with room"
        )
    return NodeError(
        f"cannot use the scratch folder {scratch} while {doing}: {error.strerror or error}; "
        "fix it or set frozen-scratch to another folder"
    )


# -- below the per-user folder: always through folder fds -----------------------------------


@contextmanager
def locked(base: int, snapshot_id: str) -> Iterator[None]:
    """Hold `<id>.lock`. Its holder may remove it (with the copy); a job that was waiting
    on the removed file then holds a lock nobody else can see, so it lets go and takes the
    file now at that name: two jobs never both hold the lock of one id."""
    name = f"{snapshot_id}.lock"
    while True:
        fd = os.open(
            name, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=base
        )
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if _is_at(fd, base, name):
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    try:
        yield
    finally:
        os.close(fd)


def _is_at(fd: int, folder: int, name: str) -> bool:
    try:
        there = os.stat(name, dir_fd=folder, follow_symlinks=False)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (there.st_dev, there.st_ino)


def remove_tree(folder: int, name: str) -> None:
    """Remove the entry `name` of `folder`, a read-only tree too (each folder is made
    writable just before it is emptied); never follows a link; gone already is fine."""
    try:
        if not stat.S_ISDIR(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode):
            os.unlink(name, dir_fd=folder)
            return
        fd = os.open(name, _FOLDER, dir_fd=folder)
    except FileNotFoundError:
        return
    try:
        with suppress(PermissionError):  # another owner's folder: try to empty it anyway
            os.fchmod(fd, 0o700)
        for entry in os.listdir(fd):
            remove_tree(fd, entry)
    finally:
        os.close(fd)
    with suppress(FileNotFoundError):
        os.rmdir(name, dir_fd=folder)


def discard(folder: int, name: str) -> None:
    """Remove an entry so that it disappears at once: renamed to a dot name (debris for the
    next job to remove), then deleted, so that a crash half-way never leaves a partial tree
    under a trusted name."""
    aside = f".{name}.deleting.{os.urandom(6).hex()}"
    try:
        os.rename(name, aside, src_dir_fd=folder, dst_dir_fd=folder)
    except FileNotFoundError:
        return
    remove_tree(folder, aside)


def _write_new(folder: int, name: str, data: bytes, mode: int) -> None:
    with open(os.open(name, _NEW_FILE, mode, dir_fd=folder), "wb") as f:
        f.write(data)


def _write_atomic(folder: int, name: str, data: bytes, mode: int) -> None:
    temporary = f".{name}.{os.urandom(6).hex()}.tmp"
    _write_new(folder, temporary, data, mode)
    os.rename(temporary, name, src_dir_fd=folder, dst_dir_fd=folder)


def seal(base: int, snapshot_id: str, archive_sha256: str) -> bytes:
    """The state of the copy `<id>`: the archive's sha256, then (path, type, mode, size,
    inode, mtime_ns, ctime_ns) of the copy and every entry in it, from lstat through
    folder fds; no content is read."""
    fd = os.open(snapshot_id, _FOLDER, dir_fd=base)
    try:
        fields = [_SEAL, archive_sha256.lower(), _record(".", os.fstat(fd))]
        _scan(fd, "", fields)
    finally:
        os.close(fd)
    return "\0".join(fields).encode("utf-8", "surrogateescape")


def _scan(folder: int, prefix: str, fields: list[str]) -> None:
    with os.scandir(folder) as listing:
        found = sorted((e.name, e.stat(follow_symlinks=False)) for e in listing)
    for name, info in found:
        if not stat.S_ISDIR(info.st_mode):
            fields.append(_record(prefix + name, info))
            continue
        inner = os.open(name, _FOLDER, dir_fd=folder)
        try:
            fields.append(_record(prefix + name, os.fstat(inner)))  # the one descended into
            _scan(inner, f"{prefix}{name}/", fields)
        finally:
            os.close(inner)


def _record(path: str, info: os.stat_result) -> str:
    """One entry's seven fields, NUL-separated (no path holds a NUL)."""
    kind = _TYPES.get(stat.S_IFMT(info.st_mode), "?")
    return (
        f"{path}\0{kind}\0{stat.S_IMODE(info.st_mode):o}\0{info.st_size}\0{info.st_ino}"
        f"\0{info.st_mtime_ns}\0{info.st_ctime_ns}"
    )


def _read_seal(base: int, snapshot_id: str) -> bytes | None:
    try:
        fd = os.open(f"{snapshot_id}.seal", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=base)
    except OSError:
        return None
    with open(fd, "rb") as f:
        info = os.fstat(f.fileno())
        return f.read() if stat.S_ISREG(info.st_mode) and info.st_uid == os.getuid() else None


def copy_difference(base: int, snapshot_id: str, archive_sha256: str) -> str | None:
    """None when there is no copy `<id>`, "" when it is exactly as sealed, else what differs
    (a copy this user did not make counts as different)."""
    try:
        info = os.stat(snapshot_id, dir_fd=base, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if not stat.S_ISDIR(info.st_mode):
        return f"it is {_kind(info)}, not a folder"
    if info.st_uid != os.getuid():
        return f"it is owned by uid {info.st_uid}, not by this user"
    sealed = _read_seal(base, snapshot_id)
    if sealed is None:
        return "it has no seal of this user's"
    try:
        now = seal(base, snapshot_id, archive_sha256)
    except OSError as e:
        return f"it cannot be listed ({e.strerror})"
    return "" if now == sealed else seal_difference(sealed, now)


def prepare_copy(base: int, copy: Path, archive: Path, archive_sha256: str) -> str | None:
    """Make `<id>` the snapshot's own, sealed copy (under its lock): None when the copy was
    already there and as sealed, "" when there was none, else what differed in the copy
    that was removed and extracted again."""
    snapshot_id = copy.name
    for name in os.listdir(base):
        if name.startswith(f".{snapshot_id}."):  # debris of a crashed extract or remove
            remove_tree(base, name)
    difference = copy_difference(base, snapshot_id, archive_sha256)
    if difference == "":
        return None
    if difference is not None:
        discard(base, snapshot_id)
    _extract(base, copy, archive, archive_sha256)
    _write_atomic(base, f"{snapshot_id}.seal", seal(base, snapshot_id, archive_sha256), 0o400)
    return difference or ""


def _extract(base: int, copy: Path, archive: Path, archive_sha256: str) -> None:
    from snakemake_executor_plugin_frozen.snapshot import SnapshotError
    from snakemake_executor_plugin_frozen.snapshot.archive import DestinationError, extract_at

    try:
        extract_at(archive, copy, base, archive_sha256, read_only=True)
    except DestinationError as e:
        raise scratch_error(copy.parent.parent, e.error, f"extracting into {copy}") from e
    except SnapshotError as e:
        raise NodeError(f"snapshot {copy.name} from {archive}: {e}") from e


# -- leases -----------------------------------------------------------------------------------


def pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return "-"


def process_start(pid: int) -> str:
    """When process `pid` started (clock ticks after boot), "" if there is none: a later
    process that got the same pid has another start."""
    fields = _stat_fields(pid)
    return fields[19] if fields else ""  # field 22 of proc(5)


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3 onwards of /proc/<pid>/stat (state, ppid, pgrp, ...), None if no process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].decode().split()  # the name may hold ')'
    except OSError:
        return None


def _open_leases(base: int, snapshot_id: str, create: bool) -> int | None:
    name = f"{snapshot_id}.leases"
    if create:
        with suppress(FileExistsError):
            os.mkdir(name, 0o700, dir_fd=base)
    try:
        return os.open(name, _FOLDER, dir_fd=base)
    except FileNotFoundError:
        return None


def prune_stale(leases: int, host: str) -> list[str]:
    """Remove dead holders' leases (with their job folders) and debris; return the live."""
    namespace = pid_namespace()
    live = []
    for name in sorted(os.listdir(leases)):
        if not name.startswith(".") and lease_is_live(_holder(leases, name), host, namespace):
            live.append(name)
        else:
            discard(leases, name)
    return live


def _holder(leases: int, name: str) -> str:
    try:
        fd = os.open(name, _FOLDER, dir_fd=leases)
    except OSError:
        return ""
    try:
        holder = os.open("holder", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        with open(holder, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""
    finally:
        os.close(fd)


def take_lease(base: int, snapshot_id: str, name: str, record: str, host: str) -> None:
    """`<id>.leases/<name>/`, holding `record`, made whole under a temporary name."""
    leases = _open_leases(base, snapshot_id, create=True)
    assert leases is not None  # just made
    try:
        prune_stale(leases, host)
        discard(leases, name)  # a dead job's, whose pid this job now has (outside SLURM)
        temporary = f".{name}.{os.urandom(6).hex()}.tmp"
        os.mkdir(temporary, 0o700, dir_fd=leases)
        fd = os.open(temporary, _FOLDER, dir_fd=leases)
        try:
            _write_new(fd, "holder", record.encode(), 0o600)
        finally:
            os.close(fd)
        os.rename(temporary, name, src_dir_fd=leases, dst_dir_fd=leases)
    finally:
        os.close(leases)


def holder_record(host: str, holder: int | None, job_lease: str | None) -> str:
    if job_lease:
        return f"job {host} {job_lease}"
    return f"pid {host} {pid_namespace()} {holder} {process_start(holder or 0) or '-'}"


# -- what earlier jobs left behind -----------------------------------------------------------

STALE_AFTER_SECONDS = 24 * 3600.0  # the default of `enter --stale-after`
_CLEANUP_SECONDS = 1.0  # no removal is started after this: the job is waiting
_CLEANUP_SNAPSHOTS = 8  # the oldest this many snapshots' entries are looked at, per job
_SQUEUE_SECONDS = 2.0
# Entries of the per-user folder that are ours, by snapshot id: the copy, its seal, lock and
# leases, and the temporary names of extract_at (`.<id>.<12 hex>.tmp`), _write_atomic
# (`.<id>.seal.<12 hex>.tmp`) and discard (`.<id>.deleting.<12 hex>`, also of `<id>.leases`).
_OURS = re.compile(r"(?P<id>[0-9a-f]{8,64})(?:\.seal|\.lock|\.leases)?")
_DEBRIS = re.compile(
    r"\.(?P<id>[0-9a-f]{8,64})(?:\.seal|\.leases)?\.(?:[0-9a-f]{12}\.tmp|deleting\.[0-9a-f]{12})"
)
# squeue states of a job none of whose processes runs any more ("": squeue does not list
# it, so it ended a while ago); any other, known or not, counts as running.
_NOT_RUNNING = frozenset(
    {"", "PENDING", "COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED"}
    | {"BOOT_FAIL", "DEADLINE", "OUT_OF_MEMORY"}
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
    prefix = f"FROZEN_COPY={folder}/".encode()
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
        leases = _open_leases(base, snapshot_id, create=False)
    except OSError as e:
        if e.errno in (errno.ENOTDIR, errno.ELOOP):
            return []  # not a folder (a link, a file): no job could take a lease in it
        raise
    if leases is None:
        return []
    try:
        names = [name for name in os.listdir(leases) if not name.startswith(".")]
        return [(name, _holder(leases, name)) for name in names]
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
    flags = os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    fd = os.open(name, flags, 0o600, dir_fd=base)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if stat.S_ISREG(os.fstat(fd).st_mode) and _is_at(fd, base, name):
            return fd
    except BlockingIOError:
        pass
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return None


# -- running the job's command ----------------------------------------------------------------

# What Snakemake's scheduler logs when, after a failed job or a kill, it starts waiting for
# the jobs it still runs, and once that wait is over (snakemake/scheduling/job_scheduler.py).
SHUTTING_DOWN = b"Shutting down, this might take some time."
SHUT_DOWN = b"Exiting because a job execution failed."
# When a `run:` block raises SystemExit (sys.exit), the thread running it dies (Python logs
# "Exception in worker") or the scheduler logs that it will exit; the job never counts as
# finished and Snakemake 9 waits for ever. In a job of one rule nothing else runs after
# either line; a group job's other rules may run on: not for them.
WILL_EXIT = b"Will exit after finishing currently running jobs (scheduler)."
WORKER_DIED = b"Exception in worker"
_PR_SET_CHILD_SUBREAPER = 36  # prctl(2)
_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_POLL_SECONDS = 0.2
_KILL_AFTER_SECONDS = 2.0  # from TERM to KILL, for processes of a job that is over
_GIVE_UP_SECONDS = 5.0  # after KILL: what is still there is in an uninterruptible wait


@dataclass(frozen=True)
class Process:
    pid: int
    parent: int
    group: int
    start: str


def live_processes() -> dict[int, Process]:
    """Every process this user can see, zombies (already dead) left out."""
    found = {}
    for name in os.listdir("/proc"):
        fields = _stat_fields(int(name)) if name.isdigit() else None
        if fields and fields[0] != "Z":
            found[int(name)] = Process(int(name), int(fields[1]), int(fields[2]), fields[19])
    return found


def job_processes(table: Mapping[int, Process], root: int, group: int) -> list[Process]:
    """The processes below `root` and those still in the job's process group (an orphan
    keeps its group when it ends up with init, not with `root`)."""
    children: dict[int, list[Process]] = {}
    for process in table.values():
        children.setdefault(process.parent, []).append(process)
    found: dict[int, Process] = {}
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child.pid not in found:
                found[child.pid] = child
                todo.append(child.pid)
    found.update({p.pid: p for p in table.values() if p.group == group and p.pid != root})
    return sorted(found.values(), key=lambda p: p.pid)


def command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            words = f.read().rstrip(b"\0").split(b"\0")
    except OSError:
        return "?"
    text = " ".join(w.decode(errors="replace") for w in words)
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= 80 else text[:77] + "..."


def shell_status(wait_status: int) -> int:
    """An exit status as bash gives it: 128 + N for a process ended by signal N."""
    code = os.waitstatus_to_exitcode(wait_status)
    return code if code >= 0 else 128 - code


class Children:
    """Reaps every child of this process (the job's shell and, as subreaper, whatever the
    job orphaned) and keeps the job shell's exit status."""

    def __init__(self, job: int) -> None:
        self.job = job
        self.status: int | None = None

    def reap(self) -> None:
        while True:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.job:
                self.status = shell_status(wait_status)


def end_job_processes(job: int, children: Children) -> list[str]:
    """TERM every process of the job, KILL those left after a while; what was running."""
    root = os.getpid()
    running = job_processes(live_processes(), root, job)
    shown = [f"{p.pid} ({command_line(p.pid)})" for p in running]
    _send(running, signal.SIGTERM)
    started = time.monotonic()
    while running:
        waited = time.monotonic() - started
        if waited > _KILL_AFTER_SECONDS + _GIVE_UP_SECONDS:
            print(
                "frozen: could not end process(es) of the job: "
                + ", ".join(str(p.pid) for p in running),
                file=sys.stderr,
            )
            break
        if waited > _KILL_AFTER_SECONDS:
            _send(running, signal.SIGKILL)
        time.sleep(0.05)
        children.reap()
        running = job_processes(live_processes(), root, job)
    return shown


def _send(processes: Sequence[Process], signum: int) -> None:
    for process in processes:
        if process_start(process.pid) == process.start:  # not a new process with its pid
            with suppress(ProcessLookupError, PermissionError):
                os.kill(process.pid, signum)


class ShutdownWatch:
    """Follows the job's log, this process's stderr when that is a file (as in a SLURM job),
    for Snakemake's shutdown lines, from where the log ended when the job started."""

    def __init__(self, single_rule: bool = False) -> None:
        self.log: int | None = None
        self.tail = b""
        self.markers = (SHUTTING_DOWN, WILL_EXIT, WORKER_DIED) if single_rule else (SHUTTING_DOWN,)
        self.since: float | None = None  # when a marker was seen
        self.over = False  # SHUT_DOWN was seen after it
        try:
            log = os.open("/proc/self/fd/2", os.O_RDONLY | os.O_CLOEXEC)  # a reader of its own
        except OSError:
            return
        if stat.S_ISREG(os.fstat(log).st_mode):
            os.lseek(log, 0, os.SEEK_END)
            self.log = log
        else:
            os.close(log)

    def read(self, now: float) -> None:
        while self.log is not None and not self.over and (chunk := os.read(self.log, 1 << 20)):
            text = self.tail + chunk
            if self.since is None and any(marker in text for marker in self.markers):
                self.since = now
            if self.since is not None and SHUT_DOWN in text:
                self.over = True
            self.tail = text[-len(WILL_EXIT) :]

    def stuck(self, now: float, grace: float) -> bool:
        return self.since is not None and not self.over and now - self.since > grace

    def close(self) -> None:
        if self.log is not None:
            os.close(self.log)
            self.log = None


class Forwarder:
    """Passes TERM, INT and HUP on to the job's process group (a scancel reaches every
    process of the job itself, a local cancel only this one) and notes when the first came."""

    def __init__(self, group: int) -> None:
        self.group = group
        self.since: float | None = None
        for signum in _FORWARDED:
            signal.signal(signum, self.forward)

    def forward(self, signum: int, frame: object) -> None:
        if self.since is None:
            self.since = time.monotonic()
        with suppress(ProcessLookupError):
            os.killpg(self.group, signum)


def become_subreaper() -> None:
    """Orphans of the job become this process's children, not init's, so that they are
    found and ended with the job (Linux 3.4+; elsewhere only its process group is)."""
    with suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def run(command: Sequence[str], grace: float, single_rule: bool = False) -> int:
    """Run the job's command in a process group of its own and end it when it is stuck:
    `grace` seconds after its Snakemake announced a shutdown it never finishes, or after a
    termination signal; then end whatever processes of the job are left. The command's exit
    status, 1 if it had to be ended after its Snakemake's shutdown."""
    become_subreaper()
    watch = ShutdownWatch(single_rule)
    # SIGCHLD stays blocked, to be waited for; the others until they can be passed on.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD, *_FORWARDED})
    job = os.posix_spawnp(
        command[0],
        list(command),
        os.environ,
        setpgroup=0,
        setsigmask=(),
        setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),  # ignored by Python, not by the job
    )
    children = Children(job)
    signals = Forwarder(job)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORWARDED)
    stuck = ""
    hung_after_failure = False
    while children.status is None and not stuck:
        signal.sigtimedwait({signal.SIGCHLD}, _POLL_SECONDS)
        children.reap()
        now = time.monotonic()
        watch.read(now)
        if watch.stuck(now, grace):
            hung_after_failure = True
            stuck = (
                f"the job's Snakemake announced its shutdown after a failure {grace:g} s ago "
                "and still waits for something that does not end (such as a pipe() consumer "
                "whose producer failed, or a run: block that called sys.exit)"
            )
        elif signals.since is not None and now - signals.since > grace:
            stuck = f"the job did not end within {grace:g} s of a termination signal"
    watch.close()
    left = end_job_processes(job, children)
    if left:
        why = stuck or "the job's command ended, leaving processes running"
        print(f"frozen: {why}; ended: {', '.join(left)}", file=sys.stderr)
    if children.status is None or hung_after_failure:
        return 1  # as its Snakemake would have, had it ended
    return children.status


# -- the commands -----------------------------------------------------------------------------


def enter(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, str]:
    started = time.monotonic()
    host = socket.gethostname()
    scratch = (
        absolute(Path(args.scratch_path), "--scratch-path")
        if args.scratch_path
        else resolve_scratch(args.scratch, environ)
    )
    base, folder = open_user_folder(scratch, create=True)
    copy = folder / args.id
    job_id = environ.get("SLURM_JOB_ID", "")
    job_id = job_id if _JOB_ID.fullmatch(job_id) else ""
    name = lease_name(host, args.holder, args.job_lease, job_id)
    frozen_dir = copy / args.prefix if args.prefix else copy
    try:
        try:
            with locked(base, args.id):
                difference = prepare_copy(base, copy, Path(args.archive), args.sha256)
                record = holder_record(host, args.holder, args.job_lease)
                take_lease(base, args.id, name, record, host)
        except OSError as e:
            raise scratch_error(folder.parent, e, f"preparing {copy}") from e
        print(
            f"frozen: snapshot {args.id} from {args.archive} "
            f"{'reused' if difference is None else 'extracted'} at {frozen_dir} on {host} "
            f"({time.monotonic() - started:.2f} s)",
            file=sys.stderr,
        )
        if difference:
            print(
                f"frozen: the copy at {copy} differs from snapshot {args.id} (changed: "
                f"{difference}): extracted again",
                file=sys.stderr,
            )
        # After the line above, which the job's log starts with; this job's lock is free.
        clean_stale(base, folder, args.id, args.stale_after, host, job_id)
    finally:
        os.close(base)
    if args.job_lease:
        return {}  # another node of a multi-node job: the first node's exports hold
    pythonpath = frozen_pythonpath(
        frozen_dir, Path(args.code_root), environ.get("PYTHONPATH", ""), sys.path
    )
    return {
        "FROZEN_DIR": str(frozen_dir),
        "FROZEN_COPY": str(copy),
        "FROZEN_SCRATCH": str(folder.parent),
        "FROZEN_SNAPSHOT": args.id,
        "FROZEN_CODE_ROOT": args.code_root,
        "FROZEN_JOB_DIR": str(folder / f"{args.id}.leases" / name),
        "FROZEN_KEEP": "1" if args.keep else "",
        "FROZEN_PYTHONPATH": os.pathsep.join(e for e in pythonpath if Path(e).is_relative_to(copy)),
        # The job-site folder first: its sitecustomize makes every Python process of the
        # job import and read the snapshot's files (see jobsite/sitecustomize.py).
        "PYTHONPATH": os.pathsep.join([str(JOBSITE), *pythonpath]),
        # A job run as root could write __pycache__ into the read-only copy, which the next
        # job would (rightly) see as a changed copy and extract again.
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def leave(environ: Mapping[str, str], job_lease: str | None = None) -> None:
    host = socket.gethostname()
    snapshot_id = environ["FROZEN_SNAPSHOT"]
    name = (
        lease_name(host, None, job_lease, "") if job_lease else Path(environ["FROZEN_JOB_DIR"]).name
    )
    base, _ = open_user_folder(Path(environ["FROZEN_SCRATCH"]), create=False)
    try:
        with locked(base, snapshot_id):
            live = release(base, snapshot_id, name, host)
            if not live and not environ.get("FROZEN_KEEP"):
                remove_copy(base, snapshot_id)
    finally:
        os.close(base)


def release(base: int, snapshot_id: str, name: str, host: str) -> list[str]:
    """Drop the lease `name`; return the leases still live."""
    leases = _open_leases(base, snapshot_id, create=False)
    if leases is None:
        return []
    try:
        discard(leases, name)
        return prune_stale(leases, host)
    finally:
        os.close(leases)


def remove_copy(base: int, snapshot_id: str) -> None:
    """Remove the copy, its seal, its empty leases folder and, last, its lock (held)."""
    discard(base, snapshot_id)
    with suppress(FileNotFoundError):
        os.unlink(f"{snapshot_id}.seal", dir_fd=base)
    with suppress(FileNotFoundError):
        os.rmdir(f"{snapshot_id}.leases", dir_fd=base)
    os.unlink(f"{snapshot_id}.lock", dir_fd=base)  # waiting jobs notice: see locked()


def _snapshot_id(text: str) -> str:
    # It names entries of the per-user folder: no path separators, no dot names.
    if not re.fullmatch(r"[0-9a-f]{8,64}", text):
        raise argparse.ArgumentTypeError(f"not a snapshot id: {text!r}")
    return text


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"not a number of seconds (0 or more, or inf): {text!r}")
    return value


def _job_id(text: str) -> str:
    if not _JOB_ID.fullmatch(text):
        raise argparse.ArgumentTypeError(f"not a SLURM job id: {text!r}")
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m snakemake_executor_plugin_frozen.node")
    commands = parser.add_subparsers(dest="command", required=True)
    enter_parser = commands.add_parser("enter", help="verify, extract once, print exports")
    enter_parser.add_argument("--archive", required=True)
    enter_parser.add_argument("--sha256", required=True)
    enter_parser.add_argument("--id", required=True, type=_snapshot_id)
    enter_parser.add_argument("--code-root", required=True)
    enter_parser.add_argument("--prefix", default="", help="the code root's place in the copy")
    enter_parser.add_argument("--scratch", default="", help="the frozen-scratch template")
    enter_parser.add_argument("--scratch-path", default="", help="the scratch, resolved")
    enter_parser.add_argument("--keep", action="store_true")
    enter_parser.add_argument(
        "--stale-after",
        type=_seconds,
        default=STALE_AFTER_SECONDS,
        help="remove what earlier jobs left of other snapshots once unused this many seconds "
        "and held by no running job ('inf': never)",
    )
    holder = enter_parser.add_mutually_exclusive_group(required=True)
    holder.add_argument("--holder", type=int, help="the job shell's pid")
    holder.add_argument("--job-lease", type=_job_id, help="the SLURM job id (other nodes)")
    leave_parser = commands.add_parser(
        "leave", help="release the snapshot; remove it after the last job"
    )
    leave_parser.add_argument("--job-lease", type=_job_id, help="the SLURM job id (other nodes)")
    run_parser = commands.add_parser(
        "run", help="run the job's command; end it, and what it leaves, when it is stuck"
    )
    run_parser.add_argument(
        "--grace",
        type=float,
        default=5.0,
        help="seconds the job gets to end by itself after its Snakemake announced its "
        "shutdown, or after a termination signal",
    )
    run_parser.add_argument(
        "--single-rule",
        action="store_true",
        help="the job runs one rule (no group): also end it when it hangs after logging "
        "that it will exit after its running jobs",
    )
    run_parser.add_argument("job_command", nargs="+", help="after --: the program and its args")
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return run(args.job_command, args.grace, args.single_rule)
        if args.command == "enter":
            for name, value in enter(args, os.environ).items():
                print(f"export {name}={shlex.quote(value)}")
        else:
            leave(os.environ, args.job_lease)
    except (NodeError, OSError) as e:
        print(f"frozen: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
