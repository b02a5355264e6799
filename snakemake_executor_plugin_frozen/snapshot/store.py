"""The content-addressed store: ``<store>/<id>.tar.zst`` beside ``<id>.json``.

The JSON record is written after the archive is in place, so its presence means the
snapshot is complete; every file appears through a rename of a finished temporary file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from .manifest import Manifest
from .manifest_reader import parse_manifest
from .model import SnapshotError
from .probe import CACHEDIR_SIGNATURE, CACHEDIR_TAG, StatKey, stat_key

# The store's cache directory tag (see ``probe``): no selection or backup descends into it.
_TAG_TEXT = CACHEDIR_SIGNATURE + (
    b"\n# This folder holds snakemake-frozen code snapshots; backup and archiving tools\n"
    b"# that honour cache directory tags skip it: https://bford.info/cachedir/\n"
)


class Store:
    def __init__(self, path: Path) -> None:
        self.path = Path(os.path.abspath(path))

    def ensure(self) -> None:
        """Create the store (tagged, so no selection or backup ever descends into it)."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            if not (self.path / CACHEDIR_TAG).exists():
                self.write_atomic(self.path / CACHEDIR_TAG, _TAG_TEXT, 0o644)
        except OSError as e:
            raise SnapshotError(
                f"cannot create the snapshot store {self.path}: {e.strerror}"
            ) from e

    def archive_path(self, snapshot_id: str) -> Path:
        return self.path / f"{snapshot_id}.tar.zst"

    def record_path(self, snapshot_id: str) -> Path:
        return self.path / f"{snapshot_id}.json"

    def load_record(self, snapshot_id: str) -> Manifest | None:
        """The stored record of ``snapshot_id``, or None if that snapshot is not complete
        (or its record cannot be read)."""
        path = self.record_path(snapshot_id)
        try:
            record = parse_manifest(path.read_bytes(), path)
        except (OSError, SnapshotError):
            return None
        complete = record.archive_sha256 is not None and record.archive_bytes is not None
        if not complete or not self.archive_path(snapshot_id).is_file():
            return None
        return record

    def temp_path(self, suffix: str) -> Path:
        return self.path / f".tmp-{os.getpid()}-{os.urandom(6).hex()}{suffix}"

    def write_atomic(
        self, path: Path, data: bytes, mode: int = 0o600, *, durable: bool = True
    ) -> None:
        """Write ``path`` through a temporary file; ``mode`` exactly, whatever the umask
        (a ``CopyMode``'s group-read bit only with its group, see ``_grouped``).
        ``durable``: on disk before it replaces ``path`` (not needed for a cache whose loss
        or damage only costs reading the files again)."""
        tmp = self.temp_path(path.suffix)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            with open(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fchmod(f.fileno(), _grouped(f.fileno(), mode))
                if durable:
                    os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def stat_keys(self, snapshot_id: str) -> tuple[StatKey, StatKey] | None:
        """The stat keys of the archive and the record of ``snapshot_id``; None if either
        is missing."""
        try:
            return (
                stat_key(os.stat(self.archive_path(snapshot_id))),
                stat_key(os.stat(self.record_path(snapshot_id))),
            )
        except FileNotFoundError:
            return None

    def discard(self, snapshot_id: str) -> None:
        """Remove a damaged snapshot (record first: without it the archive counts as absent)."""
        with self.locked():
            self.record_path(snapshot_id).unlink(missing_ok=True)
            self.archive_path(snapshot_id).unlink(missing_ok=True)

    def restrict(self, snapshot_id: str, mode: int) -> None:
        """Take away the read bits ``mode`` lacks (a file of the snapshot became private),
        and every write bit (snapshots are read-only); never widen."""
        for path in (self.archive_path(snapshot_id), self.record_path(snapshot_id)):
            st = path.stat()
            current = stat.S_IMODE(st.st_mode)
            wanted = current & mode
            group = getattr(mode, "group", None)
            if wanted & 0o040 and group is not None and st.st_gid != group:
                # A copy of another group: no group read while its group changes, and
                # none after where the group cannot be changed.
                current = wanted & ~0o040
                path.chmod(current)
                with contextlib.suppress(OSError):
                    os.chown(path, -1, group, follow_symlinks=False)
                    wanted = current | 0o040
            if current != wanted:
                path.chmod(wanted)

    def clock_stamp(self) -> int:
        """The current time as this filesystem stamps files (its clock and granularity)."""
        tmp = self.temp_path(".stamp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            return os.fstat(fd).st_mtime_ns
        finally:
            os.close(fd)
            tmp.unlink()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        # Read-only is enough for flock, so the group's members can lock a store one of them
        # made under a umask that leaves the file group read-only; never through a link, and
        # a FIFO planted at the name cannot block the open.
        flags = os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(self.path / ".lock", flags, 0o644)
        try:
            with contextlib.suppress(OSError):
                # Filesystems without locks (NFS mounted nolock) lose the protection against
                # two packs of the same id finishing at the same moment, and the leases'
                # against gc (see leases.py).
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def commit(self, snapshot_id: str, archive: Path, record: bytes, mode: int) -> Manifest | None:
        """Move a finished archive in and write its record, both with ``mode``, unless
        ``snapshot_id`` is stored.

        Returns None when this call stored it, or the record of the pack that was first.
        """
        with self.locked():
            existing = self.load_record(snapshot_id)
            if existing is not None:
                return existing
            fd = os.open(archive, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                os.fchmod(fd, _grouped(fd, mode))
            finally:
                os.close(fd)
            os.replace(archive, self.archive_path(snapshot_id))
            self.write_atomic(self.record_path(snapshot_id), record, mode)
            return None


def _grouped(fd: int, mode: int) -> int:
    """``mode`` for the open file ``fd``, its group set first where ``mode`` is a
    ``CopyMode`` whose group-read bit is meant for one group (see ``entries.copy_mode``):
    the file is given that group, or, where it cannot be (the packer is not in it), the
    group-read bit is dropped. The file is private while its group changes."""
    group = getattr(mode, "group", None)
    if group is None or not mode & 0o040:
        return int(mode)
    try:
        st = os.fstat(fd)
        if st.st_gid != group:
            os.fchmod(fd, stat.S_IMODE(st.st_mode) & 0o700)
            os.fchown(fd, -1, group)
    except OSError:
        return int(mode) & ~0o040
    return int(mode)
