"""sbatch's option grammar: its option tables, and ``slurm_extra`` read as sbatch reads it.

A ``slurm_extra`` resource is split like a shell would, then walked with sbatch's own
getopt_long rules (abbreviated long options, clustered short options, values as separate
arguments; the walk is ``srun_options``'s), so that an abbreviation cannot slip an option
the executor manages past the check, and a stray word cannot replace the batch script. The
nodes its ``--exclude`` options name are taken out, for the caller to merge into one.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from snakemake_executor_plugin_frozen.slurm.srun_options import (
    AmbiguousOptionError,
    Option,
    OptionWalk,
    option_table,
    resolve_long_option,
)

# One entry of a SLURM node list: a name or hostlist expression ("node[1-3,7]"); the commas
# inside brackets do not separate entries.
_NODE_ENTRY_RE = re.compile(r"(?:[^,\[\]\s/]|\[[^\]\s/]*\])+")

FIX_HINT = "Fix it in the rule's resources, --set-resources/--default-resources or the profile."


class SlurmSubmitError(ValueError):
    """A job cannot be submitted because of its resources or the executor settings."""


def is_node_entry(text: str) -> bool:
    """Whether ``text`` is one node name or hostlist expression (see ``node_list``)."""
    return _NODE_ENTRY_RE.fullmatch(text) is not None


def node_list(text: str) -> list[str]:
    """The entries of a comma-separated SLURM node list: ``"n1, node[1,3-4]"`` gives
    ``["n1", "node[1,3-4]"]`` (commas inside brackets belong to the expression).

    Raises ``ValueError`` naming an entry that is no node name or hostlist expression:
    spaces, unbalanced brackets, or a ``/`` (sbatch would read a file of that name).
    """
    entries = [part.strip() for part in re.split(r",(?![^\[]*\])", text) if part.strip()]
    for entry in entries:
        if not is_node_entry(entry):
            raise ValueError(f"{entry!r} is not a node name or hostlist expression")
    return entries


# sbatch's long options, as sbatch 22.05.8 (Debian 12 package slurm-wlm) parses them. Read
# from the binary's own getopt_long answers rather than `sbatch --help`, which leaves out 13
# of them (--ntasks-per-gpu, --hint, --cluster, --tasks-per-node, --test-only, ...):
#   sbatch --test-only --a          "option '--a' is ambiguous; possibilities: '--account' ..."
#   sbatch --test-only --mem        "option '--mem' requires an argument"
#   sbatch --test-only --parsable=x "option '--parsable' doesn't allow an argument"
# for every letter and two-letter prefix (no other names), and every name (neither message:
# optional). tests/slurm/test_sbatch_options.py checks the table against the installed sbatch.
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
        return SlurmSubmitError(f"{self.job_label}: resource 'slurm_extra' {problem} {FIX_HINT}")

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
            f"{extra!r}. Balance its quotes. {FIX_HINT}"
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
                    f"nodes (e.g. 'node1,node[3-5]'), not a file of them. {FIX_HINT}"
                ) from None
    args = tuple(arg for option in options if option.name != "exclude" for arg in option.args)
    return SlurmExtra(args=args, exclude=tuple(excluded))
