"""Paths the record commands take from the journal or a manifest, checked before anything is
touched: each must lie under the folder it belongs to (the log folder, the store).

A record is data anyone with write access to the working directory could have forged, so its
paths are not trusted as they are written: ``within`` resolves every folder on the way
(symbolic links and ``..`` as the kernel follows them) but not the final name, which is what
``unlink`` or ``rmdir`` act on (a final link is removed, never followed), and says whether the
result lies strictly below the resolved root.
"""

from __future__ import annotations

import os
from pathlib import Path


def located(path: Path | str) -> Path:
    """``path`` absolute, with every folder on the way resolved and the final name kept."""
    absolute = os.path.abspath(path)  # also removes a trailing "/" and "." components
    parent, name = os.path.split(absolute)
    if name in ("", "..") or not parent:
        return Path(os.path.realpath(absolute))
    return Path(os.path.realpath(parent), name)


def within(path: Path | str, root: Path) -> Path | None:
    """``path`` as ``located`` finds it if it lies strictly below ``root`` (resolved), else
    None: then the caller must leave it alone and say so."""
    if not isinstance(path, (str, Path)) or not str(path) or "\0" in str(path):
        return None
    where = located(path)
    base = Path(os.path.realpath(root))
    if where != base and where.is_relative_to(base):
        return where
    return None
