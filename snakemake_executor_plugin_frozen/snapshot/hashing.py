"""Content hashes, the stat cache that lets an unchanged tree skip them, and the snapshot id."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from .entries import FILE, LINK, Entry, stat_key
from .model import SnapshotError

CHUNK = 1 << 20
ID_PREFIX = b"snakemake-frozen snapshot v1\n"


def changed_error(path: str) -> SnapshotError:
    return SnapshotError(f"{path} changed while being packed; try again")


def read_verified(entry: Entry, sink: Callable[[bytes], object] | None = None) -> str:
    """sha256 of a file entry's content, each chunk also passed to ``sink``.

    The content must be exactly the version ``entry.key`` describes: a file that is
    replaced, grows, shrinks or is written to while being read is an error, never a
    silently short or mixed archive.
    """
    # A regular file must not have turned into a link since it was selected.
    flags = os.O_RDONLY | os.O_CLOEXEC | (0 if entry.outside else os.O_NOFOLLOW)
    try:
        fd = os.open(entry.source, flags)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ELOOP):  # gone, or replaced by a link
            raise changed_error(entry.path) from e
        raise SnapshotError(
            f"cannot read {entry.path}: {e.strerror}; fix its permissions or exclude it"
        ) from e
    digest = hashlib.sha256()
    remaining = entry.size
    try:
        while remaining:
            chunk = os.read(fd, min(remaining, CHUNK))
            if not chunk:
                break
            digest.update(chunk)
            if sink is not None:
                sink(chunk)
            remaining -= len(chunk)
        after = os.fstat(fd)
    except OSError as e:
        raise SnapshotError(f"cannot read {entry.path}: {e.strerror}") from e
    finally:
        os.close(fd)
    if remaining or stat_key(after) != entry.key:
        raise changed_error(entry.path)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError as e:
        raise SnapshotError(f"cannot read {path}: {e.strerror}") from e


def snapshot_id(entries: list[Entry], digests: dict[str, str], prefix: str = "") -> str:
    """sha256 over (path, type, mode, content sha256 or link target) in path order, and the
    archive prefix when there is one.

    Nothing else goes in: not mtimes, owners, the walk order, the root's location or the
    compression, so identical code has the identical id on any machine. Each field ends
    with a NUL, which no path or link target can contain, so the encoding is unambiguous.
    The prefix (the last folder names of the root, only with files outside it) decides
    where the archive stores everything, so one id must never stand for two layouts.
    """
    records = "".join(
        f"{e.path}\0{e.kind}\0{e.mode:o}\0{e.target if e.kind == LINK else digests[e.path]}\0"
        for e in sorted(entries, key=lambda e: e.path)
    )
    h = hashlib.sha256(ID_PREFIX)
    if prefix:
        # An empty first field marks it: no record has one (no path is empty).
        h.update(f"\0{prefix}\0".encode("utf-8", "surrogateescape"))
    h.update(records.encode("utf-8", "surrogateescape"))
    return h.hexdigest()


class StatCache:
    """path -> (size, mtime_ns, ctime_ns, inode, sha256) of one code root, kept in the store.

    A JSON file (no pickle: the store may be shared), replaced atomically, one per code
    root. ctime is in the key because no tool can set it back, so ``touch -d`` or
    ``rsync -t`` cannot fake an unchanged file. An entry is only recorded when the file's
    mtime and ctime are older than a clock stamp taken on the store's filesystem before
    reading: an edit in the same clock tick as the read would otherwise keep its stat and
    hide behind a stale hash (git's "racily clean" problem). This assumes the store shares
    the tree's filesystem clock, as the default store inside the root does.
    """

    VERSION = 1

    def __init__(self, path: Path, root: str, entries: dict[str, list]) -> None:
        self.path = path
        self.root = root
        self._entries = entries
        self._changed = False

    @classmethod
    def load(cls, store: Path, root: str) -> StatCache:
        name = hashlib.sha256(os.fsencode(root)).hexdigest()[:16]
        path = store / f"statcache-{name}.json"
        try:
            data = json.loads(path.read_bytes())
        except (OSError, ValueError):
            data = {}
        fresh = isinstance(data, dict) and data.get("version") == cls.VERSION
        entries = data.get("entries") if fresh and data.get("root") == root else None
        return cls(path, root, entries if isinstance(entries, dict) else {})

    def lookup(self, entry: Entry) -> str | None:
        cached = self._entries.get(entry.path)
        if cached is not None and entry.key is not None and tuple(cached[:4]) == entry.key:
            return cached[4]
        return None

    def record(self, entries: list[Entry], digests: dict[str, str], stamp_ns: int) -> None:
        """Keep exactly the current files, leaving out those modified at or after ``stamp_ns``."""
        fresh = {}
        for e in entries:
            if e.kind == FILE and e.key is not None and max(e.key[1], e.key[2]) < stamp_ns:
                fresh[e.path] = [*e.key, digests[e.path]]
        if fresh != self._entries:
            self._entries = fresh
            self._changed = True

    def save(self, write: Callable[[Path, bytes], None]) -> None:
        if self._changed:
            data = {"version": self.VERSION, "root": self.root, "entries": self._entries}
            write(self.path, json.dumps(data, separators=(",", ":")).encode())
            self._changed = False
