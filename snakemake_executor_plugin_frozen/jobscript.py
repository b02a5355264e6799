"""The batch script every job runs: pure text rendering, no I/O.

A script file rather than `sbatch --wrap`: `--wrap` would expand `$FROZEN_DIR` on the login
node, and long command lines hit SLURM's submit line limit.

Every value in the script is one bash word that gives back exactly that value
(`shellwords.quote`); the only words that expand on the node are our own `"$FROZEN_DIR/..."`
(`frozen_path`) and the variables of the lines below. The job's command comes quoted the same
way from `Executor.format_job_exec`. The comment line holds no control character
(`shellwords.visible`): a newline there would start a line of code, or an `#SBATCH` directive.

The job's command runs under the node helper's `run` (see node/supervise.py: it ends a job whose
Snakemake hangs after a failure, and every process a job leaves behind), which starts this
very script again with `JOB_MODE` as its argument: the command stays a line of the script,
whatever its length, instead of becoming one argument (at most 128 KiB on Linux). How the
script calls the node helper, and the variables it exports, are in `node.contract`.
"""

import sys
from dataclasses import dataclass
from pathlib import Path

from snakemake_executor_plugin_frozen.node import contract
from snakemake_executor_plugin_frozen.shellwords import ShellWord, join, quote, visible


@dataclass(frozen=True)
class FrozenEntry:
    """How the job reaches its snapshot on the node."""

    python: str  # interpreter that runs the node helper (the one Snakemake runs under)
    archive: Path
    archive_sha256: str
    snapshot_id: str
    code_root: Path  # the live tree the snapshot was taken from
    prefix: str  # the code root's folder inside the extracted copy ("" for its top)
    scratch: str  # template with {VAR} placeholders, resolved on the node
    keep_extracted: bool
    # After how many seconds unused a node's job removes what earlier jobs left there.
    stale_after: float = contract.STALE_AFTER_SECONDS
    view: str = contract.VIEW_AUTO  # frozen-view
    whole: tuple[str, ...] = ()  # the copy's folders the view binds whole
    live: tuple[str, ...] = ()  # the copy's files the view leaves live
    per_job_copy: bool = False  # frozen-copy per-job


def double_quoted(text: str) -> str:
    """Escape text for use inside "..." in bash, so that only our own $VARS expand."""
    return "".join("\\" + c if c in '"$`\\' else c for c in text)


def frozen_path(relative: str) -> ShellWord:
    """A shell word for a path inside the extracted copy, expanded on the node."""
    if relative.isprintable():
        return ShellWord(f'"${contract.FROZEN_DIR}/{double_quoted(relative)}"')
    return ShellWord(f'"${contract.FROZEN_DIR}/"{quote(relative)}')


JOB_MODE = "--frozen-job-command"


def render(
    description: str,
    job_command: str,
    entry: FrozenEntry | None,
    *,
    python: str = sys.executable,
    ended: Path | None = None,
    single_rule: bool = False,
) -> str:
    """The batch script; `python` runs the node helper's `run` (the interpreter Snakemake
    runs under, as for `FrozenEntry.python`). With `ended`, a file named after the job
    (`<id>`, an array task `<arrayid>_<task>`) appears there once its command is over, holding
    its exit status and node: the executor's end hint (job_tracking.py). `single_rule`: the job
    is no group (see `node.supervise.WILL_EXIT`)."""
    lines = [
        "#!/bin/bash",
        f"# snakemake-executor-plugin-frozen: {visible(description)}",
        "set -euo pipefail",
        f'if [ "${{1-}}" = {JOB_MODE} ]; then',
        f"    {job_command}",
        "    exit",
        "fi",
    ]
    if entry is not None:
        lines += _frozen_lines(entry)
    run = join(
        [python, "-P", "-m", contract.MODULE, contract.RUN]
        + ([contract.SINGLE_RULE] if single_rule else [])
        + (_view_args(entry) if entry is not None else [])
        + ["--"]
    )
    if ended is None:
        lines.append(f'{run} "$BASH" "$0" {JOB_MODE}')
    else:
        task = "${SLURM_ARRAY_JOB_ID:+${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}}"
        lines += [
            "frozen_status=0",
            f'{run} "$BASH" "$0" {JOB_MODE} || frozen_status=$?',
            f'frozen_ended_as="{task}"',
            'frozen_ended_as="${frozen_ended_as:-${SLURM_JOB_ID:-unknown}}"',
            # Written aside and renamed: the executor never reads half a hint.
            f'frozen_hint={quote(str(ended))}/"$frozen_ended_as"',
            'printf \'%s %s\\n\' "$frozen_status" "${SLURMD_NODENAME-}" '
            '2>/dev/null >"$frozen_hint.tmp" && mv -f "$frozen_hint.tmp" "$frozen_hint" || true',
            'exit "$frozen_status"',
        ]
    return "\n".join(lines) + "\n"


def _view_args(entry: FrozenEntry) -> list[str]:
    """`run`'s flags for the job's view of its code (node/view.py)."""
    args = [contract.VIEW, entry.view]
    if entry.view != contract.VIEW_PYTHON:
        # One word each, so that a folder named like an option stays a value.
        args += [f"{contract.WHOLE}={folder}" for folder in entry.whole]
        args += [f"{contract.LIVE}={path}" for path in entry.live]
        if entry.per_job_copy:
            args.append(contract.PER_JOB_COPY)
    return args


def _frozen_lines(entry: FrozenEntry) -> list[str]:
    node = f"{quote(entry.python)} -P -m {contract.MODULE}"
    snapshot = [
        contract.ARCHIVE, str(entry.archive),
        contract.SHA256, entry.archive_sha256,
        contract.ID, entry.snapshot_id,
        contract.CODE_ROOT, str(entry.code_root),
        *([contract.PREFIX, entry.prefix] if entry.prefix else []),
        *([contract.KEEP] if entry.keep_extracted else []),
        # Only when not the node helper's default: that one needs no word in the script.
        *(
            [contract.STALE_AFTER, repr(float(entry.stale_after))]
            if entry.stale_after != contract.STALE_AFTER_SECONDS
            else []
        ),
    ]  # fmt: skip
    enter = join([contract.ENTER, *snapshot, contract.SCRATCH, entry.scratch])
    # The other nodes of a multi-node job get their own copy at the same path, so that
    # ranks started there (srun, MPI) find what FROZEN_DIR and PYTHONPATH name.
    every_node = (
        'srun --nodes="$SLURM_JOB_NUM_NODES" --ntasks="$SLURM_JOB_NUM_NODES" '
        "--ntasks-per-node=1 --overlap --kill-on-bad-exit=1 --quiet"
    )
    multi_node = '[ "${SLURM_JOB_NUM_NODES:-1}" -gt 1 ]'
    on_every_node = join([contract.ENTER, *snapshot])
    job_lease = f'{contract.JOB_LEASE} "$SLURM_JOB_ID"'
    return [
        # An assignment keeps `enter`'s exit status, so `set -e` stops a job whose
        # snapshot cannot be verified or extracted; `eval "$(...)"` would hide it.
        f'frozen_env="$({node} {enter} {contract.HOLDER} $$)"',
        'eval "$frozen_env"',
        # TERM/INT go through `exit` so that the EXIT trap releases the extracted copy.
        # A cleanup error is logged by `leave` but must not fail a finished job, nor
        # replace a failed job's own exit code.
        "frozen_leave() {",
        f"    if {multi_node}; then",
        f"        {every_node} {node} {contract.LEAVE} {job_lease} || true",
        "    fi",
        f"    {node} {contract.LEAVE} || true",
        "}",
        "trap frozen_leave EXIT",
        "trap 'exit 143' TERM",
        "trap 'exit 130' INT",
        f"if {multi_node}; then",
        f"    {every_node} {node} {on_every_node} {contract.SCRATCH_PATH} "
        f'"${contract.FROZEN_SCRATCH}" {job_lease}',
        "fi",
    ]
