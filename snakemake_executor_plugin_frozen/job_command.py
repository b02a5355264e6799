"""Snakemake's command for a job as the batch script runs it: every value quoted for bash,
and, when frozen, the options that point the job's Snakemake at the snapshot's copy."""

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from snakemake_interface_common.exceptions import WorkflowError

from snakemake_executor_plugin_frozen import shellwords
from snakemake_executor_plugin_frozen.run_snapshot import RunSnapshot
from snakemake_executor_plugin_frozen.workflow_sources import (
    job_wildcards,
    jobs_share_runtime_source_cache,
)


def frozen_general_args(snapshot: RunSnapshot, configs: list[Path], replace: bool) -> str:
    """The options every frozen job's Snakemake gets: ``configs`` the config files as
    ``workflow_sources.job_config_files`` gives them, ``replace`` its second answer."""
    args = []
    if jobs_share_runtime_source_cache():
        # Each job its own source cache: Snakemake's shared one is keyed by absolute path and
        # would serve one snapshot's files to another.
        args.append('--runtime-source-cache-path "$FROZEN_JOB_DIR/source-cache"')
    if configs:
        # Given last, the frozen copies win over the live paths Snakemake passes.
        args.append("--configfiles " + " ".join(snapshot.in_copy(c) for c in configs))
    if replace:
        args.append("--replace-workflow-config")
    return " ".join(args)


def bash_quoted_job_exec(format_exec: Callable[[], str], job: Any, tmpdir: str) -> str:
    """The job's command as ``format_exec`` (Snakemake's own formatting) makes it, every
    value quoted for bash.

    Snakemake's own formatting quotes values for Python and pastes "already quoted"
    ones raw (code runs on the node from a path or a wildcard value); within this call
    its value formatters quote for bash instead (`shellwords.bash_quoted_cli`, which says
    why that is safe). A value the job's Snakemake would not get back intact (a NUL, an
    option-like `-x`, a wildcard value `--target-jobs` mangles, a line break in a
    `--wait-for-files-file`) is refused here, before anything is submitted.
    """
    what = shellwords.describe(job.name, job_wildcards(job), group=job.is_group())
    try:
        with shellwords.bash_quoted_cli() as formatting:
            command = format_exec()
    except shellwords.RefusedValue as e:
        raise WorkflowError(f"frozen: {what} not submitted: {e}") from None
    except UnicodeEncodeError as e:  # Snakemake's own --wait-for-files-file
        raise WorkflowError(f"frozen: {what} not submitted: a path is not text: {e}") from None
    problem = _problem(
        command, formatting.calls, job.get_target_spec(), [tmpdir, *job.get_wait_for_files()]
    )
    if problem is not None:
        raise WorkflowError(f"frozen: {what} not submitted: {problem}")
    return command


def _problem(
    command: str, calls: int, target_specs: Sequence[Any], wait_files: Sequence[Any]
) -> str | None:
    """Why the job's command, formatted within ``bash_quoted_cli`` (which made ``calls``
    calls), would not reach the job's Snakemake intact; None when it would."""
    problem = shellwords.target_jobs_problem(target_specs)
    if problem is None and "--wait-for-files-file" in command:
        problem = shellwords.wait_files_problem(wait_files)
    if problem is None and calls == 0:
        problem = (
            "this version of snakemake-interface-executor-plugins no longer formats job "
            "arguments through format_cli_pos_arg, so they cannot be quoted for bash"
        )
    if problem is None and not command.isprintable():
        problem = (
            "its command holds a control character outside quotes (from --precommand, "
            f"or a value Snakemake passed unquoted): {shellwords.shown(command)}"
        )
    return problem
