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
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# Same patterns as the slurm plugin 2.8.0, so values accepted there are accepted here.
_GRES_RE = re.compile(r"^[a-zA-Z0-9_]+(:[a-zA-Z0-9_.]+)?(:\d+[TGM]?)?$")
_GPU_MODEL_RE = re.compile(r"^[a-zA-Z0-9_.]+$")
# Slurm time formats: "M", "M:S", "H:M:S", "D-H", "D-H:M", "D-H:M:S".
_SLURM_TIME_RE = re.compile(r"^\d+(-\d+)?(:\d+){0,2}$")
_BARE_JOB_ID_RE = re.compile(r"^(\d+)(?:;\S+)?$")
_SUBMITTED_RE = re.compile(r"Submitted batch job (\d+)")
# Long wildcard values would exceed the 255-byte file name limit of the log directory.
_MAX_WILDCARDS_DIR = 200


class SlurmSubmitError(ValueError):
    """A job cannot be submitted because of its resources or the executor settings."""


@dataclass(frozen=True)
class SubmitSettings:
    """Executor settings that apply to every submission."""

    qos: str | None = None
    reservation: str | None = None
    requeue: bool = False
    no_requeue: bool = False
    exclude_nodes: str | None = None

    def __post_init__(self) -> None:
        if self.requeue and self.no_requeue:
            raise SlurmSubmitError(
                "The settings 'requeue' and 'no_requeue' exclude each other; set at most one."
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

    def log_file(self, job_id: str) -> Path:
        """The log of the submitted job `job_id` (what SLURM makes of %j)."""
        return self.log_path.with_name(self.log_path.name.replace("%j", job_id))


@dataclass(frozen=True)
class _Forbidden:
    what: str
    instead: str  # the resource to use, or "" if the executor alone sets it


_EXECUTOR = ""
# slurm_extra options the executor manages: the slurm plugin's list, plus --wrap (we
# submit a script), --array (one SLURM job per Snakemake job) and --wait (would block
# the submission).
_FORBIDDEN_LONG: dict[str, _Forbidden] = {
    "job-name": _Forbidden("job name", _EXECUTOR),
    "output": _Forbidden("output file", _EXECUTOR),
    "error": _Forbidden("error file", _EXECUTOR),
    "parsable": _Forbidden("parsable output", _EXECUTOR),
    "export": _Forbidden("environment export", _EXECUTOR),
    "comment": _Forbidden("job comment", _EXECUTOR),
    "chdir": _Forbidden("working directory", _EXECUTOR),
    "workdir": _Forbidden("working directory", _EXECUTOR),
    "wrap": _Forbidden("wrapped command", _EXECUTOR),
    "array": _Forbidden("job array", _EXECUTOR),
    "wait": _Forbidden("waiting for the job", _EXECUTOR),
    "account": _Forbidden("account", "slurm_account"),
    "partition": _Forbidden("partition", "slurm_partition"),
    "mem": _Forbidden("memory", "mem_mb"),
    "mem-per-cpu": _Forbidden("memory per CPU", "mem_mb_per_cpu"),
    "ntasks": _Forbidden("number of tasks", "tasks"),
    "ntasks-per-gpu": _Forbidden("tasks per GPU", "tasks_per_gpu"),
    "cpus-per-task": _Forbidden("CPUs per task", "cpus_per_task"),
    "cpus-per-gpu": _Forbidden("CPUs per GPU", "cpus_per_gpu"),
    "time": _Forbidden("time limit", "runtime"),
    "constraint": _Forbidden("node constraint", "constraint"),
    "qos": _Forbidden("quality of service", "qos"),
    "nodes": _Forbidden("number of nodes", "nodes"),
    "clusters": _Forbidden("cluster", "clusters"),
    "gres": _Forbidden("generic resources", "gres"),
    "gpus": _Forbidden("GPUs", "gpu"),
}
_SHORT_TO_LONG = {
    "J": "job-name",
    "o": "output",
    "e": "error",
    "D": "chdir",
    "a": "array",
    "W": "wait",
    "A": "account",
    "p": "partition",
    "n": "ntasks",
    "c": "cpus-per-task",
    "t": "time",
    "C": "constraint",
    "q": "qos",
    "N": "nodes",
    "M": "clusters",
    "G": "gpus",
}


_FIX_HINT = "Fix it in the rule's resources, --set-resources/--default-resources or the profile."


def validate_slurm_extra(extra: str, job_label: str) -> list[str]:
    """Split ``slurm_extra`` like a shell and reject options the executor manages."""
    try:
        tokens = shlex.split(extra)
    except ValueError as e:
        raise SlurmSubmitError(
            f"{job_label}: resource 'slurm_extra' cannot be split into arguments ({e}): "
            f"{extra!r}. Balance its quotes. {_FIX_HINT}"
        ) from None
    for token in tokens:
        if token.startswith("--"):
            name = token[2:].split("=", 1)[0]
        elif token.startswith("-") and len(token) > 1:
            # Only the first letter: "-Jname" is "-J name".
            name = _SHORT_TO_LONG.get(token[1], "")
        else:
            continue
        forbidden = _FORBIDDEN_LONG.get(name)
        if forbidden is None:
            continue
        instead = (
            f"use the '{forbidden.instead}' resource instead"
            if forbidden.instead
            else "the executor sets it"
        )
        raise SlurmSubmitError(
            f"{job_label}: resource 'slurm_extra' must not contain {token!r} "
            f"({forbidden.what}): {instead}. {_FIX_HINT}"
        )
    return tokens


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
            f"{job_label}: resource '{name}' must be an integer{bound}, got {value!r}. {_FIX_HINT}"
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
    if "\\" in str(spec.log_path):
        # A backslash turns SLURM's %-patterns off and is dropped from the name: the job
        # would fail without a log (a '%' in the directory is escaped, see _output_pattern).
        raise SlurmSubmitError(
            f"{spec.job_label}: the log path must not contain a backslash (SLURM would drop "
            f"it and write no log): {spec.log_path}"
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
            f"{_FIX_HINT}"
        )
    if _is_set(gres):
        if not _GRES_RE.match(str(gres)):
            raise SlurmSubmitError(
                f"{job_label}: resource 'gres' must look like '<name>[:<type>][:<count>]' "
                f"(e.g. 'gpu:2', 'gpu:a100:1', 'tmpspace:10G'), got {gres!r}. {_FIX_HINT}"
            )
        return [f"--gres={gres}"]
    if _is_set(model) and not _is_set(gpu):
        raise SlurmSubmitError(
            f"{job_label}: resource 'gpu_model' is set but 'gpu' (the number of GPUs) is not. "
            f"{_FIX_HINT}"
        )
    if not _is_set(gpu):
        return []
    count = _int(gpu, "gpu", job_label, minimum=1)
    if not _is_set(model):
        return [f"--gpus={count}"]
    if not _GPU_MODEL_RE.match(str(model)):
        raise SlurmSubmitError(
            f"{job_label}: resource 'gpu_model' may contain only letters, digits, '_' and '.', "
            f"got {model!r}. {_FIX_HINT}"
        )
    return [f"--gpus={model}:{count}"]


def _task_args(res: Mapping[str, object], job_label: str, gpu_job: bool) -> list[str]:
    argv: list[str] = []
    tasks = res.get("tasks")
    if gpu_job:
        per_gpu = res.get("tasks_per_gpu")
        if per_gpu is None:
            per_gpu = tasks if tasks is not None else 1
        # tasks_per_gpu <= 0 leaves it to SLURM (some frameworks manage their own ranks).
        if (n := _int(per_gpu, "tasks_per_gpu", job_label)) >= 1:
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
                f"'tasks_per_node'. {_FIX_HINT}"
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
    if _is_set(account := res.get("slurm_account")):
        if "," in str(account):
            raise SlurmSubmitError(
                f"{label}: resource 'slurm_account' must name a single account, got "
                f"{account!r}. {_FIX_HINT}"
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
    if settings.exclude_nodes:
        argv.append(f"--exclude={settings.exclude_nodes}")
    gpu_job = _is_set(res.get("gpu")) or "gpu" in str(res.get("gres") or "")
    argv += _task_args(res, label, gpu_job)
    argv += _cpu_args(res, spec.threads, label, gpu_job)
    if _is_set(extra := res.get("slurm_extra")):
        argv += validate_slurm_extra(str(extra), label)
    argv += ["-D", str(spec.workdir)]
    argv += _gpu_args(res, label)
    argv.append(str(spec.script))
    return argv, warnings


def _joined_values(wildcards: Mapping[str, str]) -> str:
    return "_".join(str(v) for v in wildcards.values()).replace("/", "_")


def wildcards_dir(wildcards: Mapping[str, str]) -> str:
    """Log directory part for a job's wildcards: values joined by ``_``, ``/`` -> ``_``.

    ``%`` and ``\\`` also become ``_`` (SLURM patterns), and overlong results are shortened
    with a hash suffix so the directory name stays valid and unique.
    """
    joined = _joined_values(wildcards).replace("%", "_").replace("\\", "_")
    raw = joined.encode(errors="surrogateescape")  # file names need not be UTF-8
    if len(raw) <= _MAX_WILDCARDS_DIR:
        return joined
    digest = hashlib.sha256(raw).hexdigest()[:16]
    head = raw[: _MAX_WILDCARDS_DIR - 17].decode(errors="ignore")
    return f"{head}_{digest}"


def wildcards_comment(rule: str, wildcards: Mapping[str, str]) -> str:
    """``--comment`` as the slurm plugin writes it: ``rule_<rule>[_wildcards_<values>]``."""
    values = _joined_values(wildcards)
    return f"rule_{rule}_wildcards_{values}" if values else f"rule_{rule}"


def parse_sbatch_output(stdout: str) -> str:
    """Job id from ``sbatch --parsable`` output (``<id>`` or ``<id>;<cluster>``).

    Site wrappers sometimes add lines around it, so a single bare id line or a
    ``Submitted batch job <id>`` line is accepted too. Raises ``ValueError`` otherwise.
    """
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    bare = {m.group(1) for line in lines if (m := _BARE_JOB_ID_RE.match(line))}
    if len(bare) == 1:
        return bare.pop()
    submitted = set(_SUBMITTED_RE.findall(stdout))
    if not bare and len(submitted) == 1:
        return submitted.pop()
    raise ValueError(f"cannot find exactly one SLURM job id in the sbatch output: {stdout!r}")
