"""Working in folders through their file descriptors, never through a link: a path that
another user could swap is resolved once, to an fd, and every name below it is looked up
in a folder held open. Used where what lies on disk is not to be trusted: extracting an
archive (`snapshot.archive`) and the node's scratch folder (`node`).
"""

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


def remove_tree(folder: int, name: str) -> None:
    """Remove the entry `name` of `folder`, a read-only tree too (each folder is made
    writable just before it is emptied); never follows a link; gone already is fine."""
    try:
        if not stat.S_ISDIR(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode):
            os.unlink(name, dir_fd=folder)
            return
        fd = os.open(name, FOLDER, dir_fd=folder)
    except FileNotFoundError:
        return
    try:
        with suppress(PermissionError):  # another owner's folder: try to empty it anyway
            os.fchmod(fd, 0o700)
        for entry in os.listdir(fd):
            remove_tree(fd, entry)
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
