"""What a job runs on its compute node before and after Snakemake: `enter` checks the
scratch folder, extracts the snapshot once per node (or proves the copy already there is
still the snapshot's) and prints the shell exports that point the job at it; `leave`
releases it and removes the copy when the node's last job using it has ended.

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
        --code-root LIVE [--prefix P] --scratch TEMPLATE [--keep] --holder PID
    python -P -m snakemake_executor_plugin_frozen.node enter ... --scratch-path DIR \
        --job-lease JOBID
    python -P -m snakemake_executor_plugin_frozen.node leave [--job-lease JOBID]
"""

import argparse
import errno
import fcntl
import os
import re
import shlex
import socket
import stat
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
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
    fields = record.split()
    if len(fields) != 5 or fields[:3] != ["pid", host, namespace] or not fields[3].isdigit():
        return True
    return process_start(int(fields[3])) == fields[4]


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
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rpartition(b")")[2].split()  # the name may hold spaces, ')'
    except OSError:
        return ""
    return fields[19].decode()  # field 22 of proc(5); this list starts at field 3


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
    name = lease_name(
        host, args.holder, args.job_lease, job_id if _JOB_ID.fullmatch(job_id) else ""
    )
    try:
        with locked(base, args.id):
            difference = prepare_copy(base, copy, Path(args.archive), args.sha256)
            take_lease(base, args.id, name, holder_record(host, args.holder, args.job_lease), host)
    except OSError as e:
        raise scratch_error(folder.parent, e, f"preparing {copy}") from e
    finally:
        os.close(base)
    frozen_dir = copy / args.prefix if args.prefix else copy
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
    holder = enter_parser.add_mutually_exclusive_group(required=True)
    holder.add_argument("--holder", type=int, help="the job shell's pid")
    holder.add_argument("--job-lease", type=_job_id, help="the SLURM job id (other nodes)")
    leave_parser = commands.add_parser(
        "leave", help="release the snapshot; remove it after the last job"
    )
    leave_parser.add_argument("--job-lease", type=_job_id, help="the SLURM job id (other nodes)")
    args = parser.parse_args(argv)
    try:
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
