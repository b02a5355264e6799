"""From selected paths to archive entries: file types, symbolic links, the size guard.

Symbolic links (decided here, tested in ``tests/snapshot/test_symlinks.py``):

- a link whose target lies inside the code root is stored as a link (an absolute target, or
  one that leaves the root lexically before coming back, is rewritten relative to the link,
  so the extracted copy points into itself and never at the live tree); its target need
  not be selected (a link into ``outputs/`` simply dangles in the frozen copy);
- a link to a file outside the root is stored as that file's content, with the link target
  noted in the manifest;
- a link to a folder outside the root is an error naming it: the folder may hold code, and
  silently dropping it would let jobs import the live, unfrozen copy;
- a dangling link or a link loop is skipped with a warning: there is nothing to read behind
  it, so the frozen copy behaves like the live tree, and refusing would turn every stale
  link (an editor's lock file, say) into a failed workflow start.

An explicitly named file outside the code root (its path starts with ``..``) is always
stored as the content of a regular file, a link followed; anything else is an error naming
it. ``archive_prefix`` decides where the code root lies in the archive so that the outside
files keep their places relative to it.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from dataclasses import dataclass

from .model import SelectionSettings, SnapshotError
from .probe import StatKey
from .rules import ancestor_folders, is_within, leading_ups, leaves, listing
from .select import EXPLICIT, RESERVED_DIR, Selection

FILE, LINK = "file", "link"
MB = 1_000_000  # max_size_mb counts decimal megabytes


@dataclass(slots=True)  # not frozen: built by the thousand on every pack, frozen is slower
class Entry:
    path: str  # root-relative POSIX path inside the archive
    kind: str  # FILE or LINK
    size: int  # content bytes; 0 for links
    executable: bool
    target: str  # link target (links only)
    source: str  # absolute path the content is read from (files only)
    key: StatKey | None  # stat of the content when selected (files only)
    outside: str  # real path of a file reached through a link leaving the root, else ""
    readers: int = 0o044  # the group/other read bits of the file in the tree
    group: int = -1  # the file's group in the tree (files only)

    @property
    def mode(self) -> int:
        if self.kind == LINK:
            return 0o777
        return 0o755 if self.executable else 0o644


def _file_entry(path: str, source: str, st: os.stat_result, outside: str = "") -> Entry:
    key = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)  # stat_key, inlined: hot
    executable = bool(st.st_mode & stat.S_IXUSR)
    readers = st.st_mode & 0o044
    return Entry(path, FILE, st.st_size, executable, "", source, key, outside, readers, st.st_gid)


class CopyMode(int):
    """A mode for the snapshot's own files, with the group it is meant for: ``group`` is
    the gid the copies must have for their group-read bit to mean what it meant for the
    files (None: any group, as when everyone may read every file anyway)."""

    group: int | None

    def __new__(cls, mode: int, group: int | None = None) -> CopyMode:
        self = super().__new__(cls, mode)
        self.group = group
        return self


def copy_mode(entries: list[Entry]) -> CopyMode:
    """The mode of the snapshot's own files (archive, manifest): read-only, and readable by
    the group or others only if every file of the snapshot is: no copy is readable by more
    people than the files it holds.

    The group bit means nothing without the group: a 0640 file of the project group read
    through a 0440 copy of the packer's group would reach people the file refused. So the
    rule (simplest that is safe): when every file is readable by others, the copies are too
    (0444, whatever their group); else group read is kept only if every file with it has
    the same group, and the copies are then given that group (``CopyMode.group``; the store
    drops the bit where it cannot chgrp); files of differing groups give 0400."""
    readers = 0o044
    groups = set()
    for entry in entries:
        readers &= entry.readers
        if entry.kind == FILE:
            groups.add(entry.group)
    if readers & 0o004 or not readers & 0o040:
        return CopyMode(0o400 | readers)
    if len(groups) == 1:
        return CopyMode(0o400 | readers, groups.pop())
    return CopyMode(0o400 | (readers & ~0o040))


def _link_entry(root: str, path: str, full: str, real: str) -> Entry:
    target = os.readlink(full)
    folder = os.path.dirname(path)
    lexical = os.path.normpath(os.path.join(folder, target))
    if os.path.isabs(target) or leaves(lexical):
        target = os.path.relpath(real, os.path.join(root, folder))
    return Entry(path, LINK, 0, False, target, "", None, "")


def _classify(root: str, path: str, st: os.stat_result | None) -> Entry | str:
    """The entry for one selected path (``st``: its lstat, if taken already), or why it is
    skipped ("missing", "folder", ...)."""
    full = f"{root}/{path}"
    if st is None:
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            return "missing"
    if stat.S_ISREG(st.st_mode):
        return _file_entry(path, full, st)
    if stat.S_ISDIR(st.st_mode):
        return "folder"
    if not stat.S_ISLNK(st.st_mode):
        return "special"
    try:
        real = os.path.realpath(full, strict=True)
    except OSError as e:
        return "loop" if e.errno == errno.ELOOP else "dangling"
    if is_within(root, real):
        return _link_entry(root, path, full, real)
    target_st = os.stat(real)
    if stat.S_ISDIR(target_st.st_mode):
        raise SnapshotError(
            f"symbolic link {path} points to the folder {real}, outside the code root "
            f"{root}: a snapshot cannot hold it. Exclude the link (add '/{path}' to "
            ".frozenignore or the exclude setting), or replace it by the files to freeze"
        )
    if not stat.S_ISREG(target_st.st_mode):
        raise SnapshotError(
            f"symbolic link {path} points to {real}, which is not a regular file; "
            f"exclude it (add '/{path}' to .frozenignore or the exclude setting)"
        )
    return _file_entry(path, full, target_st, outside=real)


def _classify_outside(root: str, path: str) -> Entry | str:
    """The entry for an explicitly named file outside the root, or "missing"."""
    full = os.path.normpath(f"{root}/{path}")
    try:
        st = os.stat(full)
    except FileNotFoundError:
        return "missing"
    if not stat.S_ISREG(st.st_mode):
        raise SnapshotError(
            f"explicitly named file {full}, outside the code root {root}, is not a regular "
            "file: a snapshot can only hold a file from outside the code root as its content"
        )
    real = os.path.realpath(full)
    return _file_entry(path, full, st, outside=real if real != full else "")


def archive_prefix(root: str, entries: list[Entry]) -> str:
    """The folder of the archive that holds the code root: its last D folder names, D being
    the most leading '..' of any outside file, so that every member is that folder joined
    with the entry's path and an outside file lies where its '..' lead (a root /a/b/nest/sub
    and ../../res/t.txt: code under nest/sub/, the file at res/t.txt). '' without any."""
    depth = max((leading_ups(e.path) for e in entries if leaves(e.path)), default=0)
    if not depth:
        return ""
    names = [name for name in root.split("/") if name]
    if depth > len(names):
        raise SnapshotError(
            f"an explicitly named file needs {depth} folders above the code root {root}, "
            f"which has only {len(names)}"
        )
    prefix = "/".join(names[-depth:])
    # The archive's own .frozen/ holds the manifest: no member may land in it.
    clashes = [prefix] if is_within(RESERVED_DIR, prefix) else []
    clashes += [
        e.path
        for e in entries
        if leaves(e.path) and is_within(RESERVED_DIR, posixpath.normpath(f"{prefix}/{e.path}"))
    ]
    if clashes:
        raise SnapshotError(
            f"with the files named outside the code root {root}, the archive would store "
            f"{listing(clashes)} in {RESERVED_DIR}/, which holds the manifest; move them"
        )
    return prefix


def inspect(
    selection: Selection, stats: dict[str, os.stat_result] | None = None
) -> tuple[list[Entry], list[str]]:
    """Entries for the selected paths, in path order, and warnings about what was skipped.
    ``stats``: the lstat of some of the paths, taken while they were selected."""
    stats = stats or {}
    root = selection.root
    entries: list[Entry] = []
    skipped: dict[str, list[str]] = {}
    # A path through a linked folder is not the folder's own file (and could lie outside
    # the root); git lists such paths when a tracked folder was replaced by a link.
    inside = [path for path in selection.paths if not leaves(path)]
    linked = {f for f in ancestor_folders(inside) if os.path.islink(f"{root}/{f}")}
    for path in selection.paths:
        if linked and not ancestor_folders([path]).isdisjoint(linked):
            skipped.setdefault("through-link", []).append(path)
            continue
        try:
            if leaves(path):
                result = _classify_outside(root, path)
            else:
                result = _classify(root, path, stats.get(path))
        except OSError as e:
            raise SnapshotError(
                f"cannot read {path} in {root}: {e.strerror}; fix its permissions or exclude it"
            ) from e
        if isinstance(result, Entry):
            entries.append(result)
        elif result != "missing" or selection.origin[path] == EXPLICIT:
            # A tracked file deleted from the work tree is not worth a warning: the
            # deletion is recorded in the manifest's git diff.
            skipped.setdefault(result, []).append(path)

    reasons = {
        "missing": "explicitly named files do not exist",
        "folder": "folders listed as files were not packed (submodules not checked out, or "
        "folders named explicitly)",
        "special": "sockets, pipes and devices were not packed",
        "dangling": "dangling symbolic links were not packed",
        "loop": "symbolic link loops were not packed",
        "through-link": "files reached through a linked folder were not packed (the link "
        "itself is selected on its own)",
    }
    warnings = [f"{reasons[why]}: {listing(paths)}" for why, paths in skipped.items()]
    return entries, warnings


def _largest(sizes: dict[str, int], limit: int) -> list[tuple[str, int]]:
    return sorted(sizes.items(), key=lambda item: (-item[1], item[0]))[:limit]


def check_size(entries: list[Entry], selection: Selection, settings: SelectionSettings) -> None:
    """Refuse a selection above ``max_size_mb``, naming what to exclude."""
    total = sum(e.size for e in entries)
    if settings.skip_size_check or total <= settings.max_size_mb * MB:
        return
    folder_sizes: dict[str, int] = {}
    for e in entries:
        folder = os.path.dirname(e.path)
        while folder:
            folder_sizes[folder] = folder_sizes.get(folder, 0) + e.size
            folder = os.path.dirname(folder)
    lines = [
        f"the selected files total {total / MB:.1f} MB, above max_size_mb="
        f"{settings.max_size_mb:g}; the largest selected files and folders:",
    ]
    for path, size in _largest({e.path: e.size for e in entries}, 10):
        explicit = selection.origin.get(path) == EXPLICIT
        note = "  (named explicitly: cannot be excluded)" if explicit else ""
        lines.append(f"  {size / MB:10.2f} MB  {path}{note}")
    lines.extend(
        f"  {size / MB:10.2f} MB  {folder}/" for folder, size in _largest(folder_sizes, 10)
    )
    option = settings.option
    lines.append(
        "Leave a file or folder out with a gitignore-style pattern such as '/path/to/folder/' "
        f"(the exclude setting, {option('exclude')}, or a .frozenignore file at the code root), "
        f"or every folder of a name with exclude_folders ({option('exclude_folders')}, which "
        f"replaces the default list); or raise max_size_mb ({option('max_size_mb')}), or set "
        f"skip_size_check ({option('skip_size_check')})."
    )
    raise SnapshotError("\n".join(lines))
