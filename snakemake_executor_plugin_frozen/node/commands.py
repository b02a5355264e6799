"""`enter` and `leave`: a job's snapshot on its node, before and after its work.

`enter` checks the scratch folder, extracts the snapshot once per node (or proves the copy
already there is still the snapshot's), takes the job's lease, removes what earlier jobs
left behind and returns the exports that point the job at the copy; `leave` releases the
lease and removes the copy when the node's last job using it has ended.
"""

import argparse
import os
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from snakemake_executor_plugin_frozen.node import contract
from snakemake_executor_plugin_frozen.node.cleanup import clean_stale
from snakemake_executor_plugin_frozen.node.copy import locked, prepare_copy, remove_copy
from snakemake_executor_plugin_frozen.node.leases import (
    JOB_ID,
    holder_record,
    lease_name,
    release,
    take_lease,
)
from snakemake_executor_plugin_frozen.node.scratch import (
    absolute,
    open_user_folder,
    resolve_scratch,
    scratch_error,
)

# Put first on every job's PYTHONPATH: holds the sitecustomize that every Python process of
# the job runs.
JOBSITE = Path(__file__).resolve().parent.parent / "jobsite"


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


def enter(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, str]:
    started = time.monotonic()
    host = socket.gethostname()
    scratch = (
        absolute(Path(args.scratch_path), contract.SCRATCH_PATH)
        if args.scratch_path
        else resolve_scratch(args.scratch, environ)
    )
    base, folder = open_user_folder(scratch, create=True)
    copy = folder / args.id
    job_id = environ.get("SLURM_JOB_ID", "")
    job_id = job_id if JOB_ID.fullmatch(job_id) else ""
    name = lease_name(host, args.holder, args.job_lease, job_id)
    frozen_dir = copy / args.prefix if args.prefix else copy
    try:
        try:
            with locked(base, args.id):
                difference = prepare_copy(base, copy, Path(args.archive), args.sha256)
                record = holder_record(host, args.holder, args.job_lease)
                take_lease(base, args.id, name, record, host)
        except OSError as e:
            raise scratch_error(folder.parent, e, f"preparing {copy}") from e
        print(
            f"frozen: snapshot {args.id} from {args.archive} "
            f"{'reused' if difference is None else 'extracted'} at {frozen_dir} on {host} "
            f"({time.monotonic() - started:.2f} s)",
            file=sys.stderr,
        )
        if difference:
            print(
                f"frozen: the copy at {copy} differs from snapshot {args.id} (changed: "
                f"{difference}): extracted again",
                file=sys.stderr,
            )
        # After the line above, which the job's log starts with; this job's lock is free.
        clean_stale(base, folder, args.id, args.stale_after, host, job_id)
    finally:
        os.close(base)
    if args.job_lease:
        return {}  # another node of a multi-node job: the first node's exports hold
    pythonpath = frozen_pythonpath(
        frozen_dir, Path(args.code_root), environ.get("PYTHONPATH", ""), sys.path
    )
    return {
        contract.FROZEN_DIR: str(frozen_dir),
        contract.FROZEN_COPY: str(copy),
        contract.FROZEN_SCRATCH: str(folder.parent),
        contract.FROZEN_SNAPSHOT: args.id,
        contract.FROZEN_CODE_ROOT: args.code_root,
        contract.FROZEN_JOB_DIR: str(folder / f"{args.id}.leases" / name),
        contract.FROZEN_KEEP: "1" if args.keep else "",
        contract.FROZEN_PYTHONPATH: os.pathsep.join(
            e for e in pythonpath if Path(e).is_relative_to(copy)
        ),
        # The job-site folder first: its sitecustomize makes every Python process of the
        # job import and read the snapshot's files (see jobsite/sitecustomize.py).
        "PYTHONPATH": os.pathsep.join([str(JOBSITE), *pythonpath]),
        # A job run as root could write __pycache__ into the read-only copy, which the next
        # job would (rightly) see as a changed copy and extract again.
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def leave(environ: Mapping[str, str], job_lease: str | None = None) -> None:
    host = socket.gethostname()
    snapshot_id = environ[contract.FROZEN_SNAPSHOT]
    name = (
        lease_name(host, None, job_lease, "")
        if job_lease
        else Path(environ[contract.FROZEN_JOB_DIR]).name
    )
    base, _ = open_user_folder(Path(environ[contract.FROZEN_SCRATCH]), create=False)
    try:
        with locked(base, snapshot_id):
            live = release(base, snapshot_id, name, host)
            if not live and not environ.get(contract.FROZEN_KEEP):
                remove_copy(base, snapshot_id)
    finally:
        os.close(base)
