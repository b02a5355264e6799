"""The kernel's side of a job's view: a mount namespace of the job's own, and bind mounts made
through file descriptors.

As an ordinary user the namespace lives in an unprivileged user namespace that maps only the
user's own uid and gid onto themselves, so `id -u`, the owner of new files and SLURM's process
tracking stay as they were; root needs the mount namespace alone. Every mount is made private
first, so nothing propagates back to the node. The calling process must be single-threaded
(unshare(2) refuses CLONE_NEWUSER otherwise): the node helper is.

A bind is made from `/proc/self/fd/N` onto `/proc/self/fd/M`, both opened without following
links, so no path is resolved twice; fds opened before the namespace was entered belong to the
node's mounts, which a mount in the new namespace cannot use, so they are opened again there
and proven to be the same folders (`reopen`).
"""

import ctypes
import errno
import os
import stat

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_RELATIME = 1 << 21
# What a read-only remount must keep of the mount it binds from: a user namespace may not
# clear flags the node mounted with (EPERM otherwise).
_KEPT_FLAGS = {
    os.ST_NOSUID: MS_NOSUID,
    os.ST_NODEV: MS_NODEV,
    os.ST_NOEXEC: MS_NOEXEC,
    os.ST_NOATIME: MS_NOATIME,
    os.ST_NODIRATIME: MS_NODIRATIME,
    os.ST_RELATIME: MS_RELATIME,
}
_PATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC

_WHY = {
    errno.EPERM: "unprivileged user namespaces are not allowed on this node "
    "(kernel.unprivileged_userns_clone=0, an AppArmor or seccomp restriction, or a container "
    "without them)",
    errno.ENOSPC: "user namespaces are switched off on this node (user.max_user_namespaces=0) "
    "or their limit is reached",
    errno.EACCES: "user namespaces are restricted on this node (AppArmor)",
    errno.EINVAL: "this kernel has no user or mount namespaces",
    errno.ENOSYS: "this kernel has no unshare(2)",
    errno.EUSERS: "too many nested user namespaces",
}


class ViewUnavailable(Exception):
    """This node gives the job no mount namespace of its own; the message says why."""


_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = (
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_void_p,
)


def _unshare(flags: int) -> None:
    if hasattr(os, "unshare"):  # Python 3.12+
        os.unshare(flags)
    elif _libc.unshare(flags) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def _mount(source: str | None, target: str, flags: int) -> None:
    if _libc.mount(source and source.encode(), target.encode(), None, flags, None) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), target)


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def enter_namespace() -> str:
    """Leave the node's mount table for a private one of this process's own; what kind of
    namespace it is, for the job's log."""
    uid, gid = os.getuid(), os.getgid()
    step = "unshare"
    try:
        if os.geteuid() == 0:
            _unshare(CLONE_NEWNS)
            kind = "mount namespace"
        else:
            _unshare(CLONE_NEWUSER | CLONE_NEWNS)
            step = "mapping the user's ids"
            _write("/proc/self/setgroups", "deny")
            _write("/proc/self/uid_map", f"{uid} {uid} 1")
            _write("/proc/self/gid_map", f"{gid} {gid} 1")
            kind = "user and mount namespace"
        step = "making mounts private"
        _mount(None, "/", MS_REC | MS_PRIVATE)
    except OSError as e:
        why = _WHY.get(e.errno or 0, "") if step == "unshare" else ""
        raise ViewUnavailable(f"{step}: {e.strerror}" + (f" ({why})" if why else "")) from None
    return kind


def reopen(fd: int, path: str) -> int:
    """The folder of `fd` (opened before the namespace was entered) opened again at `path`,
    proven to be the same folder."""
    again = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    before, now = os.fstat(fd), os.fstat(again)
    if (before.st_dev, before.st_ino) != (now.st_dev, now.st_ino):
        os.close(again)
        raise OSError(errno.ESTALE, "changed while the job's view was made", path)
    return again


def open_under(root: int, relative: str) -> int:
    """An O_PATH fd of `relative` below the folder fd `root` ("" for root itself), no link
    followed on the way."""
    fd = os.dup(root)
    try:
        for part in filter(None, relative.split("/")):
            inner = os.open(part, _PATH, dir_fd=fd)
            os.close(fd)
            fd = inner
        return fd
    except BaseException:
        os.close(fd)
        raise


def _fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def _kept_flags(fd: int) -> int:
    flags = os.statvfs(_fd_path(fd)).f_flag
    return sum(ms for st, ms in _KEPT_FLAGS.items() if flags & st)


def bind(source: int, target: int) -> None:
    """Mount what `source` is over what `target` is (both O_PATH fds of this namespace, of
    the same type). The new mount is read-only when the one `source` lies on is."""
    _mount(_fd_path(source), _fd_path(target), MS_BIND | MS_REC)


def make_read_only(source: int, target_path: str) -> None:
    """Make the mount just bound from `source` at `target_path` read-only. The path finds
    it again (the target's fd stays the entry under it): what is found there must be the
    source."""
    top = os.open(target_path, _PATH)
    try:
        bound, found = os.fstat(source), os.fstat(top)
        if (bound.st_dev, bound.st_ino) != (found.st_dev, found.st_ino):
            raise OSError(errno.ESTALE, "not what was just bound there", target_path)
        _mount(None, _fd_path(top), MS_REMOUNT | MS_BIND | MS_RDONLY | _kept_flags(top))
    finally:
        os.close(top)


def same_type(a: os.stat_result, b: os.stat_result) -> bool:
    return stat.S_IFMT(a.st_mode) == stat.S_IFMT(b.st_mode)
