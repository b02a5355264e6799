"""The job's view of its code: every program the job starts (bash, awk, R, compiled tools,
Python, children of children) sees the snapshot's files at their live paths.

`run` enters the view before it starts the job's command, which inherits it (`srun` tasks,
started by slurmstepd outside it, enter it through the `srun` wrapper put first on the job's
PATH: see `srun_wrapper`). In its own mount namespace (see namespace.py) the extracted copy is
bound over the live paths:
- a folder whole where, at submission, the live folder held nothing but the snapshot's
  files: a file deleted from it since is back, one added since is not there (the executor
  names these folders, `--whole`, see view_plan.py);
- elsewhere (a `Snakefile` beside `results/`) each of the snapshot's files alone; one deleted
  since submission from such a folder cannot be put back without touching the live tree, and
  is named in the job's log, as is one replaced by something of another type.
Links are not bound (a mount cannot cover a link); the files they lead to are.
Shared copies are bound read-only, the copy itself too (root ignores the files' modes), so a
write into the code fails (`Read-only file system`). With `--copy per-job` the job first gets
a private, writable copy of its own in its lease folder (gone with the lease when the job
ends), bound in place of the shared copy and over the live paths.

Only the sealed copy is used: the copy's folder must still be the one `enter` checked against
its seal moments before (inode and ctime of its root), and each bound entry must be the
sealed one (its inode). Everything is reached through the per-user folder's fd.
"""

import json
import os
import shlex
import socket
import stat
import sys
import time
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path

from snakemake_executor_plugin_frozen.dirfd import (
    FOLDER,
    NEW_FILE,
    READ,
    WALK,
    new_file,
    remove_tree,
)
from snakemake_executor_plugin_frozen.node import contract
from snakemake_executor_plugin_frozen.node.copy import _parse_seal, _read_seal
from snakemake_executor_plugin_frozen.node.namespace import (
    ViewUnavailable,
    bind,
    enter_namespace,
    make_read_only,
    open_under,
    reopen,
    same_type,
)
from snakemake_executor_plugin_frozen.node.scratch import NodeError, open_user_folder
from snakemake_executor_plugin_frozen.node.srun_wrapper import NAME as SRUN
from snakemake_executor_plugin_frozen.node.srun_wrapper import wrapper_script

_MANIFEST_FOLDER = ".frozen"  # the archive's own member, not a file of the code
_PRIVATE = "code"  # the per-job copy, inside the job's lease folder
_WRAPPERS = "bin"  # the job's wrappers (srun), inside the job's lease folder


@dataclass(frozen=True)
class Bind:
    path: str  # relative to the copy's root and to the live root alike
    folder: bool


@dataclass(frozen=True)
class ViewRequest:
    mode: str  # contract.VIEW_AUTO, VIEW_MOUNT or VIEW_PYTHON
    whole: tuple[str, ...]  # folders bound whole, relative to the copy's root
    live: tuple[str, ...] = ()  # files left live: the workflow writes them while parsed
    per_job: bool = False
    job: bool = True  # the batch job itself (its lease folder is here), not an srun task


def plan(entries: Mapping[str, str], whole: Iterable[str], live: Iterable[str] = ()) -> list[Bind]:
    """The binds: each folder of `whole` that the copy has, outermost only, and every file
    of the copy outside them but those of `live`. `entries` maps the copy's paths to their
    kinds ("d", "f", "l")."""
    left = frozenset(live)
    folders = {w for w in whole if entries.get(w) == "d" or w == ""}
    if "" in folders:
        return [Bind("", True)]
    kept = sorted(f for f in folders if not _under(f, folders))
    return [Bind(k, True) for k in kept] + [
        Bind(path, False)
        for path, kind in sorted(entries.items())
        if kind == "f" and path not in left and not _under(path, folders)
    ]


def _under(path: str, folders: set[str]) -> bool:
    """Whether a folder above `path` is one of `folders`."""
    while "/" in path:
        path = path.rpartition("/")[0]
        if path in folders:
            return True
    return False


def live_root(environ: Mapping[str, str]) -> Path:
    """The live folder the copy's root stands for: the code root, or the folder above it
    that the snapshot's outside files made the copy's root."""
    code_root = Path(environ[contract.FROZEN_CODE_ROOT])
    frozen_dir = Path(environ[contract.FROZEN_DIR])
    prefix = frozen_dir.relative_to(environ[contract.FROZEN_COPY]).parts
    if not prefix:
        return code_root
    if code_root.parts[-len(prefix) :] != prefix:
        raise NodeError(f"the code root {code_root} does not end with {'/'.join(prefix)}")
    return code_root.parents[len(prefix) - 1]


def sealed_entries(base: int, snapshot_id: str, copy: int) -> dict[str, tuple[str, ...]]:
    """The copy's entries as its seal has them, once the copy is proven the sealed one."""
    data = _read_seal(base, snapshot_id)
    parsed = _parse_seal(data) if data is not None else None
    now = os.fstat(copy)
    root = parsed[1].get(".") if parsed else None
    if root is None or (root[3], root[5]) != (str(now.st_ino), str(now.st_ctime_ns)):
        raise NodeError(
            f"the copy of snapshot {snapshot_id} changed after it was checked; run the job again"
        )
    assert parsed is not None
    return {
        path: fields
        for path, fields in parsed[1].items()
        if path != "." and path != _MANIFEST_FOLDER and not path.startswith(_MANIFEST_FOLDER + "/")
    }


def private_copy(copy: int, folder: int) -> int:
    """A writable copy of the copy `copy` as `<folder>/code`, made anew; its O_PATH fd.
    Without recursion: a tree of any depth is copied."""
    remove_tree(folder, _PRIVATE)
    os.mkdir(_PRIVATE, 0o700, dir_fd=folder)
    pending = [
        (
            os.open(".", os.O_RDONLY | os.O_DIRECTORY, dir_fd=copy),
            os.open(_PRIVATE, FOLDER, dir_fd=folder),
        )
    ]
    try:
        while pending:
            source, target = pending.pop()
            try:
                with os.scandir(source) as listing:
                    found = [(e.name, e.stat(follow_symlinks=False)) for e in listing]
                for name, info in found:
                    if stat.S_ISDIR(info.st_mode):
                        os.mkdir(name, 0o700, dir_fd=target)
                        pending.append(
                            (
                                os.open(name, FOLDER, dir_fd=source),
                                os.open(name, FOLDER, dir_fd=target),
                            )
                        )
                    elif stat.S_ISLNK(info.st_mode):
                        os.symlink(os.readlink(name, dir_fd=source), name, dir_fd=target)
                    elif stat.S_ISREG(info.st_mode):
                        _copy_file(source, target, name, info)
            finally:
                os.close(source)
                os.close(target)
    except BaseException:
        for source, target in pending:
            os.close(source)
            os.close(target)
        raise
    return os.open(_PRIVATE, WALK, dir_fd=folder)


def _copy_file(source: int, target: int, name: str, info: os.stat_result) -> None:
    mode = 0o700 if info.st_mode & 0o111 else 0o600
    read = os.open(name, READ, dir_fd=source)
    try:
        write = os.open(name, NEW_FILE, mode, dir_fd=target)
        try:
            left = info.st_size
            while left > 0 and (done := os.sendfile(write, read, None, left)):
                left -= done
        finally:
            os.close(write)
    finally:
        os.close(read)


def enter_view(request: ViewRequest, environ: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """Put this process (and so what it starts) in the job's view: the environment the job
    gets on top of its own, and the line for the job's log. Raises ViewUnavailable when
    the node cannot make a namespace, NodeError when the copy cannot be used."""
    started = time.monotonic()
    snapshot_id = environ[contract.FROZEN_SNAPSHOT]
    live_path = live_root(environ)
    copy_path = environ[contract.FROZEN_COPY]
    base, _ = open_user_folder(Path(environ[contract.FROZEN_SCRATCH]), create=False)
    opened: list[int] = [base]
    try:
        copy = os.open(snapshot_id, WALK, dir_fd=base)
        opened.append(copy)
        entries = sealed_entries(base, snapshot_id, copy)
        if request.job:
            lease = Path(environ[contract.FROZEN_JOB_DIR])
            leases = os.open(lease.parent.name, FOLDER, dir_fd=base)
            opened.append(leases)
            job_folder = os.open(lease.name, FOLDER, dir_fd=leases)
            opened.append(job_folder)
            _write_wrappers(job_folder)
        if request.per_job:
            private = private_copy(copy, job_folder)
            opened.append(private)
        live = os.open(live_path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        opened.append(live)
        kind = enter_namespace()
        # From here on, in the new namespace: the fds above name the node's mounts.
        copy = reopen(copy, copy_path)
        opened.append(copy)
        source = copy
        if request.per_job:
            source = reopen(private, f"{environ[contract.FROZEN_JOB_DIR]}/{_PRIVATE}")
            opened.append(source)
        live = reopen(live, str(live_path))
        opened.append(live)
        # The shared copy read-only (root ignores the files' modes); a per-job copy in its
        # place, so that FROZEN_DIR and the live paths show the same files. Binds made from
        # that mount are read-only as it is: no remount each (a remount per file grows
        # slower with every mount on the copy's file system).
        bind(source, copy)
        if not request.per_job:
            make_read_only(source, copy_path)
        mounted = reopen(source, copy_path)
        opened.append(mounted)
        binds = plan({p: f[0] for p, f in entries.items()}, request.whole, request.live)
        sealed = None if request.per_job else entries
        missed = [
            f"{shlex.quote(b.path)}: {why}"
            for b in binds
            if (why := _bind_one(mounted, live, b, sealed))
        ]
        os.chdir(os.getcwd())  # the working directory itself may lie under a new mount
    finally:
        for fd in opened:
            os.close(fd)
    folders = sum(b.folder for b in binds)
    line = (
        f"frozen: view: mount ({kind} on {socket.gethostname()}: {folders} folder(s) and "
        f"{len(binds) - folders} file(s) of snapshot {snapshot_id[:12]} at their live paths, "
        f"{'a private writable copy' if request.per_job else 'read-only'}; "
        f"{(time.monotonic() - started) * 1000:.1f} ms)"
    )
    if missed:
        line += (
            f"\nfrozen: view: {len(missed)} path(s) of the snapshot are seen live, as they could "
            "not be covered without changing the live tree: " + "; ".join(missed)
        )
    env = {
        contract.FROZEN_VIEW: contract.VIEW_MOUNT,
        contract.FROZEN_VIEW_REQUEST: request.mode,
        contract.FROZEN_VIEW_WHOLE: json.dumps(list(request.whole)),
        contract.FROZEN_VIEW_LIVE: json.dumps(list(request.live)),
    }
    if request.job:
        wrappers = f"{environ[contract.FROZEN_JOB_DIR]}/{_WRAPPERS}"
        env[contract.FROZEN_WRAPPERS] = wrappers
        env["PATH"] = os.pathsep.join(filter(None, [wrappers, environ.get("PATH", "")]))
    return env, line


def _write_wrappers(job_folder: int) -> None:
    """`bin/srun` in the job's own folder, which only this user can reach."""
    remove_tree(job_folder, _WRAPPERS)
    os.mkdir(_WRAPPERS, 0o700, dir_fd=job_folder)
    folder = os.open(_WRAPPERS, FOLDER, dir_fd=job_folder)
    try:
        with new_file(folder, SRUN, 0o700) as f:
            f.write(wrapper_script(sys.executable).encode())
    finally:
        os.close(folder)


def enter_job_view(request: ViewRequest, environ: MutableMapping[str, str]) -> bool:
    """Enter the view as asked, or say in the job's log why the job runs without it: whether
    the job runs in the mount view. Raises NodeError when the view was required."""
    host = socket.gethostname()
    what = "the job" if request.job else "this srun task of the job"
    if request.mode == contract.VIEW_PYTHON:
        print(
            "frozen: view: python (asked for: frozen-view python; only Python's open() and "
            "imports read the snapshot)",
            file=sys.stderr,
        )
        environ[contract.FROZEN_VIEW] = contract.VIEW_PYTHON
        return False
    try:
        env, line = enter_view(request, environ)
    except ViewUnavailable as e:
        if request.mode == contract.VIEW_MOUNT or request.per_job:
            setting = "frozen-copy per-job" if request.per_job else "frozen-view mount"
            raise NodeError(
                f"the job's mount view is unavailable on {host}: {e}. With {setting} {what} "
                "does not run without it: use frozen-view auto to run such jobs with only "
                "Python's reads frozen, or ask the cluster's administrators to allow "
                "unprivileged user namespaces on the nodes."
            ) from None
        print(
            f"frozen: view: python{'' if request.job else ' for ' + what} (the mount view is "
            f"unavailable on {host}: {e}; only Python's open() and imports read the snapshot)",
            file=sys.stderr,
        )
        environ[contract.FROZEN_VIEW] = contract.VIEW_PYTHON
        return False
    if request.job:  # one line per job: its srun tasks say only what went wrong
        print(line, file=sys.stderr)
    environ.update(env)
    return True


def view_exec(command: list[str], environ: MutableMapping[str, str]) -> int:
    """An srun task of a job in the view: enter it on this node, then become the program."""
    request = ViewRequest(
        environ.get(contract.FROZEN_VIEW_REQUEST, contract.VIEW_AUTO),
        tuple(json.loads(environ.get(contract.FROZEN_VIEW_WHOLE, "[]"))),
        tuple(json.loads(environ.get(contract.FROZEN_VIEW_LIVE, "[]"))),
        job=False,
    )
    enter_job_view(request, environ)
    os.execvpe(command[0], command, environ)
    return 127  # not reached


def _bind_one(
    source: int, live: int, item: Bind, sealed: Mapping[str, tuple[str, ...]] | None
) -> str:
    """Bind one entry; "" when done, else why it could not be."""
    try:
        entry = open_under(source, item.path)
    except OSError as e:
        raise NodeError(f"the copy lacks {item.path!r} ({e.strerror}); run the job again") from e
    try:
        info = os.fstat(entry)
        if sealed is not None and str(info.st_ino) != sealed.get(item.path, ("",) * 4)[3]:
            raise NodeError(f"{item.path!r} of the copy is not the sealed one; run the job again")
        try:
            target = open_under(live, item.path)
        except FileNotFoundError:
            return "deleted since submission"
        except NotADirectoryError:
            return "a folder on its path was replaced since submission"
        try:
            if not same_type(info, os.fstat(target)):
                return "replaced by something else since submission"
            bind(entry, target)
        finally:
            os.close(target)
        return ""
    finally:
        os.close(entry)
