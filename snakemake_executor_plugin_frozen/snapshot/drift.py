"""Which files of a snapshot were edited in the live tree after it was taken."""

from __future__ import annotations

import os

from .hashing import file_sha256
from .model import SnapshotError


def edited_since(manifest: dict, since: float) -> list[str]:
    """Paths of the snapshot's files whose live version is gone or differs from the
    snapshot, among those modified after ``since`` (epoch seconds): a stat per file, and a
    read only of files touched since then."""
    root = manifest["root"]
    edited = []
    for record in manifest["files"]:
        if record.get("type") != "file":
            continue
        live = record.get("original") or os.path.join(root, record["path"])
        try:
            if os.stat(live).st_mtime <= since:
                continue
            if file_sha256(live) == record["sha256"]:
                continue
        except (OSError, SnapshotError):
            pass
        edited.append(record["path"])
    return edited
