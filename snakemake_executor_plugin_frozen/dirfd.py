"""Working in folders through their file descriptors, never through a link: a path that
another user could swap is resolved once, to an fd, and every name below it is looked up
in a folder held open. Used where what lies on disk is not to be trusted: extracting an
archive (`snapshot.archive`) and the node's scratch folder (`node`).
"""

import errno
import os
import stat
from contextlib import suppress
from typing import BinaryIO

FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
WALK = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC  # to pass through, not list
READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def descend(folder: int, name: str, flags: int = FOLDER) -> int:
    """The folder `name` in the folder open as `folder`, which is closed once it is open;
    on an error `folder` stays open, for its caller to close."""
    inner = os.open(name, flags, dir_fd=folder)
    os.close(folder)
    return inner


def new_file(folder: int, name: str, mode: int) -> BinaryIO:
    """The new file `name` in `folder`, open for writing (nothing there may be replaced)."""
    return open(os.open(name, NEW_FILE, mode, dir_fd=folder), "wb")


def is_at(fd: int, folder: int, name: str) -> bool:
    """Whether the open `fd` is still the entry `name` of `folder`, not removed or replaced."""
    try:
        there = os.stat(name, dir_fd=folder, follow_symlinks=False)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (there.st_dev, there.st_ino)


def file_kind(info: os.stat_result) -> str:
    """What an entry is, for a message: "a named pipe", "a folder", ..."""
    kinds = (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    )
    return next((what for test, what in kinds if test(info.st_mode)), "a special file")


def up(fd: int, expected: os.stat_result) -> int:
    """The parent of the folder open as `fd`, which is closed once it is open, through
    "..": it must still be the folder `expected` (as fstat saw it on the way down), else the
    tree was moved meanwhile and OSError is raised (`fd` stays open, for its caller)."""
    parent = os.open("..", FOLDER, dir_fd=fd)
    held = os.fstat(parent)
    if (held.st_dev, held.st_ino) != (expected.st_dev, expected.st_ino):
        os.close(parent)
        raise OSError(errno.ESTALE, "a folder was moved while its tree was walked")
    os.close(fd)
    return parent


class _Level:
    """A folder on the way down: its name in its parent, its identity, its subfolders yet
    to be removed."""

    __slots__ = ("info", "name", "pending")

    def __init__(self, name: str, info: os.stat_result) -> None:
        self.name, self.info, self.pending = name, info, list[str]()


def _empty_files(fd: int, level: _Level) -> bool:
    """Make the folder writable, remove every entry that is not a folder and note the
    folders; whether there are any."""
    with suppress(PermissionError):  # another owner's folder: try to empty it anyway
        os.fchmod(fd, 0o700)
    with os.scandir(fd) as listing:
        for entry in listing:
            if entry.is_dir(follow_symlinks=False):
                level.pending.append(entry.name)
            else:
                with suppress(FileNotFoundError):
                    os.unlink(entry.name, dir_fd=fd)
    return bool(level.pending)


def remove_tree(folder: int, name: str) -> None:
    """Remove the entry `name` of `folder`, a read-only tree too (each folder is made
    writable just before it is emptied); never follows a link; gone already is fine.

    Without recursion and with one fd open, however deep the tree: the names of the folders
    still to remove are kept on a stack, the walk goes down by name and back up through
    "..", checked to be the very folder it came from."""
    try:
        if not stat.S_ISDIR(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode):
            os.unlink(name, dir_fd=folder)
            return
        fd = os.open(name, FOLDER, dir_fd=folder)
    except FileNotFoundError:
        return
    try:
        path = [_Level(name, os.fstat(fd))]
        _empty_files(fd, path[-1])
        while True:
            level = path[-1]
            if level.pending:
                child = level.pending.pop()
                try:
                    inner = os.open(child, FOLDER, dir_fd=fd)
                except FileNotFoundError:
                    continue
                except OSError as e:  # no longer a folder: replaced by a file or a link
                    if e.errno not in (errno.ENOTDIR, errno.ELOOP):
                        raise
                    with suppress(FileNotFoundError):
                        os.unlink(child, dir_fd=fd)
                    continue
                os.close(fd)
                fd = inner
                path.append(_Level(child, os.fstat(fd)))
                _empty_files(fd, path[-1])
            elif _empty_files(fd, level):  # listed again: what appeared meanwhile
                continue
            elif len(path) == 1:
                break
            else:
                path.pop()
                fd = up(fd, path[-1].info)
                with suppress(FileNotFoundError):
                    os.rmdir(level.name, dir_fd=fd)
    finally:
        os.close(fd)
    with suppress(FileNotFoundError):
        os.rmdir(name, dir_fd=folder)


def discard(folder: int, name: str) -> None:
    """Remove an entry so that it disappears at once: renamed to a dot name (debris for the
    next job to remove), then deleted, so that a crash half-way never leaves a partial tree
    under a trusted name."""
    aside = f".{name}.deleting.{os.urandom(6).hex()}"
    try:
        os.rename(name, aside, src_dir_fd=folder, dst_dir_fd=folder)
    except FileNotFoundError:
        return
    remove_tree(folder, aside)
