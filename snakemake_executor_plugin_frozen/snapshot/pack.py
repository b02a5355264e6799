"""``pack``: select, hash through the stat cache, and store the snapshot unless it is stored."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from .archive import MANIFEST_NAME, ArchiveWriter, compression_options
from .entries import FILE, LINK, Entry, archive_prefix, check_size, copy_mode, inspect
from .hashing import StatCache, changed_error, read_verified, snapshot_id
from .manifest import build_manifest, dumps
from .model import DEFAULT_SETTINGS, PackResult, SelectionSettings, SnapshotError
from .select import ADDED_BACK, select
from .store import Store

# Content read for hashing is kept for the archive up to this many bytes, so a cold pack
# reads most files once; beyond it files are read again (and hashed again, so the archive
# holds exactly the hashed content).
KEEP_BYTES = 64 * 1024 * 1024


def _digests(
    entries: list[Entry], store: Store, root: str
) -> tuple[dict[str, str], dict[str, bytes], StatCache]:
    """sha256 of every file, reading only those the stat cache cannot vouch for.

    Returns the digests, the content of the files read (within KEEP_BYTES) and the cache.
    """
    cache = StatCache.load(store.path, root)
    digests: dict[str, str] = {}
    misses = []
    for entry in entries:
        if entry.kind == FILE:
            cached = cache.lookup(entry)
            if cached is None:
                misses.append(entry)
            else:
                digests[entry.path] = cached
    contents: dict[str, bytes] = {}
    if misses:
        stamp = store.clock_stamp()
        budget = KEEP_BYTES
        for entry in misses:
            if entry.size <= budget:
                chunks: list[bytes] = []
                digests[entry.path] = read_verified(entry, chunks.append)
                contents[entry.path] = b"".join(chunks)
                budget -= entry.size
            else:
                digests[entry.path] = read_verified(entry)
        cache.record(entries, digests, stamp)
        cache.save(store.write_atomic)
    return digests, contents, cache


def _write(
    snapshot: str,
    store: Store,
    level: int,
    prefix: str,
    entries: list[Entry],
    digests: dict[str, str],
    contents: dict[str, bytes],
    cache: StatCache,
    manifest: dict,
) -> tuple[dict, bool]:
    """Archive and store the snapshot; returns the stored record and whether this call stored it."""
    tmp = store.temp_path(".tar.zst")
    try:
        writer = ArchiveWriter(tmp, level, prefix)
        try:
            writer.add_bytes(MANIFEST_NAME, dumps(manifest))
            for entry in entries:
                if entry.kind == LINK:
                    writer.add_link(entry)
                elif entry.path in contents:
                    writer.add_read(entry, contents[entry.path])
                elif writer.add_file(entry) != digests[entry.path]:
                    # Same stat, other content: the cache vouched for an older version.
                    # Forget it, so that trying again hashes everything afresh.
                    cache.path.unlink(missing_ok=True)
                    raise changed_error(entry.path)
            archive_sha256, archive_bytes = writer.close()
        except BaseException:
            writer.abort()
            raise
        record = {**manifest, "archive_sha256": archive_sha256, "archive_bytes": archive_bytes}
        earlier = store.commit(snapshot, tmp, dumps(record), copy_mode(entries))
    finally:
        tmp.unlink(missing_ok=True)
    return (record, True) if earlier is None else (earlier, False)


def pack(
    root: Path,
    store: Path,
    settings: SelectionSettings = DEFAULT_SETTINGS,
    explicit: Iterable[Path] = (),
    level: int = 3,
    *,
    allow_outside: bool = False,
) -> PackResult:
    """Snapshot the code under ``root`` into ``store`` (created if missing).

    ``explicit`` files (absolute, or relative to the current directory) are always packed
    unless they lie in a hard-excluded folder; one outside ``root`` is an error, unless
    ``allow_outside``: then it is packed as ``../``-relative content, and the archive stores
    the code root under ``PackResult.prefix`` (see ``entries.archive_prefix``). An id that
    is already stored is not written again, and an unchanged tree reads no file contents.
    Every refusal is a SnapshotError.
    """
    if not os.path.isdir(root):
        raise SnapshotError(f"the code root {root} is not a folder")
    if not settings.max_size_mb > 0:
        raise SnapshotError(f"max_size_mb must be positive, not {settings.max_size_mb}")
    compression_options(level)  # refuse a bad level before any work
    real_root = os.path.realpath(root)
    the_store = Store(store)
    the_store.ensure()
    selection = select(real_root, settings, explicit, the_store.path, allow_outside)
    entries, skipped = inspect(selection)
    warnings = (*selection.warnings, *skipped)
    check_size(entries, selection, settings)
    prefix = archive_prefix(real_root, entries)
    try:
        digests, contents, cache = _digests(entries, the_store, real_root)
        snapshot = snapshot_id(entries, digests, prefix)
        record = the_store.load_record(snapshot)
        if record is not None and not the_store.intact(snapshot, record):
            warnings = (
                *warnings,
                f"the stored archive {the_store.archive_path(snapshot)} no longer matched its "
                "record (edited or damaged); it was made again from the tree",
            )
            the_store.discard(snapshot)
            record = None
        created = False
        if record is not None:
            the_store.restrict(snapshot, copy_mode(entries))
        else:
            manifest = build_manifest(
                snapshot, selection, settings, the_store.path, entries, digests, warnings, prefix
            )
            record, created = _write(
                snapshot, the_store, level, prefix, entries, digests, contents, cache, manifest
            )
    except OSError as e:
        raise SnapshotError(f"cannot write to the snapshot store {the_store.path}: {e}") from e
    return PackResult(
        id=snapshot,
        archive=the_store.archive_path(snapshot),
        manifest=the_store.record_path(snapshot),
        archive_sha256=record["archive_sha256"],
        files=len(entries),
        bytes=sum(e.size for e in entries),
        archive_bytes=record["archive_bytes"],
        created=created,
        warnings=warnings,
        added_back=tuple(
            (e.path, e.size) for e in entries if selection.origin[e.path] == ADDED_BACK
        ),
        data_excluded=len(selection.data_excluded),
        prefix=prefix,
    )
