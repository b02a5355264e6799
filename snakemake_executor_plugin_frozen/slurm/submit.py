"""Build ``sbatch`` command lines from plain job data.

Resource names and their mapping follow ``snakemake-executor-plugin-slurm`` 2.x, so a
profile written for ``executor: slurm`` works unchanged. Differences on purpose:

- The command is an argv list for ``subprocess`` (no shell) ending in a batch script
  *file*; ``--wrap`` would let the submit host expand ``$VARS`` in the command.
- Without ``slurm_account`` / ``slurm_partition`` no ``-A`` / ``-p`` is passed and the
  cluster's default account and partition apply. Guessing the account with
  ``sacct``/``sacctmgr`` costs a call per job and picks a wrong account just as often.
- A per-job ``qos`` resource replaces the global ``qos`` setting instead of both being
  passed (sbatch would silently let the later one win).
- ``slurm_extra`` is parsed the way sbatch parses it (``sbatch_options``), so an
  abbreviation cannot slip a managed option past the check, and a stray word cannot replace
  the batch script.
- An ``--exclude`` in ``slurm_extra`` is merged with the nodes the executor excludes into
  one option (sbatch keeps only the last ``--exclude``).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from snakemake_executor_plugin_frozen.slurm.sbatch_options import (
    FIX_HINT,
    SlurmSubmitError,
    is_node_entry,
    validate_slurm_extra,
)

# Same patterns as the slurm plugin 2.7.1, so values accepted there are accepted here.
_GRES_RE = re.compile(r"^[a-zA-Z0-9_]+(:[a-zA-Z0-9_.]+)?(:\d+[TGM]?)?$")
_GPU_MODEL_RE = re.compile(r"^[a-zA-Z0-9_.]+$")
# Slurm time formats: "M", "M:S", "H:M:S", "D-H", "D-H:M", "D-H:M:S".
_SLURM_TIME_RE = re.compile(r"^\d+(-\d+)?(:\d+){0,2}$")
# sbatch's --array: index ranges with an optional step, comma-separated, an optional %limit.
_ARRAY_RE = re.compile(r"\d+(-\d+(:\d+)?)?(,\d+(-\d+(:\d+)?)?)*(%\d+)?")


@dataclass(frozen=True)
class SubmitSettings:
    """Executor settings that apply to every submission."""

    qos: str | None = None
    reservation: str | None = None
    requeue: bool = False
    no_requeue: bool = False
    # Nodes never to submit to (--frozen-exclude-failed-nodes and nodes that had NODE_FAIL):
    # names or hostlist expressions, one per entry (see sbatch_options.node_list).
    exclude_nodes: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.requeue and self.no_requeue:
            raise SlurmSubmitError(
                "The settings --frozen-requeue and --frozen-no-requeue exclude each other "
                "(frozen-requeue / frozen-no-requeue in a profile); set at most one."
            )
        bad = sorted(entry for entry in self.exclude_nodes if not is_node_entry(entry))
        if bad:
            raise SlurmSubmitError(
                f"Excluded nodes {bad} (--frozen-exclude-failed-nodes): each must be one node "
                "name or hostlist expression; give comma-separated names such as "
                "'node1,node[3-5]'."
            )


@dataclass(frozen=True)
class JobSpec:
    """Plain data about one Snakemake job (or group job), extracted by the executor."""

    job_label: str  # for messages, e.g. "rule align (wildcards: sample=a)"
    job_name: str
    comment: str
    log_path: Path  # absolute; %j in the file name is expanded by SLURM
    workdir: Path
    script: Path
    resources: Mapping[str, object]
    threads: int
    # sbatch --array index list ("0-9", "0-999%50"); log_path then names %A and %a.
    array: str | None = None

    def log_file(self, job_id: str) -> Path:
        """The log of the submitted job `job_id` (what SLURM makes of %j)."""
        return self.log_path.with_name(self.log_path.name.replace("%j", job_id))

    def task_log_file(self, array_job_id: str, task: int) -> Path:
        """The log of task `task` of the job array `array_job_id` (SLURM's %A and %a)."""
        name = self.log_path.name.replace("%A", array_job_id).replace("%a", str(task))
        return self.log_path.with_name(name)


def _int(value: object, name: str, job_label: str, minimum: int | None = None) -> int:
    """Read an integer resource; Snakemake rounds floats, but CLI values may be strings."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = int(value.strip())
    if number is None or (minimum is not None and number < minimum):
        bound = f" >= {minimum}" if minimum is not None else ""
        raise SlurmSubmitError(
            f"{job_label}: resource '{name}' must be an integer{bound}, got {value!r}. {FIX_HINT}"
        )
    return number


def _is_set(value: object) -> bool:
    """Mirror the slurm plugin's ``if job.resources.get(...)``: None, "", 0, False are unset."""
    return value is not None and value != "" and value != 0


def cluster_of(resources: Mapping[str, object]) -> str | None:
    """The ``--clusters`` value (``cluster``, ``clusters`` or ``slurm_cluster``), if any."""
    for key in ("cluster", "clusters", "slurm_cluster"):
        value = resources.get(key)
        if _is_set(value):
            return str(value)
    return None


def _runtime(value: object, job_label: str) -> str:
    if isinstance(value, str) and _SLURM_TIME_RE.match(value.strip()):
        return value.strip()
    return str(_int(value, "runtime", job_label, minimum=1))


def _check_paths(spec: JobSpec) -> None:
    paths = {"log path": spec.log_path, "working directory": spec.workdir, "script": spec.script}
    for what, path in paths.items():
        if not path.is_absolute():
            # A relative --output is resolved against -D, not the submit directory.
            raise SlurmSubmitError(f"{spec.job_label}: the {what} must be absolute: {path}")
    if spec.array is not None:
        _check_array(spec)
    if "\\" in str(spec.log_path):
        # A backslash turns SLURM's %-patterns off and is dropped from the name: the job
        # would fail without a log (a '%' in the directory is escaped, see _output_pattern).
        raise SlurmSubmitError(
            f"{spec.job_label}: the log path must not contain a backslash (SLURM would drop "
            f"it and write no log): {spec.log_path}"
        )


def _check_array(spec: JobSpec) -> None:
    if not _ARRAY_RE.fullmatch(spec.array or ""):
        raise SlurmSubmitError(
            f"{spec.job_label}: the job array index list must look like '0-9', '1,3,5-7' or "
            f"'0-999%50', got {spec.array!r}"
        )
    if "%a" not in spec.log_path.name:
        # Without the task id in the name every task of the array writes the same log.
        raise SlurmSubmitError(
            f"{spec.job_label}: the log file name of a job array must contain %a (the task "
            f"id), e.g. %A_%a.log: {spec.log_path}"
        )


def _output_pattern(log_path: Path) -> str:
    """``--output`` for ``log_path``: a ``%`` in its directory (a working directory such as
    ``100%``) written ``%%``, so that only the file name's ``%j`` is a SLURM pattern."""
    return str(log_path.parent).replace("%", "%%") + "/" + log_path.name


def _gpu_args(res: Mapping[str, object], job_label: str) -> list[str]:
    gres, gpu, model = res.get("gres"), res.get("gpu"), res.get("gpu_model")
    if _is_set(gres) and _is_set(gpu):
        raise SlurmSubmitError(
            f"{job_label}: resources 'gres' and 'gpu' are both set; set only one of them. "
            f"{FIX_HINT}"
        )
    if _is_set(gres):
        if not _GRES_RE.match(str(gres)):
            raise SlurmSubmitError(
                f"{job_label}: resource 'gres' must look like '<name>[:<type>][:<count>]' "
                f"(e.g. 'gpu:2', 'gpu:a100:1', 'tmpspace:10G'), got {gres!r}. {FIX_HINT}"
            )
        return [f"--gres={gres}"]
    if _is_set(model) and not _is_set(gpu):
        raise SlurmSubmitError(
            f"{job_label}: resource 'gpu_model' is set but 'gpu' (the number of GPUs) is not. "
            f"{FIX_HINT}"
        )
    if not _is_set(gpu):
        return []
    count = _int(gpu, "gpu", job_label, minimum=1)
    if not _is_set(model):
        return [f"--gpus={count}"]
    if not _GPU_MODEL_RE.match(str(model)):
        raise SlurmSubmitError(
            f"{job_label}: resource 'gpu_model' may contain only letters, digits, '_' and '.', "
            f"got {model!r}. {FIX_HINT}"
        )
    return [f"--gpus={model}:{count}"]


def _task_args(res: Mapping[str, object], job_label: str, gpu_job: bool) -> list[str]:
    argv: list[str] = []
    tasks = res.get("tasks")
    if gpu_job:
        # As the stock plugin (2.7.1): --ntasks-per-gpu only when tasks_per_gpu, else tasks,
        # asks for it (some clusters reject it in batch jobs); a value <= 0 leaves it out.
        name = "tasks_per_gpu" if res.get("tasks_per_gpu") is not None else "tasks"
        if (per_gpu := res.get(name)) is not None and (n := _int(per_gpu, name, job_label)) >= 1:
            argv.append(f"--ntasks-per-gpu={n}")
    elif not _is_set(res.get("mpi")):
        # SLURM 22.05 wants ntasks for every job.
        n = _int(tasks, "tasks", job_label, minimum=1) if _is_set(tasks) else 1
        argv.append(f"--ntasks={n}")
    if _is_set(res.get("mpi")):
        per_node = res.get("tasks_per_node")
        if _is_set(per_node) == _is_set(tasks):
            raise SlurmSubmitError(
                f"{job_label}: an MPI job needs exactly one of the resources 'tasks' and "
                f"'tasks_per_node'. {FIX_HINT}"
            )
        if _is_set(per_node):
            argv.append(f"--ntasks-per-node={_int(per_node, 'tasks_per_node', job_label, 2)}")
        else:
            argv.append(f"--ntasks={_int(tasks, 'tasks', job_label, minimum=2)}")
    return argv


def _cpu_args(res: Mapping[str, object], threads: int, job_label: str, gpu_job: bool) -> list[str]:
    if _is_set(per_task := res.get("cpus_per_task")):
        n = _int(per_task, "cpus_per_task", job_label)
        # Negative omits the flag: some (GPU) partitions reject CPU requests.
        return [] if n < 0 else [f"--cpus-per-task={n}"]
    if gpu_job and _is_set(per_gpu := res.get("cpus_per_gpu")):
        n = _int(per_gpu, "cpus_per_gpu", job_label)
        return [] if n <= 0 else [f"--cpus-per-gpu={n}"]
    # `threads: 0` still runs on one CPU (Snakemake runs it; SLURM refuses 0), as with the
    # stock plugin.
    return [f"--cpus-per-task={max(1, _int(threads, 'threads', job_label, minimum=0))}"]


def build_sbatch_argv(
    spec: JobSpec, settings: SubmitSettings | None = None
) -> tuple[list[str], list[str]]:
    """Return ``(argv, warnings)`` for submitting ``spec.script`` with ``sbatch``; the
    warnings concern the job's rule (the caller says which, once per rule).

    Raises ``SlurmSubmitError`` naming the resource and the job for invalid input.
    """
    settings = settings or SubmitSettings()
    res, label = spec.resources, spec.job_label
    _check_paths(spec)
    warnings: list[str] = []
    argv = [
        "sbatch",
        "--parsable",
        "--job-name",
        spec.job_name,
        "--output",
        _output_pattern(spec.log_path),
        "--export=ALL",
        "--comment",
        spec.comment,
    ]
    if spec.array is not None:
        argv.append(f"--array={spec.array}")
    raw_extra = res.get("slurm_extra")
    extra = validate_slurm_extra(str(raw_extra) if _is_set(raw_extra) else "", label)
    if _is_set(account := res.get("slurm_account")):
        if "," in str(account):
            raise SlurmSubmitError(
                f"{label}: resource 'slurm_account' must name a single account, got "
                f"{account!r}. {FIX_HINT}"
            )
        argv += ["-A", str(account)]
    if _is_set(partition := res.get("slurm_partition")):
        argv += ["-p", str(partition)]
    if cluster := cluster_of(res):
        argv += ["--clusters", cluster]
    if _is_set(runtime := res.get("runtime")):
        argv += ["-t", _runtime(runtime, label)]
    else:
        warnings.append(
            "no 'runtime' resource (minutes); the partition's default time limit "
            "applies. Set it in the rule or with --default-resources."
        )
    # Unlike most resources, an empty constraint/qos is passed on (clears a default).
    if (constraint := res.get("constraint")) is not None:
        argv += ["-C", str(constraint)]
    qos = res.get("qos")
    if qos is None:
        qos = settings.qos or None
    if qos is not None:
        argv.append(f"--qos={qos}")
    if _is_set(per_cpu := res.get("mem_mb_per_cpu")):
        argv += ["--mem-per-cpu", str(_int(per_cpu, "mem_mb_per_cpu", label, minimum=1))]
    elif _is_set(mem := res.get("mem_mb")):
        argv += ["--mem", str(_int(mem, "mem_mb", label, minimum=1))]
    else:
        warnings.append(
            "no 'mem_mb' or 'mem_mb_per_cpu' resource; the cluster's default "
            "memory applies. Set it in the rule or with --default-resources."
        )
    if _is_set(nodes := res.get("nodes")):
        argv.append(f"--nodes={_int(nodes, 'nodes', label, minimum=1)}")
    if settings.requeue:
        argv.append("--requeue")
    elif settings.no_requeue:
        argv.append("--no-requeue")
    if settings.reservation:
        argv.append(f"--reservation={settings.reservation}")
    # One --exclude for both: sbatch keeps only the last one it is given.
    if excluded := sorted(settings.exclude_nodes.union(extra.exclude)):
        argv.append(f"--exclude={','.join(excluded)}")
    gpu_job = _is_set(res.get("gpu")) or "gpu" in str(res.get("gres") or "")
    argv += _task_args(res, label, gpu_job)
    argv += _cpu_args(res, spec.threads, label, gpu_job)
    argv += extra.args
    argv += ["-D", str(spec.workdir)]
    argv += _gpu_args(res, label)
    argv.append(str(spec.script))
    return argv, warnings
