"""The scratch folder on the node, and the per-user folder in it that the job trusts.

Nothing in scratch is believed unless this user made it there and it is still as made (see
`copy` for the copy itself):
- The scratch folder and every folder above it must belong to root or the user and be
  writable by nobody else unless sticky (ssh's StrictModes), and
  `<scratch>/snakemake-frozen-<uid>` must be the user's own real folder with mode 0700. It is
  opened once; everything below it goes through that folder's fd, so no path another user
  could swap is resolved again.

`<scratch>/snakemake-frozen-<uid>/` holds, per snapshot id:
  <id>/              the copy; the job runs from `<id>/<prefix>`, the copy of the code root
                     (the prefix is empty unless the snapshot holds files from outside it)
  <id>.seal          the copy's seal (0400)
  <id>.lock          serialises extraction, checks, leases and removal (0600)
  <id>.leases/<name>/  one per job using the copy, which is also that job's own folder
                     (FROZEN_JOB_DIR); its `holder` file says who holds it
Names starting with a dot are temporary, and debris once no job holds the lock.
"""

import errno
import os
import re
import shlex
import socket
import stat
from collections.abc import Mapping
from pathlib import Path

from snakemake_executor_plugin_frozen.dirfd import FOLDER, WALK, descend

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class NodeError(Exception):
    """A job cannot run from its snapshot; the message says why and what to do."""


def resolve_scratch(template: str, environ: Mapping[str, str]) -> Path:
    """The scratch directory on this node. `{VAR}` placeholders (not `$VAR`, which Snakemake
    expands on the login node) are filled from the job's environment."""
    if not template:
        name = next((n for n in ("SLURM_TMPDIR", "TMPDIR") if environ.get(n)), "")
        if not name:
            return Path("/tmp")
        return absolute(Path(environ[name]), f"${name} (the default of frozen-scratch)")

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if not environ.get(name):
            raise NodeError(
                f"setting frozen-scratch {template!r} names {{{name}}}, but ${name} is not "
                "set on this node; set it in the job environment or change the setting"
            )
        return environ[name]

    return absolute(Path(_PLACEHOLDER.sub(fill, template)), f"setting frozen-scratch {template!r}")


def absolute(scratch: Path, origin: str) -> Path:
    if not scratch.is_absolute():
        raise NodeError(
            f"{origin} gives the relative path {str(scratch)!r}: on the node it would lie in "
            "the job's working directory, inside the live workflow (where the next snapshot "
            "would pack it); set frozen-scratch to an absolute folder, e.g. '{TMPDIR}/frozen'"
        )
    return scratch


def unsafe(info: os.stat_result, uid: int) -> str:
    """Why someone but root and `uid` could replace what lies in this folder, or ""."""
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid not in (0, uid):
        return f"is owned by uid {info.st_uid}, not by root or you (uid {uid})"
    if mode & 0o022 and not mode & stat.S_ISVTX:
        who = "others" if mode & 0o002 else "its group"
        return f"is writable by {who} (mode {mode:04o}) and not sticky"
    return ""


def open_scratch(scratch: Path) -> tuple[int, Path]:
    """The scratch folder, reached from / one folder at a time without following links, each
    folder on the way checked (`unsafe`): its O_PATH fd and real path. Links in the setting
    are resolved once, first; the folders they lead to are what is checked and used."""
    real = Path(os.path.realpath(scratch))
    uid = os.getuid()
    fd, here = os.open("/", WALK), Path("/")
    try:
        while True:
            why = unsafe(os.fstat(fd), uid)
            if why:
                raise NodeError(
                    f"refusing the scratch folder {scratch}: {here} {why}, so another user "
                    "could replace what lies below it and plant code that this job would run. "
                    f"Make {here} belong to root or you and writable by nobody else (or "
                    "sticky, like /tmp), or change the setting frozen-scratch"
                )
            if here == real:
                return fd, real
            part = real.parts[len(here.parts)]
            try:
                fd = descend(fd, part, WALK)
            except FileNotFoundError:
                folder = shlex.quote(str(scratch))
                raise NodeError(
                    f"the scratch folder {scratch} does not exist on {socket.gethostname()}: "
                    f"create it (mkdir -p {folder} && chmod 1777 {folder}) or change the "
                    "setting frozen-scratch"
                ) from None
            except OSError as e:
                raise NodeError(
                    f"cannot reach the scratch folder {scratch}: {here / part}: {e.strerror}; "
                    "fix it or change the setting frozen-scratch"
                ) from e
            here = here / part
    except BaseException:
        os.close(fd)
        raise


def open_user_folder(scratch: Path, create: bool) -> tuple[int, Path]:
    """`<scratch>/snakemake-frozen-<uid>`, private to the user (other users on a shared node
    must not be able to plant or alter code that our jobs would run), made if missing when
    `create`: its fd, opened once, and its path."""
    scratch_fd, real = open_scratch(scratch)
    name = f"snakemake-frozen-{os.getuid()}"
    path = real / name
    try:
        made = create and _make_folder(scratch_fd, name, real)
        try:
            fd = os.open(name, FOLDER, dir_fd=scratch_fd)
        except FileNotFoundError:
            raise NodeError(f"{path} is gone: nothing to release") from None
        except OSError:
            what = kind(os.stat(name, dir_fd=scratch_fd, follow_symlinks=False))
            raise NodeError(
                f"{path} is {what}, not a folder: refusing to run code from it. Remove it "
                f"(rm {shlex.quote(str(path))}) or change the setting frozen-scratch"
            ) from None
    finally:
        os.close(scratch_fd)
    if made:
        os.fchmod(fd, 0o700)  # whatever the umask
    info = os.fstat(fd)
    why = _not_private(info)
    if why:
        os.close(fd)
        raise NodeError(
            f"{path} {why}: refusing to run code from it. Remove it (rm -rf "
            f"{shlex.quote(str(path))}; the next job makes it again, private) or change the "
            "setting frozen-scratch"
        )
    return fd, path


def _make_folder(scratch: int, name: str, real: Path) -> bool:
    try:
        os.mkdir(name, 0o700, dir_fd=scratch)
    except FileExistsError:
        return False
    except OSError as e:
        raise NodeError(
            f"cannot create {real / name} in the scratch folder {real}: {e.strerror}; make "
            f"it writable for its users (chmod 1777 {shlex.quote(str(real))}) or change the "
            "setting frozen-scratch"
        ) from e
    return True


def _not_private(info: os.stat_result) -> str:
    uid = os.getuid()
    if info.st_uid != uid:
        return (
            f"is owned by uid {info.st_uid}, not by you (uid {uid}): another user made it, and "
            "what it holds may be theirs"
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode != 0o700:
        return f"has mode {mode:04o}, not 0700: other users could have planted files in it"
    return ""


def kind(info: os.stat_result) -> str:
    if stat.S_ISLNK(info.st_mode):
        return "a symbolic link"
    return "a file" if stat.S_ISREG(info.st_mode) else "a special file"


def scratch_error(scratch: Path, error: OSError, doing: str) -> NodeError:
    """A problem of the scratch folder, named as one: the folder and the setting."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return NodeError(
            f"the scratch folder {scratch} is full ({error.strerror}) while {doing}: free "
            "space there or set frozen-scratch to a folder with room"
        )
    return NodeError(
        f"cannot use the scratch folder {scratch} while {doing}: {error.strerror or error}; "
        "fix it or set frozen-scratch to another folder"
    )
