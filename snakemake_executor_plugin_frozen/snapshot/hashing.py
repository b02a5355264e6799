"""Content hashes, the stat cache that lets an unchanged tree skip them, and the snapshot id."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Self

from .entries import FILE, LINK, Entry
from .model import SnapshotError
from .probe import StatKey, stat_key

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
    compression, so identical code has the identical id on any machine. The prefix (the
    last folder names of the root, only with files outside it) decides where the archive
    stores everything, so one id must never stand for two layouts.
    """
    records = (
        (e.path, e.kind, e.mode, e.target if e.kind == LINK else digests[e.path]) for e in entries
    )
    return id_of(records, prefix)


def id_of(records: Iterable[tuple[str, str, int, str]], prefix: str = "") -> str:
    """The id of the files ``records`` (path, type, mode, content sha256 or link target),
    as ``snapshot_id`` defines it: also how a manifest's file list is checked against its id.
    Each field ends with a NUL, which no path or link target can contain, so the encoding
    is unambiguous."""
    text = "".join(
        f"{path}\0{kind}\0{mode:o}\0{content}\0"
        for path, kind, mode, content in sorted(records, key=lambda r: r[0])
    )
    h = hashlib.sha256(ID_PREFIX)
    if prefix:
        # An empty first field marks it: no record has one (no path is empty).
        h.update(f"\0{prefix}\0".encode("utf-8", "surrogateescape"))
    h.update(text.encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def _cache_path(store: Path, root: str, suffix: str) -> Path:
    """The file of one code root's cache in ``store``, one per user: a shared store holds
    each user's own (see ``_load_json``)."""
    digest = hashlib.sha256(os.fsencode(root)).hexdigest()[:16]
    return store / f"statcache-{os.geteuid()}-{digest}{suffix}"


def _load_json(path: Path, root: str, version: int) -> dict:
    """A cache file's content, or {} if it is missing, damaged, of another version or of
    another code root, or not this user's own private file.

    The caches vouch for content without reading it (a file's sha256, an archive found
    intact), so only a cache nobody else could have written is believed: whoever can write
    a shared store could otherwise vouch for a forged archive. Another user cannot make a
    file that this user owns, nor write to one that is not group or world writable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return {}
    with open(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
            return {}
        try:
            data = json.loads(f.read())
        except (OSError, ValueError):
            return {}
    fresh = isinstance(data, dict) and data.get("version") == version and data.get("root") == root
    return data if fresh else {}


class _OwnCache:
    """A cache of one code root in the store: a JSON file of this user's own (no pickle:
    the store may be shared), replaced atomically; believed only as ``_load_json`` says."""

    VERSION = 1
    SUFFIX: str  # of its file's name (``_cache_path``)

    def __init__(self, path: Path, root: str) -> None:
        self.path = path
        self.root = root
        self._changed = False

    @classmethod
    def load(cls, store: Path, root: str) -> Self:
        path = _cache_path(store, root, cls.SUFFIX)
        return cls(path, root, _load_json(path, root, cls.VERSION))

    def content(self) -> dict:
        raise NotImplementedError

    def save(self, write: Callable[[Path, bytes], None]) -> None:
        if self._changed:
            write(self.path, json.dumps(self.content(), separators=(",", ":")).encode())
            self._changed = False


class StatCache(_OwnCache):
    """path -> (size, mtime_ns, ctime_ns, inode, sha256) of one code root, kept in the store.

    ctime is in the key because no tool can set it back, so ``touch -d`` or
    ``rsync -t`` cannot fake an unchanged file. An entry is only recorded when the file's
    mtime and ctime are older than a clock stamp taken on the store's filesystem before
    reading: an edit in the same clock tick as the read would otherwise keep its stat and
    hide behind a stale hash (git's "racily clean" problem). This assumes the store shares
    the tree's filesystem clock, as the default store inside the root does.
    """

    SUFFIX = ".json"

    def __init__(self, path: Path, root: str, content: dict) -> None:
        super().__init__(path, root)
        entries = content.get("entries")
        self._entries: dict[str, list] = entries if isinstance(entries, dict) else {}

    def lookup(self, entry: Entry) -> str | None:
        cached = self._entries.get(entry.path)
        if cached is not None and entry.key is not None and tuple(cached[:4]) == entry.key:
            return cached[4]
        return None

    def split(self, entries: list[Entry]) -> tuple[dict[str, str], list[Entry]]:
        """The sha256 of each file entry the cache vouches for, and the other file entries."""
        digests: dict[str, str] = {}
        misses = []
        for entry in entries:
            if entry.kind == FILE:
                cached = self.lookup(entry)
                if cached is None:
                    misses.append(entry)
                else:
                    digests[entry.path] = cached
        return digests, misses

    def record(self, entries: list[Entry], digests: dict[str, str], stamp_ns: int) -> None:
        """Keep exactly the current files, leaving out those modified at or after ``stamp_ns``."""
        fresh = {}
        for e in entries:
            if e.kind == FILE and e.key is not None and max(e.key[1], e.key[2]) < stamp_ns:
                fresh[e.path] = [*e.key, digests[e.path]]
        if fresh != self._entries:
            self._entries = fresh
            self._changed = True

    def forget(self) -> None:
        """Drop every entry, on disk too: the cache vouched for content that is not there."""
        self.path.unlink(missing_ok=True)
        self._entries, self._changed = {}, False

    def content(self) -> dict:
        return {"version": self.VERSION, "root": self.root, "entries": self._entries}


class ArchiveCheck(_OwnCache):
    """The stat of the last stored snapshot's archive and record of one code root, when
    this user wrote that archive or proved it to hold exactly the tree's files (``earn``):
    while both keep that stat (ctime included, which nobody can set back), a pack need not
    read the archive again."""

    SUFFIX = ".archive.json"

    def __init__(self, path: Path, root: str, content: dict) -> None:
        super().__init__(path, root)
        self._known = content

    def stored(self, snapshot: str, keys: tuple[StatKey, StatKey]) -> tuple[str, int] | None:
        """(sha256, bytes) of the archive of ``snapshot`` if it was known intact while its
        archive and record had the stat ``keys`` they have now."""
        known = self._known
        if known.get("id") != snapshot or known.get("keys") != [list(k) for k in keys]:
            return None
        return known["archive_sha256"], known["archive_bytes"]

    def know(
        self,
        snapshot: str,
        keys: tuple[StatKey, StatKey],
        stored: tuple[str, int],
        read_after_ns: int | None,
    ) -> None:
        """Note that the archive of ``snapshot`` had the ``stored`` (sha256, bytes) of its
        record while archive and record had the stat ``keys``.

        ``read_after_ns``: the clock stamp taken before the archive was read to find that;
        not noted if either file was modified at or after it (a change during the read could
        keep the stat, as for files). None for an archive this pack wrote, hashed as it was
        written: only a change by someone else within the clock tick of its renaming would
        go unseen here, and not by the nodes, which check the sha256 before extracting.
        """
        if read_after_ns is not None and any(max(k[1], k[2]) >= read_after_ns for k in keys):
            return
        sha256, size = stored
        self._known = {
            "version": self.VERSION,
            "root": self.root,
            "id": snapshot,
            "keys": [list(k) for k in keys],
            "archive_sha256": sha256,
            "archive_bytes": size,
        }
        self._changed = True

    def content(self) -> dict:
        return self._known
