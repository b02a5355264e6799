"""The node helper's command line, which the batch script calls (see `contract`):

    python -P -m snakemake_executor_plugin_frozen.node enter --archive A --sha256 S --id ID \
        --code-root LIVE [--prefix P] --scratch TEMPLATE [--keep] [--stale-after SECONDS] \
        --holder PID
    python -P -m snakemake_executor_plugin_frozen.node enter ... --scratch-path DIR \
        --job-lease JOBID
    python -P -m snakemake_executor_plugin_frozen.node run [--grace SECONDS] [--single-rule] \
        [--view auto|mount|python [--whole FOLDER]... [--per-job-copy]] -- PROGRAM ARGS
    python -P -m snakemake_executor_plugin_frozen.node view-exec -- PROGRAM ARGS
    python -P -m snakemake_executor_plugin_frozen.node srun -- SRUN_ARGS
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
from snakemake_executor_plugin_frozen.node.srun_wrapper import srun
from snakemake_executor_plugin_frozen.node.supervise import run
from snakemake_executor_plugin_frozen.node.view import ViewRequest, enter_job_view, view_exec


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
        help="seconds the job must stay frozen after its Snakemake announced its shutdown "
        "before it is ended (see supervise.py), and the seconds it gets to end by itself "
        "after a termination signal",
    )
    run_parser.add_argument(
        contract.SINGLE_RULE,
        action="store_true",
        help="the job runs one rule (no group): also look for a frozen job after Snakemake "
        "logged that it will exit after its running jobs, or an exception in a worker",
    )
    run_parser.add_argument(
        contract.VIEW,
        choices=(contract.VIEW_AUTO, contract.VIEW_MOUNT, contract.VIEW_PYTHON),
        help="run the job in its view of the snapshot (a frozen job; see node/view.py)",
    )
    run_parser.add_argument(
        contract.WHOLE,
        action="append",
        default=[],
        help="a folder of the copy bound whole over its live twin (relative to the copy)",
    )
    run_parser.add_argument(
        contract.LIVE,
        action="append",
        default=[],
        help="a file of the copy left live (the workflow writes it while parsed)",
    )
    run_parser.add_argument(
        contract.PER_JOB_COPY, action="store_true", help="a private writable copy per job"
    )
    run_parser.add_argument("job_command", nargs="+", help="after --: the program and its args")
    view_exec_parser = commands.add_parser(
        contract.VIEW_EXEC, help="an srun task of a job in its view: enter it, run the program"
    )
    view_exec_parser.add_argument("job_command", nargs="+", help="after --: the program and args")
    srun_parser = commands.add_parser(
        contract.SRUN, help="srun of a job in its view: the tasks enter the view too"
    )
    srun_parser.add_argument("srun_args", nargs="*", help="after --: srun's arguments")
    args = parser.parse_args(argv)
    try:
        if args.command == contract.RUN:
            in_view = args.view is not None and enter_job_view(
                ViewRequest(args.view, tuple(args.whole), tuple(args.live), args.per_job_copy),
                os.environ,
            )
            return run(args.job_command, args.grace, args.single_rule, in_view)
        if args.command == contract.VIEW_EXEC:
            return view_exec(args.job_command, os.environ)
        if args.command == contract.SRUN:
            return srun(args.srun_args, os.environ)
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
