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
- ``slurm_extra`` is parsed the way sbatch parses it (abbreviated long options, clustered
  short options, separate values), so an abbreviation cannot slip a managed option past the
  check, and a stray word cannot replace the batch script.
- An ``--exclude`` in ``slurm_extra`` is merged with the nodes the executor excludes into
  one option (sbatch keeps only the last ``--exclude``).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from snakemake_executor_plugin_frozen.slurm.srun_options import (
    AmbiguousOptionError,
    Option,
    OptionWalk,
    option_table,
    resolve_long_option,
)

# Same patterns as the slurm plugin 2.7.1, so values accepted there are accepted here.
_GRES_RE = re.compile(r"^[a-zA-Z0-9_]+(:[a-zA-Z0-9_.]+)?(:\d+[TGM]?)?$")
_GPU_MODEL_RE = re.compile(r"^[a-zA-Z0-9_.]+$")
# Slurm time formats: "M", "M:S", "H:M:S", "D-H", "D-H:M", "D-H:M:S".
_SLURM_TIME_RE = re.compile(r"^\d+(-\d+)?(:\d+){0,2}$")
_BARE_JOB_ID_RE = re.compile(r"^(\d+)(?:;\S+)?$")
_SUBMITTED_RE = re.compile(r"Submitted batch job (\d+)")
# sbatch's --array: index ranges with an optional step, comma-separated, an optional %limit.
_ARRAY_RE = re.compile(r"\d+(-\d+(:\d+)?)?(,\d+(-\d+(:\d+)?)?)*(%\d+)?")
# One entry of a SLURM node list: a name or hostlist expression ("node[1-3,7]"); the commas
# inside brackets do not separate entries.
_NODE_ENTRY_RE = re.compile(r"(?:[^,\[\]\s/]|\[[^\]\s/]*\])+")
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
    # Nodes never to submit to (--frozen-exclude-failed-nodes and nodes that had NODE_FAIL):
    # names or hostlist expressions, one per entry (see node_list).
    exclude_nodes: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.requeue and self.no_requeue:
            raise SlurmSubmitError(
                "The settings --frozen-requeue and --frozen-no-requeue exclude each other "
                "(frozen-requeue / frozen-no-requeue in a profile); set at most one."
            )
        bad = sorted(entry for entry in self.exclude_nodes if not _NODE_ENTRY_RE.fullmatch(entry))
        if bad:
            raise SlurmSubmitError(
                f"Excluded nodes {bad} (--frozen-exclude-failed-nodes): each must be one node "
                "name or hostlist expression; give comma-separated names such as "
                "'node1,node[3-5]'."
            )


def node_list(text: str) -> list[str]:
    """The entries of a comma-separated SLURM node list: ``"n1, node[1,3-4]"`` gives
    ``["n1", "node[1,3-4]"]`` (commas inside brackets belong to the expression).

    Raises ``ValueError`` naming an entry that is no node name or hostlist expression:
    spaces, unbalanced brackets, or a ``/`` (sbatch would read a file of that name).
    """
    entries = [part.strip() for part in re.split(r",(?![^\[]*\])", text) if part.strip()]
    for entry in entries:
        if not _NODE_ENTRY_RE.fullmatch(entry):
            raise ValueError(f"{entry!r} is not a node name or hostlist expression")
    return entries


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


# sbatch's long options, as sbatch 22.05.8 (Debian 12 package slurm-wlm) parses them. Read
# from the binary's own getopt_long answers rather than `sbatch --help`, which leaves out 13
# of them (--ntasks-per-gpu, --hint, --cluster, --tasks-per-node, --test-only, ...):
#   sbatch --test-only --a          "option '--a' is ambiguous; possibilities: '--account' ..."
#   sbatch --test-only --mem        "option '--mem' requires an argument"
#   sbatch --test-only --parsable=x "option '--parsable' doesn't allow an argument"
# for every letter and two-letter prefix (no other names), and every name (neither message:
# optional). tests/test_slurm_submit.py checks the table against the installed sbatch.
_REQUIRED_VALUE = """
    account acctg-freq array batch bb bbf begin chdir cluster cluster-constraint
    clusters comment constraint container context core-spec cores-per-socket cpu-freq
    cpus-per-gpu cpus-per-task deadline delay-boot dependency distribution error exclude
    export export-file extra-node-info gid gpu-bind gpu-freq gpus gpus-per-node
    gpus-per-socket gpus-per-task gres gres-flags hint input job-name
    kill-on-invalid-dep licenses mail-type mail-user mcs-label mem mem-bind mem-per-cpu
    mem-per-gpu mincpus network nodefile nodelist nodes ntasks ntasks-per-core
    ntasks-per-gpu ntasks-per-node ntasks-per-socket ntasks-per-tres open-mode output
    partition power prefer priority profile qos reservation signal sockets-per-node
    switches tasks-per-node thread-spec threads-per-core time time-min tmp uid
    wait-all-nodes wckey wrap
"""
_OPTIONAL_VALUE = "exclusive get-user-env nice no-kill propagate"
_NO_VALUE = """
    contiguous help hold ignore-pbs no-requeue overcommit oversubscribe parsable quiet
    reboot requeue spread-job test-only usage use-min-nodes verbose version wait
"""
SBATCH_LONG_OPTIONS = option_table(_REQUIRED_VALUE, _OPTIONAL_VALUE, _NO_VALUE)
# Its short options (`sbatch --help`; `sbatch -X` / `sbatch -X-` confirm that each takes a
# value exactly like its long form, and that no other letter or digit is an option).
SBATCH_SHORT_OPTIONS: dict[str, str] = {
    "a": "array",
    "A": "account",
    "b": "begin",
    "B": "extra-node-info",
    "c": "cpus-per-task",
    "C": "constraint",
    "d": "dependency",
    "D": "chdir",
    "e": "error",
    "F": "nodefile",
    "G": "gpus",
    "h": "help",
    "H": "hold",
    "i": "input",
    "J": "job-name",
    "k": "no-kill",
    "L": "licenses",
    "m": "distribution",
    "M": "clusters",
    "n": "ntasks",
    "N": "nodes",
    "o": "output",
    "O": "overcommit",
    "p": "partition",
    "q": "qos",
    "Q": "quiet",
    "s": "oversubscribe",
    "S": "core-spec",
    "t": "time",
    "v": "verbose",
    "V": "version",
    "w": "nodelist",
    "W": "wait",
    "x": "exclude",
}


def resolve_sbatch_option(written: str) -> str:
    """The long option sbatch takes ``--<written>`` for, by getopt_long's rule: an exact
    name wins, else a prefix of exactly one name. A name sbatch 22.05 does not know is
    returned as written (a newer sbatch may know it). Raises ``ValueError`` listing the
    candidates when the prefix is ambiguous."""
    return resolve_long_option(written, SBATCH_LONG_OPTIONS)


@dataclass(frozen=True)
class _Forbidden:
    what: str
    remedy: str


def _use(resource: str) -> str:
    return f"use the '{resource}' resource instead"


_EXECUTOR = "the executor sets it"
_NO_JOB = "sbatch would print something and submit no job; remove it"
# slurm_extra options the executor manages: the slurm plugin's list, plus --wrap (we
# submit a script), --array (the executor makes job arrays itself), --wait (would block
# the submission) and the options after which sbatch submits nothing.
_FORBIDDEN: dict[str, _Forbidden] = {
    "job-name": _Forbidden("job name", _EXECUTOR),
    "output": _Forbidden("output file", _EXECUTOR),
    "error": _Forbidden("error file", _EXECUTOR),
    "parsable": _Forbidden("parsable output", _EXECUTOR),
    "export": _Forbidden("environment export", _EXECUTOR),
    "comment": _Forbidden("job comment", _EXECUTOR),
    "chdir": _Forbidden("working directory", _EXECUTOR),
    # Older SLURM's name of --chdir; sbatch 22.05 does not know it, so it is matched whole.
    "workdir": _Forbidden("working directory", _EXECUTOR),
    "wrap": _Forbidden("wrapped command", _EXECUTOR),
    "array": _Forbidden("job array", _EXECUTOR),
    "wait": _Forbidden("waiting for the job", _EXECUTOR),
    "help": _Forbidden("help", _NO_JOB),
    "usage": _Forbidden("usage", _NO_JOB),
    "version": _Forbidden("version", _NO_JOB),
    "test-only": _Forbidden("test only", _NO_JOB),
    "account": _Forbidden("account", _use("slurm_account")),
    "partition": _Forbidden("partition", _use("slurm_partition")),
    "mem": _Forbidden("memory", _use("mem_mb")),
    "mem-per-cpu": _Forbidden("memory per CPU", _use("mem_mb_per_cpu")),
    "ntasks": _Forbidden("number of tasks", _use("tasks")),
    "ntasks-per-gpu": _Forbidden("tasks per GPU", _use("tasks_per_gpu")),
    "cpus-per-task": _Forbidden("CPUs per task", _use("cpus_per_task")),
    "cpus-per-gpu": _Forbidden("CPUs per GPU", _use("cpus_per_gpu")),
    "time": _Forbidden("time limit", _use("runtime")),
    "constraint": _Forbidden("node constraint", _use("constraint")),
    "qos": _Forbidden("quality of service", _use("qos")),
    "nodes": _Forbidden("number of nodes", _use("nodes")),
    "cluster": _Forbidden("cluster", _use("clusters")),
    "clusters": _Forbidden("cluster", _use("clusters")),
    "gres": _Forbidden("generic resources", _use("gres")),
    "gpus": _Forbidden("GPUs", _use("gpu")),
}


_FIX_HINT = "Fix it in the rule's resources, --set-resources/--default-resources or the profile."


@dataclass(frozen=True)
class SlurmExtra:
    """A checked ``slurm_extra``: the arguments to pass on, and the nodes its
    ``--exclude``/``-x`` options name (taken out of ``args``, to be merged)."""

    args: tuple[str, ...]
    exclude: tuple[str, ...]


class _ExtraParser(OptionWalk):
    """Walks ``slurm_extra``'s arguments as sbatch's getopt_long would."""

    def __init__(self, tokens: Sequence[str], job_label: str) -> None:
        super().__init__(tokens, SBATCH_LONG_OPTIONS, SBATCH_SHORT_OPTIONS)
        self.job_label = job_label

    def error(self, problem: str) -> SlurmSubmitError:
        return SlurmSubmitError(f"{self.job_label}: resource 'slurm_extra' {problem} {_FIX_HINT}")

    def options(self) -> list[Option]:
        parsed: list[Option] = []
        while self.next < len(self.tokens):
            token = self.tokens[self.next]
            self.next += 1
            if token == "--":
                raise self.error(
                    "has '--', which ends sbatch's options: the executor's own options and "
                    "batch script after it would become a script's arguments. Remove it."
                )
            if token.startswith("--"):
                parsed.append(self.long_option(token))
            elif token.startswith("-") and token != "-":
                parsed += self.short_options(token)
            else:
                raise self.error(
                    f"has {token!r}, which is neither an option nor the value of one: sbatch "
                    "would take it as the batch script instead of the executor's. Remove it; "
                    "if it is the value of the option before it, write them as one argument "
                    "(--option=value, quoted if it holds spaces)."
                )
        return parsed

    def ambiguous(self, token: str, error: AmbiguousOptionError) -> SlurmSubmitError:
        return self.error(
            f"has {token!r}, an abbreviation sbatch refuses as ambiguous ({error}). Write "
            "the option out in full."
        )

    def unknown_long(self, token: str) -> None:
        return None  # a newer sbatch may know it: passed on as written

    def unknown_short(self, token: str, letter: str) -> SlurmSubmitError:
        return self.error(
            f"has {token!r}, but sbatch has no option -{letter}. Write the option out "
            "in full (--option=value)."
        )

    def value_not_allowed(self, token: str, name: str) -> SlurmSubmitError:
        return self.error(
            f"has {token!r}, but sbatch's --{name} takes no value. Write it as '--{name}'."
        )

    def missing_value(self, token: str, name: str) -> SlurmSubmitError:
        return self.error(
            f"ends with {token!r}, which needs a value: sbatch would take the executor's "
            f"next argument as its value. Give it one (--{name}=VALUE)."
        )

    def check(self, name: str, token: str) -> None:
        if (forbidden := _FORBIDDEN.get(name)) is None:
            return
        spelled = "" if token.split("=", 1)[0] == f"--{name}" else f", --{name}"
        raise self.error(
            f"must not contain {token!r} ({forbidden.what}{spelled}): {forbidden.remedy}."
        )


def validate_slurm_extra(extra: str, job_label: str) -> SlurmExtra:
    """Split ``slurm_extra`` like a shell, parse it as sbatch would, and reject what the
    executor manages, ambiguous abbreviations and words sbatch would take as its script."""
    try:
        tokens = shlex.split(extra)
    except ValueError as e:
        raise SlurmSubmitError(
            f"{job_label}: resource 'slurm_extra' cannot be split into arguments ({e}): "
            f"{extra!r}. Balance its quotes. {_FIX_HINT}"
        ) from None
    options = _ExtraParser(tokens, job_label).options()
    excluded: list[str] = []
    for option in options:
        if option.name == "exclude":
            try:
                excluded += node_list(option.value or "")
            except ValueError as e:
                raise SlurmSubmitError(
                    f"{job_label}: resource 'slurm_extra' has {' '.join(option.args)!r}: {e}. "
                    "The executor merges it with the nodes it excludes itself, so it must name "
                    f"nodes (e.g. 'node1,node[3-5]'), not a file of them. {_FIX_HINT}"
                ) from None
    args = tuple(arg for option in options if option.name != "exclude" for arg in option.args)
    return SlurmExtra(args=args, exclude=tuple(excluded))


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
    if spec.array is not None:
        argv.append(f"--array={spec.array}")
    raw_extra = res.get("slurm_extra")
    extra = validate_slurm_extra(str(raw_extra) if _is_set(raw_extra) else "", label)
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
