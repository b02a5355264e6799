"""An id earned by content: a stored snapshot is reused only when its archive holds exactly
the files whose id it bears.

Whoever can write the store (a group-writable project folder) can replace ``<id>.tar.zst``
and ``<id>.json`` by a pair of their own that agree with each other: an archive matching its
record's sha256 proves nothing then. So before a run reuses an entry it has not itself
written or earned since (``hashing.ArchiveCheck``), the archive is read once, as a stream
from one open file: its first member, the manifest, must be the record's, name this id and
list exactly the tree's files; every other member must be one of those files with the
tree's type, mode, size and sha256 (or link target), and nothing else may be in it; the
bytes read must have the record's sha256 and size. The jobs are given that sha256, and the
nodes check it on the same open file they extract, so what they run is what was earned.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from .archive import (
    MANIFEST_MAX_BYTES,
    MANIFEST_NAME,
    is_sparse,
    open_archive,
    tar_members,
)
from .archive_format import FILE_TYPES
from .entries import FILE, LINK, Entry
from .hashing import CHUNK
from .manifest import Manifest, ManifestError
from .manifest_reader import parse_manifest
from .model import SnapshotError

if TYPE_CHECKING:
    import tarfile

# member name -> (type, mode, size, content sha256 or link target)
Expected = dict[str, tuple[str, int, int, str]]


class NotEarned(SnapshotError):
    """The stored entry does not hold the files of its id; the message says how."""


def member_name(path: str, prefix: str) -> str:
    """The archive member of a code-root-relative ``path`` (see ``ArchiveWriter``)."""
    import posixpath

    return posixpath.normpath(f"{prefix}/{path}") if prefix else path


def expected_members(entries: list[Entry], digests: dict[str, str], prefix: str) -> Expected:
    """What the archive of ``entries`` holds, by member name."""
    return {
        member_name(e.path, prefix): (
            e.kind,
            e.mode,
            e.size,
            e.target if e.kind == LINK else digests[e.path],
        )
        for e in entries
    }


def manifest_records(manifest: Manifest) -> list[tuple[str, str, int, int, str]]:
    """The manifest's files as (path, type, mode, size, content sha256 or link target);
    a ValueError for a record that lacks one of them."""
    records = []
    for f in manifest.files:
        if f.type == LINK:
            if f.target is None:
                raise ValueError(f"the link {f.path!r} records no target")
            records.append((f.path, LINK, 0o777, 0, f.target))
        else:
            if f.mode is None or f.size is None or f.sha256 is None:
                raise ValueError(f"the file {f.path!r} records no mode, size or sha256")
            records.append((f.path, f.type, f.mode, f.size, f.sha256))
    return records


def _check_manifest(data: bytes, record: Manifest, snapshot: str, expected: Expected) -> None:
    try:
        manifest = parse_manifest(data, MANIFEST_NAME)
        prefix = manifest.prefix
        listed = {member_name(r[0], prefix): r[1:] for r in manifest_records(manifest)}
    except ManifestError as e:
        raise NotEarned(f"its manifest is not a snapshot manifest ({e.problem})") from e
    except ValueError as e:
        raise NotEarned(f"its manifest is not a snapshot manifest ({e})") from e
    if manifest.id != snapshot:
        raise NotEarned(f"its manifest names the id {manifest.id[:64]!r}")
    if manifest != record.in_archive():
        raise NotEarned("its manifest is not the store's record of it")
    if listed != expected:
        missing = sorted(expected.keys() - listed.keys())
        other = sorted(n for n in listed if n not in missing and listed[n] != expected.get(n))
        names = (missing or other or ["?"])[0]
        raise NotEarned(f"its manifest does not list this tree's files (first: {names!r})")


def _member_content(tar: tarfile.TarFile, member: tarfile.TarInfo) -> str:
    source = tar.extractfile(member)
    assert source is not None  # a regular file always has content
    digest = hashlib.sha256()
    while chunk := source.read(CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def _check_member(tar: tarfile.TarFile, member: tarfile.TarInfo, want: tuple | None) -> None:
    name = member.name
    if is_sparse(member) or not (member.issym() or member.type in FILE_TYPES):
        raise NotEarned(f"member {name!r} is of a kind no snapshot holds")
    if want is None:
        raise NotEarned(f"it holds {name!r}, which is not one of the tree's files (or twice)")
    kind, mode, size, content = want
    if (LINK if member.issym() else FILE) != kind or member.mode & 0o7777 != mode:
        raise NotEarned(f"member {name!r} has another type or mode than the tree's file")
    if kind == LINK:
        if member.linkname != content:
            raise NotEarned(f"member {name!r} links elsewhere than the tree's link")
    elif member.size != size or _member_content(tar, member) != content:
        raise NotEarned(f"member {name!r} does not hold the tree's content of that file")


def _manifest(tar: tarfile.TarFile, first: tarfile.TarInfo) -> bytes:
    """The first member's content, which must be the manifest, read bounded."""
    if first.name != MANIFEST_NAME or first.type not in FILE_TYPES:
        raise NotEarned(f"its first member is not its manifest ({MANIFEST_NAME})")
    if is_sparse(first) or first.size > MANIFEST_MAX_BYTES:
        raise NotEarned("its manifest member is sparse or too large")
    data = tar.extractfile(first)
    assert data is not None  # a regular file always has content
    return data.read(first.size)


def earn(archive: Path, record: Manifest, snapshot: str, expected: Expected) -> None:
    """Read ``archive`` once and prove it holds exactly ``expected``, under the manifest
    ``record`` of the id ``snapshot``, with the record's sha256 and size; else NotEarned
    (or a SnapshotError when it cannot be read at all)."""
    with open_archive(archive) as source:
        with tar_members(source) as tar:
            remaining: Expected | None = None  # once the manifest is read
            for member in tar:
                if remaining is None:
                    _check_manifest(_manifest(tar, member), record, snapshot, expected)
                    remaining = dict(expected)
                else:
                    _check_member(tar, member, remaining.pop(member.name, None))
            if remaining is None:
                raise NotEarned("it holds no member at all")
            if remaining:
                raise NotEarned(f"it lacks {min(remaining)!r}, one of the tree's files")
        sha256 = source.read_to_end()
        size = os.fstat(source.f.fileno()).st_size
    if sha256 != record.archive_sha256 or size != record.archive_bytes:
        raise NotEarned("its sha256 or size is not the one its record names")
