"""Leases: a run's hold on the stored snapshot it runs from, so that no gc removes it.

A run packs its snapshot (or finds it already stored) and then uses the store's archive for
as long as it submits jobs; ``gc`` removes old store entries. Judged from the journal alone
that was agreement by timing: gc could read the journal before the run recorded itself, the
run could still see its archive, then gc removed it and the run's jobs failed with "No such
file". Runs and gc now agree through locks:

- ``<store>/leases/<run id>``: a regular file naming the run's snapshot, open in the run's
  main process with a shared ``flock`` for the run's whole life (``hold``); ``release``
  removes it at shutdown, and the kernel drops the flock when the process ends, however it
  ends, so a crashed run leaves a lease anyone can recognise as stale.
- The lease is taken *before* the pack, naming no snapshot yet: while a run packs, gc keeps
  every snapshot (the pack may be reading a stored one to reuse it). Once packed, the lease
  names the id and the store is checked to still hold it; an entry something removed anyway
  (a gc that reads no leases, a hand-run rm) is packed again.
- Both happen under the store's lock (``Store.locked``), and gc holds that lock from reading
  the leases until it has removed what it removes (``judge``): a run either leases before
  gc looks, or waits for gc to finish and then finds what gc removed gone.
- gc tries to flock each lease exclusively without waiting, which succeeds only when no
  process holds it: stale, removed. A held lease keeps its snapshot (and its run). gc
  inside a run (``--frozen-gc-*``) opens the run's own lease anew, and flocks of two opens
  conflict, so the run's own snapshot is kept too (POSIX record locks would not do: any
  close in the process would drop them).

What lies in the folder is trusted no further than it can be safely: names must be run ids
(``journal.valid_run``); no link is followed and only regular files are opened (a FIFO or a
device never is), at most ``MAX_BYTES`` of one are read. A folder that other users could
write, or that is no folder, is refused by a run, and gc, unable to judge it, keeps every
snapshot. Whatever gc cannot judge (a lease it cannot open, one naming no snapshot, a
filesystem without flock) keeps snapshots, never removes one, and a note says so.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..dirfd import FOLDER, file_kind, is_at
from ..journal import valid_run, valid_snapshot
from .model import SnapshotError
from .store import Store

FOLDER_NAME = "leases"
# Packs of one run's snapshot before giving up: while its lease is held, only something
# that reads no leases (an older gc, a hand-run rm) removes a stored snapshot.
ATTEMPTS = 3
MAX_BYTES = 4096  # a lease is about 150 bytes: anything longer was not written by a run
_READ = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # O_NONBLOCK: in case of a FIFO after all
_NEW = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

Pack = Callable[[str | None], str]  # packs (given the id lost, if any), returns the id


class _NotRegular(Exception):
    """An entry that is no regular file (a link, a folder, a FIFO, ...): never opened."""


def _folder_mode(store_mode: int) -> int:
    """The leases folder's mode: the store's owner and group bits (a store shared by a
    group holds the leases of every member's runs), never other users'; with group bits
    also set-group-ID, so that every lease is the group's, readable by every member's gc."""
    group = store_mode & 0o070
    return 0o700 | group | (stat.S_ISGID if group else 0)


def _lease_mode(folder_mode: int) -> int:
    """A lease's mode: the owner's, and the group's where the folder is the group's
    (another member's gc opens it to flock it; over NFS an exclusive flock needs it open
    for writing)."""
    return 0o600 | (folder_mode & 0o060)


def _distrust(folder: os.stat_result, store: os.stat_result) -> str | None:
    """Why the leases folder cannot be trusted to keep leases (None: it can): whoever may
    write it may remove a running run's lease, so only those who may write the store."""
    if folder.st_mode & 0o002:
        return "is writable by every user"
    shared = store.st_mode & 0o020 and folder.st_gid == store.st_gid
    if folder.st_uid not in (os.geteuid(), store.st_uid) and not shared:
        return f"belongs to another user (uid {folder.st_uid}) than the store"
    return None


def _open_folder(store: Path, create: bool) -> int | None:
    """``<store>/leases`` open (made with the store's modes if ``create``), once the checks
    of ``_distrust`` pass; None where it (or the store) does not exist and ``create`` is off."""
    where = store / FOLDER_NAME
    try:
        store_fd = os.open(store, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        if not create:
            return None
        raise SnapshotError(f"the snapshot store {store} is missing") from None
    except OSError as e:
        raise SnapshotError(f"cannot open the snapshot store {store}: {e.strerror}") from None
    try:
        store_info = os.fstat(store_fd)
        made = False
        if create:
            with contextlib.suppress(FileExistsError):
                os.mkdir(FOLDER_NAME, 0o700, dir_fd=store_fd)
                made = True
        fd = os.open(FOLDER_NAME, FOLDER, dir_fd=store_fd)
    except FileNotFoundError:
        return None
    except OSError as e:
        kind = _kind(store_fd, FOLDER_NAME)
        if kind is None or kind == "a folder":  # a folder this user may not open or make
            raise SnapshotError(f"cannot open {where}: {e.strerror}; fix its permissions") from None
        raise SnapshotError(
            f"{where} is {kind}, not a folder: it cannot hold leases; remove it "
            "(the next run makes it anew)"
        ) from None
    finally:
        os.close(store_fd)
    if made:  # ours, just made: the store's group and modes, whatever the umask
        with contextlib.suppress(OSError):
            os.fchown(fd, -1, store_info.st_gid)
        # Not a member of the store's group: no group bits for a group of our own.
        same = os.fstat(fd).st_gid == store_info.st_gid
        os.fchmod(fd, _folder_mode(store_info.st_mode if same else 0o700))
    problem = _distrust(os.fstat(fd), store_info)
    if problem is not None:
        os.close(fd)
        raise SnapshotError(
            f"{where} {problem}: it cannot be trusted to keep leases; remove it (rm -r "
            f"{where}; the next run makes it anew)"
        )
    return fd


def _kind(folder: int, name: str) -> str | None:
    """What the entry ``name`` of ``folder`` is, for a message (None: cannot tell)."""
    try:
        return file_kind(os.stat(name, dir_fd=folder, follow_symlinks=False))
    except OSError:
        return None


class Lease:
    """A run's lease, ``<store>/leases/<run id>``, open and flocked until ``release``."""

    def __init__(self, path: Path, folder: int) -> None:
        """Make the lease file (nothing there is taken over, not even a lease of its own);
        ``folder``, the leases folder open, is the lease's from now on."""
        self.path = path
        self._folder = folder
        try:
            self._fd = os.open(path.name, _NEW, 0o600, dir_fd=folder)
        except OSError as e:
            kind = _kind(folder, path.name)
            os.close(folder)
            if isinstance(e, FileExistsError):
                raise SnapshotError(
                    f"cannot make the lease {path}: there is {kind} of that name, and run "
                    "ids are unique, so something else put it there; remove it and start "
                    "the run again"
                ) from None
            raise SnapshotError(f"cannot make the lease {path}: {e.strerror}") from None
        os.fchmod(self._fd, _lease_mode(os.fstat(folder).st_mode))  # whatever the umask
        # False on a filesystem without flock: gc then counts the lease as held, and a
        # lease left by a crash keeps its snapshot until someone removes it.
        self.locked = _flock(self._fd, fcntl.LOCK_SH)

    def name(self, snapshot_id: str | None) -> None:
        """Let the lease name ``snapshot_id`` (None: packing, which keeps every snapshot);
        the pid and host are for people reading it."""
        record = {"snapshot": snapshot_id, "pid": os.getpid(), "host": socket.gethostname()}
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, json.dumps(record, sort_keys=True).encode() + b"\n", 0)

    def release(self) -> None:
        """Remove the lease (if it is still this file) and let go of it; twice is once."""
        if self._fd < 0:
            return
        with contextlib.suppress(OSError):  # a lease left behind is removed by a gc
            if is_at(self._fd, self._folder, self.path.name):
                os.unlink(self.path.name, dir_fd=self._folder)
        os.close(self._fd)
        os.close(self._folder)
        self._fd = -1


def _flock(fd: int, operation: int) -> bool:
    """Whether ``fd`` was locked; False on a filesystem without flock (NFS without its lock
    service, Lustre mounted noflock) too."""
    try:
        fcntl.flock(fd, operation)
    except OSError:
        return False
    return True


def hold(store: Store, run_id: str, pack: Pack, attempts: int = ATTEMPTS) -> Lease:
    """The run ``run_id``'s lease, held until ``Lease.release`` (or the end of the process)
    on the snapshot ``pack`` packs: taken before the pack, naming the id after it. ``pack``
    is called again (given the id lost) while the store lost the entry before the lease
    named it."""
    if not valid_run(run_id):
        raise SnapshotError(
            f"cannot lease a snapshot for run {run_id!r}: a run id is one file name "
            "(letters, digits, '_', '.', '-')"
        )
    store.ensure()
    where = store.path / FOLDER_NAME
    with store.locked():  # gc judges the leases under it: it sees this one, or is done
        folder = _open_folder(store.path, create=True)
        if folder is None:
            raise SnapshotError(f"{where} vanished as it was made; start the run again")
        lease = Lease(where / run_id, folder)
        lease.name(None)
    lost: str | None = None
    try:
        for _ in range(attempts):
            snapshot_id = pack(lost)
            with store.locked():
                lease.name(snapshot_id)
                if store.load_record(snapshot_id) is not None:
                    return lease
            lost = snapshot_id
    except BaseException:
        lease.release()
        raise
    lease.release()
    assert lost is not None  # attempts >= 1
    raise SnapshotError(
        f"the snapshot store {store.path} lost snapshot {lost[:12]} {attempts} times "
        "between packing it and leasing it: something removes snapshots without reading "
        f"the leases in {where} (an older snakemake-frozen gc, a hand-run rm); stop it and "
        "start the run again"
    )


class _Held(Store):
    """The store while this process holds its lock (``judge``): removing through
    ``discard`` must not take it again, since a second flock of one file through another
    open waits for the first, even within one process."""

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        yield


@dataclass
class InUse:
    """The leases as gc judged them: which run holds a lease on which snapshot."""

    folder: Path
    store: Store  # remove store entries through this one while judging (its lock is held)
    runs: dict[str, str] = field(default_factory=dict)  # run id -> snapshot id, held leases
    judged: bool = True  # False: some lease could not be judged; every snapshot is kept
    notes: list[str] = field(default_factory=list)

    def protects(self, snapshot_id: str) -> bool:
        return not self.judged or snapshot_id in self.runs.values()

    def why(self, snapshot_id: str) -> str:
        runs = sorted(run for run, held in self.runs.items() if held == snapshot_id)
        if not runs:
            return f"the leases in {self.folder} cannot be judged (see above)"
        return f"in use by run {', '.join(runs)} (its lease in {self.folder} is held)"

    def cannot_judge(self, why: str) -> None:
        self.judged = False
        self.notes.append(f"kept every snapshot: {why}")


@contextlib.contextmanager
def judge(store: Store, clean: bool) -> Iterator[InUse]:
    """The leases of ``store``, judged under the store's lock, which stays held until the
    block ends: no run can lease what the block removes through ``InUse.store``.
    ``clean``: take the lock and remove stale leases (off: a dry run, which only tells)."""
    in_use = InUse(store.path / FOLDER_NAME, store)
    with contextlib.ExitStack() as stack:
        if clean and store.path.is_dir():  # without a store there is nothing to protect
            stack.enter_context(store.locked())
            in_use.store = _Held(store.path)
        try:
            folder = _open_folder(store.path, create=False)
        except SnapshotError as e:
            folder = None
            in_use.cannot_judge(str(e))
        if folder is not None:
            stack.callback(os.close, folder)
            try:
                names = sorted(os.listdir(folder))
            except OSError as e:
                names = []
                in_use.cannot_judge(f"cannot read {in_use.folder}: {e.strerror}")
            for name in names:
                _judge_one(folder, name, in_use, clean)
        yield in_use


def _judge_one(folder: int, name: str, in_use: InUse, clean: bool) -> None:
    path = in_use.folder / name
    if not valid_run(name):
        in_use.notes.append(f"ignored {path}: its name is no run id; left it untouched")
        return
    try:
        fd = _open_regular(folder, name)
    except _NotRegular as e:
        in_use.notes.append(f"ignored {path}: it is {e}, not a lease; left it untouched")
        return
    except FileNotFoundError:
        return  # released meanwhile
    except OSError as e:
        in_use.cannot_judge(
            f"cannot open the lease {path} ({e.strerror}); make it readable, or remove it "
            f"if run {name} is over"
        )
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # held: its run is going
        except OSError as e:
            in_use.notes.append(
                f"cannot lock the lease {path} ({e.strerror}; a filesystem without flock?): "
                f"counted as held; remove it by hand once run {name} is over"
            )
        else:
            _remove_stale(fd, folder, name, in_use, clean)
            return
        snapshot = _named(fd)
    finally:
        os.close(fd)
    if snapshot is None:
        in_use.cannot_judge(
            f"run {name} holds a lease naming no snapshot ({path}): it is packing, or the "
            "lease was not written by a run"
        )
    else:
        in_use.runs[name] = snapshot


def _open_regular(folder: int, name: str) -> int:
    """The regular file ``name`` of ``folder``, open read-write if allowed (else read-only:
    a local flock needs no more), never through a link; raises ``_NotRegular`` without
    opening anything else."""
    info = os.stat(name, dir_fd=folder, follow_symlinks=False)
    if not stat.S_ISREG(info.st_mode):
        raise _NotRegular(file_kind(info))
    try:
        fd = os.open(name, os.O_RDWR | _READ, dir_fd=folder)
    except PermissionError:
        fd = os.open(name, os.O_RDONLY | _READ, dir_fd=folder)
    opened = os.fstat(fd)
    if (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino):  # replaced meanwhile
        os.close(fd)
        raise _NotRegular(file_kind(opened))
    return fd


def _remove_stale(fd: int, folder: int, name: str, in_use: InUse, clean: bool) -> None:
    """The lease ``name`` open as ``fd`` is held by no process: its run ended without
    releasing it (killed, crashed)."""
    path = in_use.folder / name
    if not clean:
        in_use.notes.append(f"would remove the stale lease {path}: run {name} is gone")
        return
    try:
        if is_at(fd, folder, name):
            os.unlink(name, dir_fd=folder)
    except OSError as e:
        in_use.notes.append(f"left the stale lease {path} ({e.strerror}); it keeps nothing")
        return
    in_use.notes.append(f"removed the stale lease {path}: run {name} is gone")


def _named(fd: int) -> str | None:
    """The snapshot id the lease open as ``fd`` names (None: none, or it is not a lease)."""
    try:
        data = os.pread(fd, MAX_BYTES + 1, 0)
        record = json.loads(data) if len(data) <= MAX_BYTES else None
    except (OSError, ValueError):
        return None
    snapshot = record.get("snapshot") if isinstance(record, dict) else None
    return snapshot if isinstance(snapshot, str) and valid_snapshot(snapshot) else None
