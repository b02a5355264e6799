import os
import re
import shutil
import string
import subprocess

import pytest

from snakemake_executor_plugin_frozen.slurm.srun_options import (
    SRUN_LONG_OPTIONS,
    SRUN_SHORT_OPTIONS,
    OptionValue,
    SrunArgvError,
    command_index,
    command_indices,
    parse_srun_argv,
    resolve_long_option,
)

# (srun's arguments, where the program starts). PROG and W are no programs on PATH, so the
# test against the real srun (which only checks that the program exists) runs nothing.
CASES = [
    (["PROG"], 0),
    (["PROG", "-N", "2"], 0),  # after the program: the program's
    (["-l", "PROG", "--zzz", "-N"], 1),
    (["-N2", "-n4", "PROG"], 2),
    (["-N", "2", "-n", "4", "PROG", "x"], 4),
    (["-lN2", "PROG"], 1),  # a cluster: -l -N 2
    (["-luN", "2", "PROG"], 2),
    (["-lJ", "-N", "PROG"], 2),  # the value of a cluster's last option may start with '-'
    (["-J", "--", "PROG"], 2),  # '--' as a value ends nothing
    (["-J", ":", "PROG"], 2),  # nor does ':'
    (["--mem=100", "PROG"], 1),
    (["--mem", "100", "PROG"], 2),
    (["--job-name", "-l", "PROG"], 2),
    (["--job-name=", "PROG"], 1),
    (["--", "PROG", "-l"], 1),
    (["-l", "--", "-PROG"], 2),
    (["-l", "--", "PROG", "--", "x"], 2),
    (["-l", "-", "x"], 1),  # a lone '-' is no option
    # Optional values only attached: a separate word is the program.
    (["--nice", "5", "PROG"], 1),
    (["--nice=5", "PROG"], 1),
    (["-K", "PROG"], 1),
    (["-K1", "PROG"], 1),
    (["-I", "5", "PROG"], 1),
    (["-lI5", "PROG"], 1),
    (["--immediate=5", "-K", "PROG"], 2),
    # Abbreviations: an exact name wins, else a prefix of exactly one name.
    (["--lab", "PROG"], 1),
    (["--ntasks-per-n", "2", "PROG"], 2),
    (["--tasks-per=2", "PROG"], 1),
    (["--mem-per-c", "100", "PROG"], 2),
    (["--job-", "x", "PROG"], 2),
    (["--threads", "2", "PROG"], 2),  # exact, though --threads-per-core starts with it
    (["--gpus", "1", "PROG"], 2),
    (["--mul", "PROG"], 1),  # --multi-prog: PROG is its configuration file
    # No program, or an option srun refuses.
    ([], None),
    (["-l"], None),
    (["-N", "2"], None),
    (["--"], None),
    (["-l", "--"], None),
    (["-J"], None),  # value missing
    (["-lJ"], None),
    (["--mem"], None),
    (["--job", "x", "PROG"], None),  # ambiguous: --jobid, --job-name
    (["--n", "PROG"], None),
    (["--cpu", "1", "PROG"], None),
    (["--zzz", "PROG"], None),  # unknown
    (["-y", "PROG"], None),
    (["-l-", "PROG"], None),
    (["--label=1", "PROG"], None),  # no value allowed
    (["--=1", "PROG"], None),  # the empty prefix starts every name
]
# Heterogeneous steps: (arguments, where each program starts).
HET_CASES = [
    (["-l", "/bin/true", ":", "-n1", "PROG"], (1, 4)),
    (["/bin/true", "x", ":", "--", "PROG"], (0, 4)),
    (["/bin/true", ":", "/bin/true", ":", "PROG"], (0, 2, 4)),
    (["-l", ":", "-n1", "PROG"], (3,)),  # the first component runs the next one's program
    (["-l", "--", ":", "PROG"], (3,)),
    (["PROG", "::", "x"], (0,)),  # '::' is no separator
    (["/bin/true", ":"], None),  # the last component has no program
    (["/bin/true", ":", "-l"], None),
    (["/bin/true", ":", "--zzz", "PROG"], None),
]


def ours(argv: list[str]) -> int | None:
    try:
        return command_index(argv)
    except SrunArgvError:
        return None


@pytest.mark.parametrize(("argv", "expected"), CASES)
def test_command_index(argv, expected):
    assert ours(argv) == expected


@pytest.mark.parametrize(("argv", "expected"), HET_CASES)
def test_command_indices_of_heterogeneous_steps(argv, expected):
    if expected is None:
        with pytest.raises(SrunArgvError):
            command_indices(argv)
    else:
        assert command_indices(argv) == expected
        assert command_index(argv) == expected[0]


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        ([], "no program"),
        (["-l", "--"], "no program"),
        (["PROG", ":"], "no program to run after its last ':'"),
        (["--job", "x", "PROG"], "'--job' is ambiguous: it could be --job-name, --jobid"),
        (["--zzz", "PROG"], "unrecognized option '--zzz'"),
        (["-ly", "PROG"], "invalid option -y in '-ly'"),
        (["--mem"], "option '--mem' (--mem) requires an argument"),
        (["--lab=1", "PROG"], "option --label doesn't allow an argument ('--lab=1')"),
    ],
)
def test_errors_name_the_problem(argv, problem):
    with pytest.raises(SrunArgvError, match=re.escape(problem)):
        command_index(argv)
    assert issubclass(SrunArgvError, ValueError)


def test_parse_names_the_options_and_arguments():
    (first, second) = parse_srun_argv(["-lN2", "--mul", "--nice=3", "conf", ":", "-J", "x", "p"])
    assert [(o.name, o.value) for o in first.options] == [
        ("label", None),
        ("nodes", "2"),
        ("multi-prog", None),  # the shim must see it: the program is a configuration file
        ("nice", "3"),
    ]
    assert (first.command, first.end) == (3, 4)
    assert [o.args for o in second.options] == [("-J", "x")]
    assert (second.command, second.end) == (7, 8)


def test_tables_are_consistent():
    assert len(SRUN_LONG_OPTIONS) == 131
    assert set(SRUN_SHORT_OPTIONS.values()) <= set(SRUN_LONG_OPTIONS)
    assert resolve_long_option("mem", SRUN_LONG_OPTIONS) == "mem"
    assert resolve_long_option("cpu_", SRUN_LONG_OPTIONS) == "cpu_bind"


# -- against the installed srun ------------------------------------------------------------

# srun's options that print something and exit when getopt reaches them.
EXITS = {"help", "usage", "version"}
# Values to try for an option until srun accepts one (no program on PATH is named so).
SAMPLE_VALUES = ["1", "none", "now", "block", "user", "all", "enforce-binding", "off", "no"]


def srun_says(*args: str) -> str:
    """srun's complaint about `args`. With SLURM_TEST_EXEC=1 srun checks that the program
    is executable while reading its arguments, before it asks the controller for anything,
    so a program that does not exist ends it with "Can not execute <program>". /bin/true
    (the existing program before a later component's) is run with --test-only: should srun
    take it for the last program, it asks the controller when it could run, and runs
    nothing."""
    for word in args:
        assert word == "/bin/true" or not shutil.which(word), f"srun would run {word}"
    test_only = ["--test-only"] if "/bin/true" in args else []
    result = subprocess.run(
        ["srun", *test_only, *args],
        env={**os.environ, "SLURM_TEST_EXEC": "1"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return (result.stderr + result.stdout).strip()


def srun_reads(argv: list[str]) -> str:
    """Where srun's program starts: the word it takes for the (last component's) program,
    "ambiguous", or "refused" (no program, an unknown option, a value missing or not
    allowed or that srun refuses, or an option that prints and exits)."""
    said = srun_says(*argv)
    program = re.search(r"Can not execute (.*)|Could not open multi_prog config file (.*)", said)
    if program:
        return program.group(1) or program.group(2)
    return "ambiguous" if " is ambiguous" in said else "refused"


def we_read(argv: list[str]) -> str:
    try:
        return argv[command_indices(argv)[-1]]
    except SrunArgvError as e:
        return "ambiguous" if " is ambiguous" in str(e) else "refused"


@pytest.mark.slurm
@pytest.mark.parametrize(("argv", "expected"), CASES + HET_CASES)
def test_cases_as_the_installed_srun_reads_them(argv, expected):
    assert srun_reads(argv) == we_read(argv)


def srun_names(prefix: str) -> set[str]:
    """The long options srun's getopt_long may take `--prefix` for, from its messages."""
    said = srun_says(f"--{prefix}").splitlines()[0]
    if "ambiguous" in said:
        return set(re.findall(r"'--([^']+)'", said.split("possibilities:", 1)[1]))
    if "unrecognized" in said:
        return set()
    # One name starts with it; ours must be it, and srun must know it whole.
    (name,) = [name for name in SRUN_LONG_OPTIONS if name.startswith(prefix)]
    assert "unrecognized" not in srun_says(f"--{name}"), name
    return {name}


@pytest.mark.slurm
def test_pinned_long_options_are_the_installed_srun_options():
    found: set[str] = set()
    for char in string.ascii_letters + string.digits + "_-":
        found |= srun_names(char)
    assert found == set(SRUN_LONG_OPTIONS)
    for name, kind in SRUN_LONG_OPTIONS.items():
        if "requires an argument" in srun_says(f"--{name}"):
            assert kind is OptionValue.REQUIRED, name
        elif "doesn't allow an argument" in srun_says(f"--{name}=x"):
            assert kind is OptionValue.NONE, name
        else:
            assert kind is OptionValue.OPTIONAL, name


def sample_value(name: str) -> str:
    """A value srun accepts for --name (it then reads the word after as the program)."""
    for value in SAMPLE_VALUES:
        if srun_reads([f"--{name}={value}", "W"]) == "W":
            return value
    raise AssertionError(f"srun accepts none of {SAMPLE_VALUES} for --{name}")


@pytest.mark.slurm
def test_program_starts_where_srun_says_for_every_abbreviation():
    """Every prefix of every long option, its value separate and attached: srun and we take
    the same word for the program, or both refuse (an ambiguous prefix: both so)."""
    values = {
        name: sample_value(name)
        for name, kind in SRUN_LONG_OPTIONS.items()
        if kind is not OptionValue.NONE and name not in EXITS
    }
    prefixes = {name[:end] for name in SRUN_LONG_OPTIONS for end in range(1, len(name) + 1)}
    assert len(prefixes) > 800
    for prefix in sorted(prefixes):
        try:
            name = resolve_long_option(prefix, SRUN_LONG_OPTIONS)
        except ValueError:
            name = None
        value = values.get(name or "", "1")
        separate = value if SRUN_LONG_OPTIONS.get(name or "") is OptionValue.REQUIRED else "W0"
        for argv in ([f"--{prefix}", separate, "W"], [f"--{prefix}={value}", "W"]):
            expected = "refused" if name in EXITS else we_read(argv)
            assert srun_reads(argv) == expected, argv


@pytest.mark.slurm
def test_pinned_short_options_are_the_installed_srun_options():
    help_text = srun_says("--help")
    named = dict(re.findall(r"^\s+-(\w),?\s+--([a-z-]+)", help_text, re.MULTILINE))
    assert named == {c: n for c, n in SRUN_SHORT_OPTIONS.items() if c != "F"}
    for char in string.ascii_letters + string.digits + string.punctuation.replace("-", ""):
        if f"invalid option -- '{char}'" in srun_says(f"-{char}"):
            assert char not in SRUN_SHORT_OPTIONS, char
            continue
        name = SRUN_SHORT_OPTIONS[char]
        if name in EXITS:
            continue
        value = sample_value(name) if SRUN_LONG_OPTIONS[name] is not OptionValue.NONE else "W0"
        cases = [[f"-{char}", value, "W"], [f"-{char}{value}", "W"], [f"-l{char}", value, "W"]]
        if SRUN_LONG_OPTIONS[name] is not OptionValue.REQUIRED:
            cases.append([f"-{char}", "-l", "W"])  # the next option is one
        for argv in cases:
            assert srun_reads(argv) == we_read(argv), argv
