"""The files ``gc`` finds and removes: batch scripts and rule-log copies by owner in the
log folders, the freed bytes of a set of paths, removal without following links, empty
folders, a store's dead temporaries."""

from __future__ import annotations

import os
import re
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

from snakemake_executor_plugin_frozen import journal
from snakemake_executor_plugin_frozen.snapshot import SnapshotError, read_manifest
from snakemake_executor_plugin_frozen.snapshot.rules import LOG_FOLDER_MARKER

from .snapshots import RECORD_SUFFIX

STALE_TEMPORARY = 86400.0  # seconds: a pack takes minutes, never a day

_SCRIPT = re.compile(r"^(?:job|array)-([0-9a-f]{8})-\d+\.sh$")
_COPY = re.compile(r"^code-([0-9a-f]{12})\.(?:tar\.zst|json)$")


@dataclass
class Files:
    """What the log folder holds, by owner: batch scripts by run tag, copies by short id."""

    scripts: dict[str, list[Path]] = field(default_factory=dict)
    copies: dict[str, list[Path]] = field(default_factory=dict)

    @classmethod
    def scan(cls, logdirs: list[Path]) -> Files:
        found = cls()
        for logdir in logdirs:
            found._scan(logdir)
        return found

    def _scan(self, logdir: Path) -> None:
        found = self
        for folder, _, names in os.walk(logdir):
            for name in names:
                if match := _SCRIPT.match(name):
                    found.scripts.setdefault(match[1], []).append(Path(folder, name))
                elif Path(folder).parent == logdir and (match := _COPY.match(name)):
                    found.copies.setdefault(match[1], []).append(Path(folder, name))


def copy_id(paths: list[Path]) -> str | None:
    """The full id a rule-log copy names in its record (None if unreadable)."""
    for path in paths:
        if path.name.endswith(RECORD_SUFFIX):
            try:
                found = read_manifest(path).id
            except SnapshotError:
                return None
            return found if journal.valid_snapshot(found) else None
    return None


def marked(folder: Path) -> bool:
    """``folder`` holds the marker of this plugin's log folders (``rules.LOG_FOLDER_MARKER``),
    a regular file of this user or root."""
    try:
        st = os.lstat(folder / LOG_FOLDER_MARKER)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_uid in (0, os.geteuid())


def inode_bytes(paths: list[Path]) -> int:
    """Bytes freed by removing ``paths``: of each file whose every hard link is among them."""
    links: dict[tuple[int, int], list[os.stat_result]] = {}
    for path in paths:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        links.setdefault((st.st_dev, st.st_ino), []).append(st)
    return sum(sts[0].st_size for sts in links.values() if len(sts) >= sts[0].st_nlink)


def unlink(path: Path, folders: set[Path]) -> None:
    """Remove the file (or link) ``path``; a folder only if it is one of ``folders``."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        if path in folders:
            shutil.rmtree(path, ignore_errors=True)


def prune_empty(folders: set[Path], logdir: Path) -> None:
    """Remove the folders left empty under ``logdir`` (deepest first; not logdir itself)."""
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        while folder != logdir and folder.is_relative_to(logdir):
            try:
                folder.rmdir()
            except OSError:
                break
            folder = folder.parent


def stale_temporaries(store: Path, now: float) -> list[Path]:
    try:
        names = os.listdir(store)
    except OSError:
        return []
    found = []
    for name in names:
        if name.startswith(".tmp-"):
            with_path = store / name
            try:
                if now - with_path.lstat().st_mtime > STALE_TEMPORARY:
                    found.append(with_path)
            except FileNotFoundError:
                continue
    return found
