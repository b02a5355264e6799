"""``pack``: select, hash through the stat cache, and store the snapshot unless it is stored."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .archive_format import MAX_DEPTH, shortened
from .archive_write import ArchiveWriter, compression_options
from .earn import earn, expected_members
from .entries import LINK, Entry, archive_prefix, check_size, copy_mode, inspect
from .git import GitBatch, exclude_pathspecs
from .hashing import ArchiveCheck, StatCache, changed_error, read_verified, snapshot_id
from .manifest import Manifest, record_bytes
from .model import DEFAULT_SETTINGS, PackResult, SelectionSettings, SnapshotError
from .provenance import (
    diffed,
    environment,
    environment_fields,
    file_records,
    git_record,
    host,
    now,
    selection_record,
    start_git_record,
    user,
)
from .select import ADDED_BACK, Selection, select
from .store import Store

# When the stat cache vouches for most of the content, the other files are hashed first, so
# that a tree changed back to a stored snapshot is not archived again; their content read
# is kept for the archive up to this many bytes (beyond it they are read and hashed again).
KEEP_BYTES = 64 * 1024 * 1024

Stored = tuple[str, int]  # a stored archive's sha256 and size


def _hash_first(misses: list[Entry], digests: dict[str, str]) -> dict[str, bytes]:
    """Hash the ``misses`` into ``digests``; returns the content read, within KEEP_BYTES."""
    contents: dict[str, bytes] = {}
    budget = KEEP_BYTES
    for entry in misses:
        if entry.size <= budget:
            chunks: list[bytes] = []
            digests[entry.path] = read_verified(entry, chunks.append)
            contents[entry.path] = b"".join(chunks)
            budget -= entry.size
        else:
            digests[entry.path] = read_verified(entry)
    return contents


def _mostly_vouched(misses: list[Entry], entries: list[Entry]) -> bool:
    """The ``misses`` hold at most a quarter of the bytes: hashing them first costs little.
    (Else the snapshot is almost surely new: its files are hashed while archived.)"""
    return 4 * sum(e.size for e in misses) <= sum(e.size for e in entries)


class _WhileGitWalks:
    """What a pack does while git walks the tree (``select``'s ``meanwhile``): the lstat of
    the tracked files, for ``inspect``, and loading the stat cache."""

    def __init__(self, root: str, store: Store) -> None:
        self.root = root
        self.store = store
        self.stats: dict[str, os.stat_result] = {}
        self._cache: StatCache | None = None

    def __call__(self, tracked: list[str]) -> None:
        self._cache = StatCache.load(self.store.path, self.root)
        for path in tracked:
            try:
                st = os.lstat(f"{self.root}/{path}")
            except OSError:
                continue  # inspect tries again, and tells why it fails
            self.stats[path] = st

    def cache(self) -> StatCache:
        """The stat cache, loaded now if git gave no occasion (outside git)."""
        if self._cache is None:
            self._cache = StatCache.load(self.store.path, self.root)
        return self._cache


@dataclass
class _Packing:
    """One pack of the inspected ``entries`` into ``store``."""

    store: Store
    selection: Selection
    settings: SelectionSettings
    entries: list[Entry]
    prefix: str
    level: int
    warnings: list[str]
    cache: StatCache
    archive_check: ArchiveCheck
    environment_extra: Mapping[str, object]

    def run(self) -> tuple[str, Stored, bool]:
        """The id, the stored archive and whether this pack stored it."""
        result = self._pack()
        self._save_cache()
        return result

    def _pack(self) -> tuple[str, Stored, bool]:
        digests, misses = self.cache.split(self.entries)
        contents: dict[str, bytes] = {}
        if misses:
            stamp = self.store.clock_stamp()
            if not _mostly_vouched(misses, self.entries):
                return self._write_new(stamp)
            contents = _hash_first(misses, digests)
            self.cache.record(self.entries, digests, stamp)
            self._save_cache()
        snapshot = snapshot_id(self.entries, digests, self.prefix)
        stored = self._stored(snapshot, digests)
        if stored is not None:
            return snapshot, stored, False
        return self._write_known(snapshot, digests, contents)

    def _save_cache(self) -> None:
        # Not made durable: every version of the caches, even a stale one, only vouches
        # for stats it saw with the content it hashed (damage makes it unreadable).
        def write(path: Path, data: bytes) -> None:
            self.store.write_atomic(path, data, durable=False)

        self.cache.save(write)
        self.archive_check.save(write)

    def _stored(self, snapshot: str, digests: dict[str, str]) -> Stored | None:
        """The stored archive of ``snapshot`` (its mode narrowed to the files'), if it is
        stored and earns its id: it holds exactly the tree's files (``earn``). It is only
        read again when its stat changed since this user found that."""
        keys = self.store.stat_keys(snapshot)
        if keys is None:
            return None
        stored = self.archive_check.stored(snapshot, keys)
        if stored is None:
            stamp = self.store.clock_stamp()
            record = self.store.load_record(snapshot)
            if record is None:
                return None
            expected = expected_members(self.entries, digests, self.prefix)
            try:
                earn(self.store.archive_path(snapshot), record, snapshot, expected)
            except SnapshotError as e:  # NotEarned, or not readable as an archive at all
                self._replace(snapshot, str(e))
                return None
            stored = record.archive_sha256, record.archive_bytes
            self.archive_check.know(snapshot, keys, stored, stamp)
        self.store.restrict(snapshot, copy_mode(self.entries))
        return stored

    def _replace(self, snapshot: str, problem: str) -> None:
        """Discard the stored entry of ``snapshot`` that does not hold the tree's files, so
        that it is made again; one this user may not remove is a refusal."""
        archive = self.store.archive_path(snapshot)
        try:
            self.store.discard(snapshot)
        except OSError as e:
            raise SnapshotError(
                f"the stored snapshot {archive} does not hold this tree's code ({problem}) and "
                f"cannot be replaced ({e.strerror}): it is damaged or forged; ask its owner "
                f"(uid {_owner(archive)}) or an administrator to remove it and its .json, then "
                "run again"
            ) from e
        self.warnings.append(
            f"the stored snapshot {archive} did not hold this tree's code ({problem}): it was "
            "damaged or forged, and was made again from the tree"
        )

    def _write_known(
        self, snapshot: str, digests: dict[str, str], contents: dict[str, bytes]
    ) -> tuple[str, Stored, bool]:
        """Archive and store ``snapshot``, whose id is known: every file must still have its
        ``digests`` entry (the ``contents`` already read come from memory)."""
        with self._new_archive() as (writer, tmp, git):
            archived = self._archive(writer, digests, contents)
            writer.close_members()
            written, earlier = self._commit(writer, tmp, git, snapshot, archived)
        return self._committed(snapshot, written, earlier)

    def _write_new(self, stamp: int) -> tuple[str, Stored, bool]:
        """Archive and store the snapshot whose id is not known yet: every file is read,
        hashed and compressed in one pass, the cache records what was read (``stamp``: see
        ``StatCache``), and the id comes last: if it is stored after all, nothing is."""
        with self._new_archive() as (writer, tmp, git):
            archived = self._archive(writer, None, {})
            writer.close_members()
            self.cache.record(self.entries, archived, stamp)
            self._save_cache()
            snapshot = snapshot_id(self.entries, archived, self.prefix)
            stored = self._stored(snapshot, archived)
            if stored is not None:
                return snapshot, stored, False
            written, earlier = self._commit(writer, tmp, git, snapshot, archived)
        return self._committed(snapshot, written, earlier)

    @contextmanager
    def _new_archive(self) -> Iterator[tuple[ArchiveWriter, Path, GitBatch | None]]:
        """A writer of a new archive at a temporary path of the store, and the git record
        started meanwhile; afterwards the writer is closed, the temporary file gone (moved
        in, or removed) and git waited for, whatever happened."""
        git = self._start_git()
        tmp = self.store.temp_path(".tar.zst")
        writer = ArchiveWriter(tmp, self.level, self.prefix)
        try:
            yield writer, tmp, git
        finally:
            writer.abort()
            tmp.unlink(missing_ok=True)
            if git is not None:
                git.wait()

    def _commit(
        self,
        writer: ArchiveWriter,
        tmp: Path,
        git: GitBatch | None,
        snapshot: str,
        archived: dict[str, str],
    ) -> tuple[Stored, Manifest | None]:
        """Finish the archive with its manifest and move it into the store with its record;
        returns what was written, and the record of an earlier pack that stored it first."""
        selection, entries = self.selection, self.entries
        manifest = Manifest(
            id=snapshot,
            files=file_records(entries, archived),
            created=now(),
            user=user(),
            host=host(),
            root=selection.root,
            code_root_in_archive=self.prefix,
            file_count=len(entries),
            bytes=sum(e.size for e in entries),
            selection=selection_record(selection, self.settings, self.store.path, self.warnings),
            git=None
            if git is None
            else git_record(git, selection.root, selection.untracked, diffed(selection, entries)),
            environment=environment(self.environment_extra),
        ).encode()
        archive_sha256, archive_bytes = writer.finish(manifest)
        record = record_bytes(manifest, archive_sha256, archive_bytes)
        earlier = self.store.commit(snapshot, tmp, record, copy_mode(self.entries))
        return (archive_sha256, archive_bytes), earlier

    def _committed(
        self, snapshot: str, written: Stored, earlier: Manifest | None
    ) -> tuple[str, Stored, bool]:
        if earlier is not None:
            return snapshot, (earlier.archive_sha256, earlier.archive_bytes), False
        keys = self.store.stat_keys(snapshot)
        if keys is not None:
            self.archive_check.know(snapshot, keys, written, None)
        return snapshot, written, True

    def _start_git(self) -> GitBatch | None:
        if self.selection.discovery.mode != "git":
            return None
        rules = self.selection.rules
        excludes = exclude_pathspecs(rules.folder_names, rules.excluded_dirs)
        return start_git_record(self.selection.root, excludes, self.store.path)

    def _archive(
        self, writer: ArchiveWriter, expected: dict[str, str] | None, contents: dict[str, bytes]
    ) -> dict[str, str]:
        """Every entry into ``writer``; returns the sha256 of each file as archived."""
        archived: dict[str, str] = {}
        for entry in self.entries:
            if entry.kind == LINK:
                writer.add_link(entry)
                continue
            data = contents.get(entry.path)
            if data is not None:
                assert expected is not None
                writer.add_read(entry, data)
                archived[entry.path] = expected[entry.path]
                continue
            archived[entry.path] = writer.add_file(entry)
            if expected is not None and archived[entry.path] != expected[entry.path]:
                # Same stat, other content: the cache vouched for an older version.
                # Forget it, so that trying again hashes everything afresh.
                self.cache.forget()
                raise changed_error(entry.path)
        return archived


def _check_depth(entries: list[Entry]) -> None:
    """Refuse a file deeper than any extraction accepts (``MAX_DEPTH``): the jobs would
    fail on the node, one by one, long after submission."""
    deepest = max(entries, key=lambda e: e.path.count("/"), default=None)
    depth = deepest.path.count("/") + 1 if deepest is not None else 0
    if deepest is not None and depth > MAX_DEPTH:
        raise SnapshotError(
            f"{shortened(deepest.path)} lies {depth} folders deep, deeper than the {MAX_DEPTH} "
            "a snapshot may hold; leave it out (--exclude or .frozenignore)"
        )


def _owner(path: Path) -> str:
    try:
        return str(os.lstat(path).st_uid)
    except OSError:
        return "?"


def pack(
    root: Path,
    store: Path,
    settings: SelectionSettings = DEFAULT_SETTINGS,
    explicit: Iterable[Path] = (),
    level: int = 3,
    *,
    allow_outside: bool = False,
    environment_extra: Mapping[str, object] | None = None,
) -> PackResult:
    """Snapshot the code under ``root`` into ``store`` (created if missing).

    ``explicit`` files (absolute, or relative to the current directory) are always packed
    unless they lie in a hard-excluded folder; one outside ``root`` is an error, unless
    ``allow_outside``: then it is packed as ``../``-relative content, and the archive stores
    the code root under ``PackResult.prefix`` (see ``entries.archive_prefix``). An id that
    is already stored is not written again, and an unchanged tree reads no file contents.
    ``environment_extra`` (``programs``, ``conda_envs``: see ``record/environment.py``) goes
    into the manifest's top level; it does not change the id, which depends on the files
    only, so a snapshot already stored keeps the manifest, and this record, of its first pack.
    Every refusal is a SnapshotError.
    """
    if not os.path.isdir(root):
        raise SnapshotError(f"the code root {root} is not a folder")
    if not settings.max_size_mb > 0:
        raise SnapshotError(f"max_size_mb must be positive, not {settings.max_size_mb}")
    compression_options(level)  # refuse a bad level before any work
    extra = environment_fields(environment_extra)
    real_root = os.path.realpath(root)
    the_store = Store(store)
    the_store.ensure()
    early = _WhileGitWalks(real_root, the_store)
    selection = select(real_root, settings, explicit, the_store.path, allow_outside, early)
    entries, skipped = inspect(selection, early.stats)
    check_size(entries, selection, settings)
    _check_depth(entries)
    packing = _Packing(
        store=the_store,
        selection=selection,
        settings=settings,
        entries=entries,
        prefix=archive_prefix(real_root, entries),
        level=level,
        warnings=[*selection.warnings, *skipped],
        cache=early.cache(),
        archive_check=ArchiveCheck.load(the_store.path, real_root),
        environment_extra=extra,
    )
    try:
        snapshot, (archive_sha256, archive_bytes), created = packing.run()
    except OSError as e:
        raise SnapshotError(f"cannot write to the snapshot store {the_store.path}: {e}") from e
    return PackResult(
        id=snapshot,
        archive=the_store.archive_path(snapshot),
        manifest=the_store.record_path(snapshot),
        archive_sha256=archive_sha256,
        files=len(entries),
        bytes=sum(e.size for e in entries),
        archive_bytes=archive_bytes,
        created=created,
        warnings=tuple(packing.warnings),
        added_back=tuple(
            (e.path, e.size) for e in entries if selection.origin[e.path] == ADDED_BACK
        ),
        data_excluded=len(selection.data_excluded),
        prefix=packing.prefix,
    )
