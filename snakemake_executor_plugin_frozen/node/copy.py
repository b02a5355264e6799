"""The snapshot's copy in the per-user folder (see `scratch`): extracted, read-only, sealed.

- The archive is hashed as it is extracted (`snapshot.extraction.extract_at`): what lands in
  the copy is what had the recorded sha256.
- The copy is read-only (files 0444/0555, folders 0555) and sealed: `<id>.seal` holds the
  archive's sha256 and, for every entry, (path, type, mode, size, inode, mtime_ns,
  ctime_ns). Every `enter` re-stats the copy (no content is read) and compares: a user
  cannot set ctime, so a write, chmod, rename, addition or removal always shows. A copy that
  differs, or that is not this user's, is removed and extracted again, never run.
Below the per-user folder, everything goes through folder fds.
"""

import fcntl
import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from snakemake_executor_plugin_frozen.dirfd import (
    FOLDER,
    READ,
    discard,
    file_kind,
    is_at,
    new_file,
    remove_tree,
    up,
)
from snakemake_executor_plugin_frozen.node.scratch import NodeError, kind, scratch_error

_SEAL = "snakemake-frozen seal 1"
_TYPES = {stat.S_IFDIR: "d", stat.S_IFREG: "f", stat.S_IFLNK: "l"}


LOCK_WAIT = 600.0
"""Seconds a job waits for its snapshot's lock (extracting a large snapshot takes a while)
before it gives up, naming the lock and its holder."""


@contextmanager
def locked(base: int, snapshot_id: str) -> Iterator[None]:
    """Hold `<id>.lock`. Its holder may remove it (with the copy); a job that was waiting
    on the removed file then holds a lock nobody else can see, so it lets go and takes the
    file now at that name: two jobs never both hold the lock of one id.

    Never waits without a bound: the lock is polled for LOCK_WAIT seconds, then NodeError
    names the lock file, its holder and what to do. Anything but a regular file at the
    name (a FIFO would block the open) is refused."""
    name = f"{snapshot_id}.lock"
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        fd = os.open(name, READ | os.O_CREAT | os.O_NONBLOCK, 0o600, dir_fd=base)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                where = _path_of(base, name)
                raise NodeError(
                    f"the lock file {where} is {file_kind(info)}, not a regular file: "
                    f"it is not this plugin's; remove it (rm {where}) and run the job again"
                )
            _wait_for(fd, base, name, deadline, info)
            if is_at(fd, base, name):
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    try:
        yield
    finally:
        os.close(fd)


def _wait_for(fd: int, base: int, name: str, deadline: float, info: os.stat_result) -> None:
    pause = 0.01
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        left = deadline - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(pause, left))
        pause = min(pause * 2, 0.5)
    where = _path_of(base, name)
    holder, pid = _lock_holder(info)
    waited = f"waited {LOCK_WAIT:g} s for the lock {where} of this snapshot's copy"
    if holder:
        raise NodeError(
            f"{waited}, held by {holder}: another job of this snapshot on this node is still "
            f"extracting it, or is stuck; if it is stuck, end it (kill {pid}), then run this "
            "job again"
        )
    raise NodeError(
        f"{waited}, held by a process not known here: if no job of this snapshot runs on "
        f"this node, remove the lock (rm {where}), then run this job again"
    )


def _lock_holder(info: os.stat_result) -> tuple[str, str]:
    """Who holds a flock on the file `info`, from /proc/locks: ("pid N (command)", "N"), or
    ("", "") when it cannot be told."""
    device = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    try:
        with open("/proc/locks") as f:
            lines = f.read().splitlines()
    except OSError:
        return "", ""
    for line in lines:
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == device:
            pid = fields[4]
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    command = f.read(200).replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                command = ""
            return (f"pid {pid} ({command})" if command else f"pid {pid}"), pid
    return "", ""


def _path_of(base: int, name: str) -> str:
    """The path of `name` in the folder open as `base`, for a message."""
    try:
        return os.path.join(os.readlink(f"/proc/self/fd/{base}"), name)
    except OSError:
        return name


def _write_atomic(folder: int, name: str, data: bytes, mode: int) -> None:
    temporary = f".{name}.{os.urandom(6).hex()}.tmp"
    with new_file(folder, temporary, mode) as f:
        f.write(data)
    os.rename(temporary, name, src_dir_fd=folder, dst_dir_fd=folder)


def seal(base: int, snapshot_id: str, archive_sha256: str) -> bytes:
    """The state of the copy `<id>`: the archive's sha256, then (path, type, mode, size,
    inode, mtime_ns, ctime_ns) of the copy and every entry in it, from lstat through
    folder fds; no content is read."""
    fd = os.open(snapshot_id, FOLDER, dir_fd=base)
    try:
        fields = [_SEAL, archive_sha256.lower(), _record(".", os.fstat(fd))]
        _scan(fd, "", fields)
    finally:
        os.close(fd)
    return "\0".join(fields).encode("utf-8", "surrogateescape")


def _scan(folder: int, prefix: str, fields: list[str]) -> None:
    """Every entry below the folder open as `folder`, sorted, each folder followed by what
    it holds; without recursion and with one fd of `folder`'s tree open at a time."""
    fd = os.dup(folder)
    # Per folder on the way down: its prefix, identity, entries still to record (reversed).
    path: list[tuple[str, os.stat_result, list[tuple[str, os.stat_result]]]] = []
    try:
        path.append((prefix, os.fstat(fd), _listing(fd)))
        while path:
            here, _, left = path[-1]
            if not left:
                path.pop()
                if path:
                    fd = up(fd, path[-1][1])
                continue
            name, info = left.pop()
            if not stat.S_ISDIR(info.st_mode):
                fields.append(_record(here + name, info))
                continue
            inner = os.open(name, FOLDER, dir_fd=fd)
            os.close(fd)
            fd = inner
            inside = os.fstat(fd)
            fields.append(_record(here + name, inside))  # the one descended into
            path.append((f"{here}{name}/", inside, _listing(fd)))
    finally:
        os.close(fd)


def _listing(fd: int) -> list[tuple[str, os.stat_result]]:
    with os.scandir(fd) as listing:
        found = sorted((e.name, e.stat(follow_symlinks=False)) for e in listing)
    return found[::-1]


def _record(path: str, info: os.stat_result) -> str:
    """One entry's seven fields, NUL-separated (no path holds a NUL)."""
    kind = _TYPES.get(stat.S_IFMT(info.st_mode), "?")
    return (
        f"{path}\0{kind}\0{stat.S_IMODE(info.st_mode):o}\0{info.st_size}\0{info.st_ino}"
        f"\0{info.st_mtime_ns}\0{info.st_ctime_ns}"
    )


def _read_seal(base: int, snapshot_id: str) -> bytes | None:
    try:
        fd = os.open(f"{snapshot_id}.seal", READ, dir_fd=base)
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
        return f"it is {kind(info)}, not a folder"
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
    from snakemake_executor_plugin_frozen.snapshot.extraction import DestinationError, extract_at

    try:
        extract_at(archive, copy, base, archive_sha256, read_only=True)
    except DestinationError as e:
        raise scratch_error(copy.parent.parent, e.error, f"extracting into {copy}") from e
    except SnapshotError as e:
        raise NodeError(f"snapshot {copy.name} from {archive}: {e}") from e


def remove_copy(base: int, snapshot_id: str) -> None:
    """Remove the copy, its seal, its empty leases folder and, last, its lock (held)."""
    discard(base, snapshot_id)
    with suppress(FileNotFoundError):
        os.unlink(f"{snapshot_id}.seal", dir_fd=base)
    with suppress(FileNotFoundError):
        os.rmdir(f"{snapshot_id}.leases", dir_fd=base)
    os.unlink(f"{snapshot_id}.lock", dir_fd=base)  # waiting jobs notice: see locked()
