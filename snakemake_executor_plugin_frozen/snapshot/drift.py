"""Which files of a snapshot were edited in the live tree after it was taken."""

from __future__ import annotations

import os

from .entries import FILE
from .hashing import file_sha256
from .manifest import Manifest
from .model import SnapshotError


def edited_since(manifest: Manifest, since: float) -> list[str]:
    """Paths of the snapshot's files whose live version is gone or differs from the
    snapshot, among those modified after ``since`` (epoch seconds): a stat per file, and a
    read only of files touched since then."""
    root = manifest.code_root()
    edited = []
    for record in manifest.files:
        if record.type != FILE:
            continue
        live = record.original or os.path.join(root, record.path)
        try:
            if os.stat(live).st_mtime <= since:
                continue
            if file_sha256(live) == record.sha256:
                continue
        except (OSError, SnapshotError):
            pass
        edited.append(record.path)
    return edited
