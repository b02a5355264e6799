"""srun's option grammar: where, in an ``srun`` command line, the task's program starts.

An ``srun`` shim in a job's view runs ``srun <srun options> <our wrapper> -- <program>
<args>``; for that it must split the argv exactly where srun's getopt_long does:

- srun parses with ``+`` (POSIXLY_CORRECT): options end at the first non-option word (a
  lone ``-`` is one) or after ``--``; everything from there on belongs to the program, even
  words that look like srun options.
- A long option may be abbreviated to any prefix that names only it (an exact name wins);
  its value is written ``--opt=v`` or, if the value is required, also ``--opt v`` (taken
  even when it starts with ``-``). An optional value is taken only with ``=``:
  ``--nice 5 prog`` runs the program ``5``.
- Short options cluster: ``-lN2`` is ``-l -N 2``; a required value is the rest of the
  word or the next argument, an optional one only the rest of the word.
- A ``:`` word after a program (or where one would start) ends a heterogeneous-step
  component: the next component's options follow it, then its program. A component
  without a program gets a later one's (``srun -L lic:2 : prog``).

The tables are srun 22.05.8's (Debian 12 package slurm-client), pinned from the binary's own
getopt_long answers, since ``srun --help`` leaves out 22 of its 131 long options (--cpu-bind,
--hint, --nodefile, --test-only, --uid, --x11, ...) and -F (tests/slurm/test_srun_options.py
checks them against the installed srun). The getopt walk is shared with
``sbatch_options.py``'s reading of sbatch options; it lives here so that the shim, which
runs at every ``srun`` in a job, imports nothing but this module (no Snakemake; nothing the
package's ``__init__`` does not load already).
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence


class OptionValue(Enum):
    """Whether an option takes a value (getopt's has_arg)."""

    NONE = "none"
    OPTIONAL = "optional"  # only attached: --nice=5, -k<value>
    REQUIRED = "required"  # attached or as the next argument: --mem=4G, --mem 4G, -J x, -Jx


class AmbiguousOptionError(ValueError):
    """An abbreviated long option that getopt_long refuses: it starts several names."""

    def __init__(self, candidates: Sequence[str]) -> None:
        self.candidates = tuple(candidates)
        super().__init__("it could be " + ", ".join(f"--{name}" for name in self.candidates))


def resolve_long_option(written: str, long_options: Mapping[str, OptionValue]) -> str:
    """The long option getopt_long takes ``--<written>`` for: an exact name wins, else a
    prefix of exactly one name. An unknown name is returned as written. Raises
    ``AmbiguousOptionError`` listing the candidates when the prefix starts several names.

    (glibc also accepts a prefix shared only by aliases of one option, such as srun's
    --cpu-bind and --cpu_bind; no prefix of an sbatch or srun 22.05 option is such a case
    that is not ambiguous anyway, which the tests against the real programs check.)"""
    if written in long_options:
        return written
    matches = sorted(name for name in long_options if name.startswith(written))
    if len(matches) > 1:
        raise AmbiguousOptionError(matches)
    return matches[0] if matches else written


class Option(NamedTuple):
    """One option as getopt_long reads it."""

    name: str  # the long name it resolves to (as written for a name the table lacks)
    args: tuple[str, ...]  # arguments that pass it on by itself, with its value
    value: str | None


class OptionWalk:
    """getopt_long's reading of the options in ``tokens``, one argument at a time: the
    caller decides what a non-option word or ``--`` means and advances ``next``.

    Each way getopt_long refuses an argument is a method returning the exception to raise;
    the defaults say it in getopt's words, raised as ``error_type``."""

    error_type: type[Exception] = ValueError

    def __init__(
        self,
        tokens: Sequence[str],
        long_options: Mapping[str, OptionValue],
        short_options: Mapping[str, str],
        start: int = 0,
    ) -> None:
        self.tokens = tokens
        self.long_options = long_options
        self.short_options_table = short_options
        self.next = start  # the index of the next argument to read

    # -- refusals (overridden for sbatch's own messages) -----------------------------

    def ambiguous(self, token: str, error: AmbiguousOptionError) -> Exception:
        return self.error_type(f"option {token!r} is ambiguous: {error}")

    def unknown_long(self, token: str) -> Exception | None:
        """None: pass the unknown option on as written, taking no value."""
        return self.error_type(f"unrecognized option {token!r}")

    def unknown_short(self, token: str, letter: str) -> Exception:
        return self.error_type(f"invalid option -{letter} in {token!r}")

    def value_not_allowed(self, token: str, name: str) -> Exception:
        return self.error_type(f"option --{name} doesn't allow an argument ({token!r})")

    def missing_value(self, token: str, name: str) -> Exception:
        return self.error_type(f"option {token!r} (--{name}) requires an argument")

    def check(self, name: str, token: str) -> None:
        """Called for each option before its value is read; may raise."""

    # -- the walk ------------------------------------------------------------------

    def take_value(self, token: str, name: str) -> str:
        """The argument after `token` as its value, as getopt takes it (even if it starts
        with '-')."""
        if self.next >= len(self.tokens):
            raise self.missing_value(token, name)
        self.next += 1
        return self.tokens[self.next - 1]

    def long_option(self, token: str) -> Option:
        """``token`` (``--name[=value]``, already read) and, if it needs one, its value."""
        written, has_value, value = token[2:].partition("=")
        try:
            name = resolve_long_option(written, self.long_options)
        except AmbiguousOptionError as e:
            raise self.ambiguous(token, e) from None
        kind = self.long_options.get(name)
        if kind is None and (refusal := self.unknown_long(token)) is not None:
            raise refusal
        self.check(name, token)
        if has_value and kind is OptionValue.NONE:
            raise self.value_not_allowed(token, name)
        if has_value or kind is not OptionValue.REQUIRED:
            return Option(name, (token,), value if has_value else None)
        value = self.take_value(token, name)
        return Option(name, (token, value), value)

    def short_options(self, token: str) -> list[Option]:
        """A cluster such as ``-vJname`` or ``-vx node1`` (already read): flags, then at
        most one option with a value, which takes the rest of the argument (or the next
        one)."""
        parsed: list[Option] = []
        for position, letter in enumerate(token[1:], start=2):
            if (name := self.short_options_table.get(letter)) is None:
                raise self.unknown_short(token, letter)
            self.check(name, token)
            rest = token[position:]
            kind = self.long_options[name]
            if kind is OptionValue.NONE:
                parsed.append(Option(name, (f"-{letter}",), None))
                continue
            if kind is OptionValue.OPTIONAL:
                parsed.append(Option(name, (f"-{letter}{rest}",), rest or None))
            else:
                value = rest or self.take_value(token, name)
                parsed.append(Option(name, (f"-{letter}", value), value))
            break
        return parsed


# srun's long options, as srun 22.05.8 parses them, read from its getopt_long answers:
#   srun --c          "option '--c' is ambiguous; possibilities: '--cluster-constraint' ..."
#   srun --mem        "option '--mem' requires an argument"
#   srun --label=x    "option '--label' doesn't allow an argument"
#   srun --zzz        "unrecognized option '--zzz'"
# for every letter, digit, '_' and '-' (the lists name all; --k and --x start one name
# each, --kill-on-bad-exit and --x11), then every name (neither message: optional).
_REQUIRED_VALUE = """
    accel-bind account acctg-freq bb bbf bcast-exclude begin chdir cluster
    cluster-constraint clusters comment constraint container context core-spec
    cores-per-socket cpu-bind cpu-freq cpu_bind cpus-per-gpu cpus-per-task deadline
    delay-boot dependency distribution epilog error exclude export extra-node-info gid
    gpu-bind gpu-freq gpus gpus-per-node gpus-per-socket gpus-per-task gres gres-flags
    het-group hint input job-name jobid licenses mail-type mail-user mcs-label mem
    mem-bind mem-per-cpu mem-per-gpu mincpus mpi msg-timeout network nodefile nodelist
    nodes ntasks ntasks-per-core ntasks-per-gpu ntasks-per-node ntasks-per-socket
    ntasks-per-tres open-mode output pack-group partition power prefer priority profile
    prolog qos relative reservation signal slurmd-debug sockets-per-node switches
    task-epilog task-prolog tasks-per-node thread-spec threads threads-per-core time
    time-min tmp uid wait wckey
"""
_OPTIONAL_VALUE = """
    bcast compress exclusive immediate kill-on-bad-exit nice no-kill overlap propagate
    resv-ports send-libs x11
"""
_NO_VALUE = """
    contiguous debugger-test disable-status exact help hold interactive label multi-prog
    no-allocate overcommit oversubscribe preserve-env pty quiet quit-on-interrupt reboot
    spread-job test-only unbuffered usage use-min-nodes verbose version whole
"""


def option_table(required: str, optional: str, none: str) -> dict[str, OptionValue]:
    """A long-option table from the space-separated names of each kind."""
    return {
        **dict.fromkeys(required.split(), OptionValue.REQUIRED),
        **dict.fromkeys(optional.split(), OptionValue.OPTIONAL),
        **dict.fromkeys(none.split(), OptionValue.NONE),
    }


SRUN_LONG_OPTIONS = option_table(_REQUIRED_VALUE, _OPTIONAL_VALUE, _NO_VALUE)
# Its short options: `srun --help`, plus -F (--nodefile), which it leaves out. `srun -X`
# and `srun -X-` for every letter, digit and punctuation character confirm that exactly
# these are options and that each takes a value like its long form.
SRUN_SHORT_OPTIONS: dict[str, str] = {
    "A": "account",
    "b": "begin",
    "B": "extra-node-info",
    "c": "cpus-per-task",
    "C": "constraint",
    "d": "dependency",
    "D": "chdir",
    "e": "error",
    "E": "preserve-env",
    "F": "nodefile",
    "G": "gpus",
    "h": "help",
    "H": "hold",
    "i": "input",
    "I": "immediate",
    "J": "job-name",
    "k": "no-kill",
    "K": "kill-on-bad-exit",
    "l": "label",
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
    "r": "relative",
    "s": "oversubscribe",
    "S": "core-spec",
    "t": "time",
    "T": "threads",
    "u": "unbuffered",
    "v": "verbose",
    "V": "version",
    "w": "nodelist",
    "W": "wait",
    "x": "exclude",
    "X": "disable-status",
    "Z": "no-allocate",
}
HET_SEPARATOR = ":"


class SrunArgvError(ValueError):
    """srun would find no program in this argv, or refuse one of its options."""


class _SrunWalk(OptionWalk):
    error_type = SrunArgvError


class SrunComponent(NamedTuple):
    """One component of an srun command line (a heterogeneous step has several, separated
    by ``:`` words)."""

    options: tuple[Option, ...]  # in order, long names resolved
    # Index in argv of its program, or None: it runs a later component's program.
    command: int | None
    end: int  # index of the ':' after its arguments, or len(argv)


def parse_srun_argv(argv: Sequence[str]) -> tuple[SrunComponent, ...]:
    """srun's reading of ``argv`` (its arguments, without ``srun`` itself): its
    components, each with its options and where its program starts.

    Raises ``SrunArgvError`` naming the problem when srun would refuse an option (unknown,
    ambiguous abbreviation, value missing or not allowed) or find no program to run. srun
    still may refuse an option's value: only the grammar is checked."""
    components: list[SrunComponent] = []
    start = 0
    while True:
        walk = _SrunWalk(argv, SRUN_LONG_OPTIONS, SRUN_SHORT_OPTIONS, start)
        options: list[Option] = []
        while walk.next < len(argv):
            token = argv[walk.next]
            if token == "--":
                walk.next += 1
                break
            if not token.startswith("-") or token == "-":
                break
            walk.next += 1
            if token.startswith("--"):
                options.append(walk.long_option(token))
            else:
                options += walk.short_options(token)
        command = walk.next
        end = command
        while end < len(argv) and argv[end] != HET_SEPARATOR:
            end += 1
        components.append(SrunComponent(tuple(options), command if command < end else None, end))
        if end == len(argv):
            break
        start = end + 1
    if components[-1].command is None:
        where = "" if len(components) == 1 else " after its last ':'"
        raise SrunArgvError(f"srun has no program to run{where}: {' '.join(argv)!r}")
    return tuple(components)


def command_indices(argv: Sequence[str]) -> tuple[int, ...]:
    """Where each program in srun's ``argv`` (without ``srun`` itself) starts: one index,
    or one per component of a heterogeneous step that names its program. Raises
    ``SrunArgvError`` as ``parse_srun_argv``."""
    return tuple(c.command for c in parse_srun_argv(argv) if c.command is not None)


def command_index(argv: Sequence[str]) -> int:
    """The index in srun's ``argv`` (without ``srun`` itself) where the program starts,
    e.g. 3 for ``-N2 --mem 4G hostname -f``. With ``:`` (a heterogeneous step) it is the
    first program; ``command_indices`` gives them all. Raises ``SrunArgvError`` naming the
    problem when srun would find no program or refuse an option."""
    return command_indices(argv)[0]
