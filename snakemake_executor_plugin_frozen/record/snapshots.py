"""A working directory's snapshot store as the record commands read it, and snapshots named
on the command line: an id (any unique prefix), an archive or a manifest file."""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

from snakemake_executor_plugin_frozen.snapshot import Manifest, SnapshotError, read_manifest
from snakemake_executor_plugin_frozen.snapshot.manifest import FileRecord
from snakemake_executor_plugin_frozen.snapshot.store import Store

from .errors import RecordError
from .ids import resolve

_RECORD_NAME = re.compile(r"^([0-9a-f]{64})\.json$")
ARCHIVE_SUFFIX, RECORD_SUFFIX = ".tar.zst", ".json"


@dataclass(frozen=True)
class Snapshot:
    id: str
    manifest: Manifest  # the store's record (with archive_sha256) or the archive's own
    archive: Path | None  # None: the manifest's archive is not there
    origin: str  # where it was found, for messages

    @property
    def archive_sha256(self) -> str | None:
        """What the archive must hash to; None for an archive found without its record."""
        return self.manifest.archive_sha256

    @property
    def prefix(self) -> str:
        """The folder of the archive holding the code root ("" without outside files)."""
        return self.manifest.prefix

    def member_name(self, path: str) -> str:
        """The archive member of the manifest's ``path`` (relative to the code root)."""
        return posixpath.normpath(f"{self.prefix}/{path}") if self.prefix else path

    @property
    def root(self) -> str:
        """The code root the manifest names (exit 1 when it names none)."""
        try:
            return self.manifest.code_root()
        except SnapshotError as e:
            raise RecordError(str(e), exit_code=1) from e

    def files(self) -> dict[str, FileRecord]:
        return {f.path: f for f in self.manifest.files}

    def require_archive(self) -> Path:
        if self.archive is None:
            raise RecordError(
                f"the archive of snapshot {self.id[:12]} ({self.origin}) is missing; only its "
                "manifest is left"
            )
        return self.archive

    def check_archive(self) -> Path:
        """The archive, once its sha256 is the recorded one (exit 1 when it is not)."""
        archive = self.require_archive()
        if self.archive_sha256 is not None and sha256_of(archive) != self.archive_sha256:
            raise RecordError(
                f"{archive} does not have the sha256 its record names: the archive is damaged "
                "(snakemake-frozen verify tells more); not using it",
                exit_code=1,
            )
        return archive


def sha256_of(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError as e:
        raise RecordError(f"cannot read {path}: {e.strerror}", exit_code=1) from e


def _manifest(path: Path) -> Manifest:
    try:
        return read_manifest(path)
    except SnapshotError as e:
        raise RecordError(str(e), exit_code=1) from e


class SnapshotStore:
    """``<store>/<id>.tar.zst`` beside ``<id>.json`` (the record, written last)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.files = Store(path)  # the store's own naming and removal

    def ids(self) -> list[str]:
        """The complete snapshots: a record and its archive."""
        try:
            names = os.listdir(self.path)
        except FileNotFoundError:
            return []
        except OSError as e:
            raise RecordError(f"cannot read the snapshot store {self.path}: {e.strerror}") from e
        present = set(names)
        return sorted(
            match[1]
            for name in names
            if (match := _RECORD_NAME.match(name)) and match[1] + ARCHIVE_SUFFIX in present
        )

    def resolve(self, prefix: str) -> str:
        return resolve(prefix, self.ids(), f"the store {self.path}")

    def load(self, snapshot_id: str) -> Snapshot:
        record = self.files.record_path(snapshot_id)
        archive = self.files.archive_path(snapshot_id)
        return Snapshot(
            snapshot_id,
            _manifest(record),
            archive if archive.is_file() else None,
            f"store {self.path}",
        )

    def get(self, snapshot_id: str) -> Snapshot | None:
        """The stored snapshot ``snapshot_id``, None if it is not (or no longer) stored."""
        if not self.files.record_path(snapshot_id).is_file():
            return None
        return self.load(snapshot_id)


def _from_file(path: Path) -> Snapshot:
    """A snapshot from an archive or a record file, with the file beside it of the same
    name (``x.tar.zst`` and ``x.json``, as in the store and the rule-log folders)."""
    stem = path.name.removesuffix(ARCHIVE_SUFFIX).removesuffix(RECORD_SUFFIX)
    archive, record = path.with_name(stem + ARCHIVE_SUFFIX), path.with_name(stem + RECORD_SUFFIX)
    manifest = _manifest(record if record.is_file() else archive)
    return Snapshot(manifest.id, manifest, archive if archive.is_file() else None, str(path))


def open_snapshot(reference: str, store: SnapshotStore) -> Snapshot:
    """``reference``: a path to an archive (``.tar.zst``) or record (``.json``) that exists,
    else a stored snapshot's id or unique prefix."""
    path = Path(reference)
    if reference.endswith((ARCHIVE_SUFFIX, RECORD_SUFFIX)) or os.sep in reference:
        if not path.is_file():
            raise RecordError(f"{reference} is no file: give a snapshot archive, a record or an id")
        return _from_file(path)
    return store.load(store.resolve(reference))
