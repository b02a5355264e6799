"""The node helper's command line, which the batch script calls (see `contract`):

    python -P -m snakemake_executor_plugin_frozen.node enter --archive A --sha256 S --id ID \
        --code-root LIVE [--prefix P] --scratch TEMPLATE [--keep] [--stale-after SECONDS] \
        --holder PID
    python -P -m snakemake_executor_plugin_frozen.node enter ... --scratch-path DIR \
        --job-lease JOBID
    python -P -m snakemake_executor_plugin_frozen.node run [--grace SECONDS] -- PROGRAM ARGS
    python -P -m snakemake_executor_plugin_frozen.node leave [--job-lease JOBID]
"""

import argparse
import math
import os
import re
import shlex
import sys
from collections.abc import Sequence

from snakemake_executor_plugin_frozen.node import contract
from snakemake_executor_plugin_frozen.node.commands import enter, leave
from snakemake_executor_plugin_frozen.node.leases import JOB_ID
from snakemake_executor_plugin_frozen.node.scratch import NodeError
from snakemake_executor_plugin_frozen.node.supervise import run


def _snapshot_id(text: str) -> str:
    # It names entries of the per-user folder: no path separators, no dot names.
    if not re.fullmatch(r"[0-9a-f]{8,64}", text):
        raise argparse.ArgumentTypeError(f"not a snapshot id: {text!r}")
    return text


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"not a number of seconds (0 or more, or inf): {text!r}")
    return value


def _job_id(text: str) -> str:
    if not JOB_ID.fullmatch(text):
        raise argparse.ArgumentTypeError(f"not a SLURM job id: {text!r}")
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {contract.MODULE}")
    commands = parser.add_subparsers(dest="command", required=True)
    enter_parser = commands.add_parser(contract.ENTER, help="verify, extract once, print exports")
    enter_parser.add_argument(contract.ARCHIVE, required=True)
    enter_parser.add_argument(contract.SHA256, required=True)
    enter_parser.add_argument(contract.ID, required=True, type=_snapshot_id)
    enter_parser.add_argument(contract.CODE_ROOT, required=True)
    enter_parser.add_argument(contract.PREFIX, default="", help="the code root's place in the copy")
    enter_parser.add_argument(contract.SCRATCH, default="", help="the frozen-scratch template")
    enter_parser.add_argument(contract.SCRATCH_PATH, default="", help="the scratch, resolved")
    enter_parser.add_argument(contract.KEEP, action="store_true")
    enter_parser.add_argument(
        contract.STALE_AFTER,
        type=_seconds,
        default=contract.STALE_AFTER_SECONDS,
        help="remove what earlier jobs left of other snapshots once unused this many seconds "
        "and held by no running job ('inf': never)",
    )
    holder = enter_parser.add_mutually_exclusive_group(required=True)
    holder.add_argument(contract.HOLDER, type=int, help="the job shell's pid")
    holder.add_argument(contract.JOB_LEASE, type=_job_id, help="the SLURM job id (other nodes)")
    leave_parser = commands.add_parser(
        contract.LEAVE, help="release the snapshot; remove it after the last job"
    )
    leave_parser.add_argument(
        contract.JOB_LEASE, type=_job_id, help="the SLURM job id (other nodes)"
    )
    run_parser = commands.add_parser(
        contract.RUN, help="run the job's command; end it, and what it leaves, when it is stuck"
    )
    run_parser.add_argument(
        "--grace",
        type=float,
        default=5.0,
        help="seconds the job gets to end by itself after its Snakemake announced its "
        "shutdown, or after a termination signal",
    )
    run_parser.add_argument(
        contract.SINGLE_RULE,
        action="store_true",
        help="the job runs one rule (no group): also end it when it hangs after logging "
        "that it will exit after its running jobs",
    )
    run_parser.add_argument("job_command", nargs="+", help="after --: the program and its args")
    args = parser.parse_args(argv)
    try:
        if args.command == contract.RUN:
            return run(args.job_command, args.grace, args.single_rule)
        if args.command == contract.ENTER:
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
