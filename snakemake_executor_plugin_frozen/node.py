"""What a job runs on its compute node before and after Snakemake: `enter` verifies the
snapshot, extracts it once per node and prints the shell exports that point the job at it;
`leave` releases it and removes the copy when the node's last job using it has ended.

Extracted copies live in `<scratch>/snakemake-frozen-<uid>/<id>/`; the job runs from
`<id>/<prefix>`, the copy of the code root (the prefix is empty unless the snapshot holds
files from outside the code root, which then lie above it). Every job holds a lease file
(`<id>.leases/<host>.<pid>`) while it runs; a lease whose process is gone is stale, so a
job killed without running its EXIT trap does not pin the copy forever. The lock file
`<id>.lock` serialises extraction, leasing and removal.

A job spanning several nodes runs `enter --job-lease` on every node of its allocation
(through `srun`, one task per node) after the first node's own `enter`: each node extracts
its own copy at the same path, leased by the SLURM job id until `leave --job-lease`.

    python -P -m snakemake_executor_plugin_frozen.node enter --archive A --sha256 S --id ID \
        --code-root LIVE [--prefix P] --scratch TEMPLATE [--keep] --holder PID
    python -P -m snakemake_executor_plugin_frozen.node enter ... --scratch-path DIR \
        --job-lease JOBID
    python -P -m snakemake_executor_plugin_frozen.node leave [--job-lease JOBID]
"""

import argparse
import contextlib
import fcntl
import os
import re
import shlex
import shutil
import socket
import stat
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Put first on every job's PYTHONPATH: holds the sitecustomize that every Python process of
# the job runs.
JOBSITE = Path(__file__).resolve().parent / "jobsite"


class NodeError(Exception):
    """A job cannot run from its snapshot; the message says why and what to do."""


# -- pure decisions -------------------------------------------------------------------------


def resolve_scratch(template: str, environ: Mapping[str, str]) -> Path:
    """The scratch directory on this node. `{VAR}` placeholders (not `$VAR`, which Snakemake
    expands on the login node) are filled from the job's environment."""
    if not template:
        for name in ("SLURM_TMPDIR", "TMPDIR"):
            if environ.get(name):
                return Path(environ[name])
        return Path("/tmp")

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if not environ.get(name):
            raise NodeError(
                f"setting frozen-scratch {template!r} names {{{name}}}, but ${name} is not "
                "set on this node; set it in the job environment or change the setting"
            )
        return environ[name]

    return Path(_PLACEHOLDER.sub(fill, template))


def frozen_pythonpath(
    frozen_dir: Path,
    code_root: Path,
    pythonpath: str,
    sys_path: Sequence[str],
    exists=os.path.isdir,
) -> list[str]:
    """PYTHONPATH for the job: the copy's root first, then every entry that points into the
    live code root rewritten to the same place in the copy. `sys_path` brings in directories
    that `.pth` files add (an editable `pip install -e .` of a `src/` package), which must be
    shadowed by their frozen twins too. An entry whose twin is not in the snapshot is kept
    live, as there is nothing frozen to use instead."""

    def twin(entry: str) -> str | None:
        try:
            relative = Path(os.path.abspath(entry)).relative_to(code_root)
        except ValueError:
            return None
        candidate = frozen_dir / relative
        return str(candidate) if exists(candidate) else None

    entries = [str(frozen_dir)]
    for entry in filter(None, pythonpath.split(os.pathsep)):
        entries.append(twin(entry) or entry)
    for entry in sys_path:
        frozen_twin = twin(entry) if entry else None
        if frozen_twin:
            entries.append(frozen_twin)
    return list(dict.fromkeys(entries))


# -- file system ----------------------------------------------------------------------------


def user_directory(scratch: Path) -> Path:
    """`<scratch>/snakemake-frozen-<uid>`, private to the user: other users on a shared node
    must not be able to plant or alter code that our jobs would run."""
    uid = os.getuid()
    directory = scratch / f"snakemake-frozen-{uid}"
    scratch.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        directory.mkdir(mode=0o700)
    info = directory.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid:
        raise NodeError(
            f"{directory} is not a directory owned by uid {uid}; refusing to run code from "
            "it. Remove it or choose another scratch (setting frozen-scratch)."
        )
    if stat.S_IMODE(info.st_mode) != 0o700:
        directory.chmod(0o700)
    return directory


def lock_of(copy: Path) -> Path:
    """The lock serialising extraction, leases and removal of one extracted copy."""
    return copy.with_name(f"{copy.name}.lock")


@contextmanager
def locked(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def lease_is_live(lease: Path, host: str) -> bool:
    lease_host, _, pid = lease.name.rpartition(".")
    if lease_host != host or not pid.isdigit():
        return True  # another node's lease on a shared scratch: we cannot tell, keep it
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prune_stale(directory: Path, host: str) -> list[Path]:
    """Remove dead holders' leases (or job dirs); return those still live."""
    live = []
    for entry in sorted(directory.iterdir()) if directory.is_dir() else ():
        if lease_is_live(entry, host):
            live.append(entry)
        else:
            remove(entry)
    return live


def remove(path: Path) -> None:
    """Remove a file or a tree so that it disappears at once: rename, then delete, so that
    a crash half-way never leaves a partial copy under a trusted name. Another job may be
    removing the same stale entry at the same moment; then there is nothing left to do."""
    try:
        if path.is_dir() and not path.is_symlink():
            doomed = path.with_name(f".{path.name}.deleting.{os.getpid()}")
            os.replace(path, doomed)
            shutil.rmtree(doomed, ignore_errors=True)
        else:
            path.unlink()
    except FileNotFoundError:
        pass


def enter(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, str]:
    from snakemake_executor_plugin_frozen.snapshot import SnapshotError, extract

    started = time.monotonic()
    host = socket.gethostname()
    scratch = (
        Path(args.scratch_path) if args.scratch_path else resolve_scratch(args.scratch, environ)
    )
    base = user_directory(scratch)
    copy = base / args.id
    leases = base / f"{args.id}.leases"
    lease = leases / lease_name(host, args.holder, args.job_lease)
    with locked(lock_of(copy)):
        for leftover in base.glob(f".{args.id}.*"):  # debris of a crashed extract or remove
            shutil.rmtree(leftover, ignore_errors=True)
        reused = copy.is_dir()
        if not reused:
            try:
                extract(Path(args.archive), copy, args.sha256)
            except SnapshotError as e:
                raise NodeError(f"snapshot {args.id} from {args.archive}: {e}") from e
        leases.mkdir(exist_ok=True)
        lease.touch()
    frozen_dir = copy / args.prefix if args.prefix else copy
    print(
        f"frozen: snapshot {args.id} from {args.archive} "
        f"{'reused' if reused else 'extracted'} at {frozen_dir} on {host} "
        f"({time.monotonic() - started:.2f} s)",
        file=sys.stderr,
    )
    if args.job_lease:
        return {}  # another node of a multi-node job: the first node's exports hold
    jobs = base / "jobs"
    jobs.mkdir(exist_ok=True)
    prune_stale(jobs, host)
    job_dir = jobs / f"{host}.{args.holder}"
    remove(job_dir)  # a dead job's, whose pid this job now has
    job_dir.mkdir()
    pythonpath = frozen_pythonpath(
        frozen_dir, Path(args.code_root), environ.get("PYTHONPATH", ""), sys.path
    )
    return {
        "FROZEN_DIR": str(frozen_dir),
        "FROZEN_COPY": str(copy),
        "FROZEN_SCRATCH": str(scratch),
        "FROZEN_SNAPSHOT": args.id,
        "FROZEN_CODE_ROOT": args.code_root,
        "FROZEN_JOB_DIR": str(job_dir),
        "FROZEN_LEASE": str(lease),
        "FROZEN_KEEP": "1" if args.keep else "",
        "FROZEN_PYTHONPATH": os.pathsep.join(e for e in pythonpath if Path(e).is_relative_to(copy)),
        # The job-site folder first: its sitecustomize makes every Python process of the
        # job import and read the snapshot's files (see jobsite/sitecustomize.py).
        "PYTHONPATH": os.pathsep.join([str(JOBSITE), *pythonpath]),
    }


def lease_name(host: str, holder: int | None, job_lease: str | None) -> str:
    """`<host>.<pid>` for the job shell on the first node; `<host>.job<id>` on the other
    nodes of a multi-node job, where no process of ours lives on to be checked."""
    return f"{host}.job{job_lease}" if job_lease else f"{host}.{holder}"


def leave(environ: Mapping[str, str], job_lease: str | None = None) -> None:
    copy = Path(environ["FROZEN_COPY"])
    host = socket.gethostname()
    if job_lease:
        lease = copy.with_name(f"{copy.name}.leases") / lease_name(host, None, job_lease)
    else:
        lease = Path(environ["FROZEN_LEASE"])
        remove(Path(environ["FROZEN_JOB_DIR"]))
    with locked(lock_of(copy)):
        lease.unlink(missing_ok=True)
        if not prune_stale(lease.parent, host) and not environ.get("FROZEN_KEEP"):
            remove(copy)
            with contextlib.suppress(FileNotFoundError):
                lease.parent.rmdir()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m snakemake_executor_plugin_frozen.node")
    commands = parser.add_subparsers(dest="command", required=True)
    enter_parser = commands.add_parser("enter", help="verify, extract once, print exports")
    enter_parser.add_argument("--archive", required=True)
    enter_parser.add_argument("--sha256", required=True)
    enter_parser.add_argument("--id", required=True)
    enter_parser.add_argument("--code-root", required=True)
    enter_parser.add_argument("--prefix", default="", help="the code root's place in the copy")
    enter_parser.add_argument("--scratch", default="", help="the frozen-scratch template")
    enter_parser.add_argument("--scratch-path", default="", help="the scratch, resolved")
    enter_parser.add_argument("--keep", action="store_true")
    holder = enter_parser.add_mutually_exclusive_group(required=True)
    holder.add_argument("--holder", type=int, help="the job shell's pid")
    holder.add_argument("--job-lease", help="the SLURM job id (other nodes of a job)")
    leave_parser = commands.add_parser(
        "leave", help="release the snapshot; remove it after the last job"
    )
    leave_parser.add_argument("--job-lease", help="the SLURM job id (other nodes of a job)")
    args = parser.parse_args(argv)
    try:
        if args.command == "enter":
            for name, value in enter(args, os.environ).items():
                print(f"export {name}={shlex.quote(value)}")
        else:
            leave(os.environ, args.job_lease)
    except (NodeError, OSError) as e:
        print(f"frozen: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
