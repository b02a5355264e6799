"""Job arrays: which ready jobs go into one `sbatch --array`, and the script its tasks run.

Each task runs the batch script of its own job, written exactly as for a single
submission; the array's script only picks it by `SLURM_ARRAY_TASK_ID`. So a task runs the
same verified snapshot, the same quoted command and the same cleanup as a lone job would.
"""

from collections.abc import Callable, Hashable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

from snakemake_executor_plugin_frozen.shellwords import quote, visible

Job = TypeVar("Job")


def array_rules(setting: str) -> frozenset[str] | None:
    """The rules named by ``--frozen-array-jobs`` (None: all rules)."""
    names = frozenset(name.strip() for name in setting.split(",") if name.strip())
    return None if "all" in names else names


def batches(
    jobs: Iterable[Job], key: Callable[[Job], Hashable], limit: int
) -> tuple[list[Job], list[list[Job]]]:
    """Split ready jobs into those submitted alone and arrays of at most ``limit`` tasks.

    ``key`` says which jobs may share an array (same rule, same sbatch options), or is
    None for a job that never joins one. A batch of one is submitted alone.
    """
    alone: list[Job] = []
    groups: dict[Hashable, list[Job]] = {}
    for job in jobs:
        k = key(job)
        if k is None:
            alone.append(job)
        else:
            groups.setdefault(k, []).append(job)
    arrays: list[list[Job]] = []
    for group in groups.values():
        for start in range(0, len(group), limit):
            chunk = group[start : start + limit]
            if len(chunk) == 1:
                alone += chunk
            else:
                arrays.append(chunk)
    return alone, arrays


def capped_limit(setting: int, maximum: int | None) -> tuple[int, str | None]:
    """Tasks per array: ``--frozen-array-limit``, capped by the cluster's MaxArraySize
    (``maximum``, None if unknown); and what to tell the user when it was capped."""
    if maximum is None or maximum >= setting:
        return max(setting, 1), None
    note = (
        f"the cluster's MaxArraySize is {maximum}: arrays of at most {maximum} tasks "
        f"(--frozen-array-limit {setting})"
    )
    return max(maximum, 1), note


def task_id(array_job_id: str, task: int) -> str:
    """How squeue and sacct name one task: ``<array job id>_<task>``."""
    return f"{array_job_id}_{task}"


def render(description: str, task_scripts: Sequence[Path]) -> str:
    """The array's batch script: task i runs ``task_scripts[i]`` with bash."""
    lines = [
        "#!/bin/bash",
        f"# snakemake-executor-plugin-frozen: {visible(description)}",
        "set -euo pipefail",
        'case "${SLURM_ARRAY_TASK_ID-}" in',
    ]
    lines += [f"{i}) task={quote(str(script))} ;;" for i, script in enumerate(task_scripts)]
    lines += [
        '*) echo "frozen: array task ${SLURM_ARRAY_TASK_ID-(unset)} has no job" >&2; exit 1 ;;',
        "esac",
        'exec /bin/bash "$task"',
    ]
    return "\n".join(lines) + "\n"
