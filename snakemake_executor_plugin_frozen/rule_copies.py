"""The record beside the logs: each rule folder's ``code-<id12>.tar.zst`` and ``.json``.

They are the record that survives a deleted or damaged store, so they share no inode with
it: one flipped byte in the store must not damage them too. The first rule folder of a run
gets a copy of the store's files (a reflink where the file system has them: no space until
either is written), the run's other rule folders hard links to that copy: one physical copy
per snapshot and run, as ``verify`` reports it, and ``verify --repair`` puts a damaged one
back from an intact one. A copy that is the store's own file (placed by an older version as
a hard link) or differs from it is placed again; the copies keep the store file's mode and
group, never more readers.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import filecmp
import os
import shutil
import stat
from pathlib import Path

# ioctl(FICLONE): the destination shares the source's blocks until either is written
# (btrfs, XFS with reflink, bcachefs); elsewhere EOPNOTSUPP/EXDEV/EINVAL, and a copy is made.
FICLONE = 0x40049409
SUFFIXES = (".tar.zst", ".json")


def independent_copy(source: Path, target: Path) -> None:
    """``target`` becomes a copy of ``source`` of its own inode, with ``source``'s mode and
    group (or without group bits where the group cannot be given), through a temporary file
    renamed into place."""
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    st = os.stat(source)
    try:
        with open(source, "rb") as src, open(temporary, "xb") as dst:
            os.fchmod(dst.fileno(), 0o600)
            try:
                fcntl.ioctl(dst.fileno(), FICLONE, src.fileno())
            except OSError as e:
                if e.errno not in (errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY):
                    raise
                shutil.copyfileobj(src, dst, 1 << 20)
            mode = stat.S_IMODE(st.st_mode)
            try:
                os.fchown(dst.fileno(), -1, st.st_gid)
            except OSError:
                mode &= ~0o070
            dst.flush()
            os.fsync(dst.fileno())
            os.fchmod(dst.fileno(), mode)
        os.replace(temporary, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def _current(source: Path, target: Path) -> bool:
    """``target`` is a byte-identical copy of ``source`` of its own inode."""
    try:
        return not os.path.samefile(source, target) and filecmp.cmp(source, target, shallow=False)
    except OSError:
        return False


class RuleCopies:
    """The copies of one snapshot (``archive`` and ``manifest`` in the store) placed by a run."""

    def __init__(self, archive: Path, manifest: Path, short_id: str) -> None:
        self.sources = {".tar.zst": archive, ".json": manifest}
        self.stem = f"code-{short_id}"
        self.first: Path | None = None  # the rule folder holding this run's physical copy
        self.placed: set[Path] = set()

    def archive_in(self, rule_dir: Path) -> Path:
        return rule_dir / f"{self.stem}.tar.zst"

    def place(self, rule_dir: Path) -> Path:
        """The copies in ``rule_dir`` (once per run and folder); returns the archive's."""
        if rule_dir not in self.placed:
            self.placed.add(rule_dir)
            for suffix, source in self.sources.items():
                target = rule_dir / f"{self.stem}{suffix}"
                if _current(source, target):
                    continue
                if self.first is None:
                    independent_copy(source, target)
                else:
                    _link(self.first / f"{self.stem}{suffix}", target)
            if self.first is None:
                self.first = rule_dir
        return self.archive_in(rule_dir)


def _link(first: Path, target: Path) -> None:
    """A hard link to this run's first copy (its own copy where links fail)."""
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        os.link(first, temporary)
    except OSError:
        independent_copy(first, target)
        return
    os.replace(temporary, target)
