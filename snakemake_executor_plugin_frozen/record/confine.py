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
import stat
from pathlib import Path

# As the kernel's limit on links followed while resolving one path.
MAX_LINKS = 40


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


def foreign_link(root: Path) -> str:
    """Why ``root`` cannot be a root of removals ("" if it can): on the way to it, from
    ``/``, a symbolic link that neither this user nor root made. Such a link, put in a
    shared folder (a plain 0777 ``.snakemake/``), would make ``within`` judge paths against
    wherever it leads, so that a removal confined to the log folder reaches anything."""
    pending = [p for p in os.path.abspath(root).split("/") if p]
    here, followed = "/", 0
    while pending:
        name = pending.pop(0)
        if name == "..":
            here = os.path.dirname(here)
            continue
        path = os.path.join(here, name)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return ""  # nothing below a missing name to remove
        except OSError as e:
            return f"{path} cannot be examined ({e.strerror})"
        if not stat.S_ISLNK(st.st_mode):
            here = path
            continue
        if st.st_uid not in (0, os.geteuid()):
            return f"{path} is a symbolic link of another user (uid {st.st_uid})"
        followed += 1
        if followed > MAX_LINKS:
            return f"{root} leads through more than {MAX_LINKS} symbolic links"
        target = os.readlink(path)
        if target.startswith("/"):
            here = "/"
        pending[:0] = [p for p in target.split("/") if p and p != "."]
    return ""
