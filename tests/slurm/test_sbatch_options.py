import re
import shlex
import string
import subprocess

import pytest

from snakemake_executor_plugin_frozen.slurm.sbatch_options import (
    SBATCH_LONG_OPTIONS,
    SBATCH_SHORT_OPTIONS,
    SlurmSubmitError,
    node_list,
    resolve_sbatch_option,
    validate_slurm_extra,
)
from snakemake_executor_plugin_frozen.slurm.srun_options import OptionValue

LABEL = "rule align (wildcards: sample=a)"


@pytest.mark.parametrize(
    ("extra", "instead"),
    [
        ("--job-name=x", "the executor sets it"),
        ("-J x", "the executor sets it"),
        ("-Jx", "the executor sets it"),
        ("--output /tmp/o", "the executor sets it"),
        ("-o o.log", "the executor sets it"),
        ("-e e.log", "the executor sets it"),
        ("--error=e.log", "the executor sets it"),
        ("--parsable", "the executor sets it"),
        ("--export=NONE", "the executor sets it"),
        ("--comment hi", "the executor sets it"),
        ("--chdir=/x", "the executor sets it"),
        ("--workdir /x", "the executor sets it"),
        ("-D /x", "the executor sets it"),
        ("--wrap 'echo hi'", "the executor sets it"),
        ("--array=1-3", "the executor sets it"),
        ("-a 1-3", "the executor sets it"),
        ("--wait", "the executor sets it"),
        ("--account=x", "slurm_account"),
        ("-A x", "slurm_account"),
        ("--partition x", "slurm_partition"),
        ("-p x", "slurm_partition"),
        ("--mem=4G", "mem_mb"),
        ("--mem-per-cpu 1G", "mem_mb_per_cpu"),
        ("--ntasks=2", "'tasks'"),
        ("-n 2", "'tasks'"),
        ("--ntasks-per-gpu=2", "tasks_per_gpu"),
        ("--cpus-per-task=2", "cpus_per_task"),
        ("-c 2", "cpus_per_task"),
        ("--cpus-per-gpu=2", "cpus_per_gpu"),
        ("--time=10", "runtime"),
        ("-t 10", "runtime"),
        ("--constraint=x", "constraint"),
        ("-C x", "constraint"),
        ("--qos=x", "qos"),
        ("-q x", "qos"),
        ("--nodes=2", "nodes"),
        ("-N 2", "nodes"),
        ("--clusters=x", "clusters"),
        ("-M x", "clusters"),
        ("--gres=gpu:1", "gres"),
        ("--gpus=1", "gpu"),
        ("-G 1", "gpu"),
    ],
)
def test_slurm_extra_rejects_executor_managed_options(extra, instead):
    with pytest.raises(SlurmSubmitError, match="slurm_extra") as info:
        validate_slurm_extra(f"--mail-type=END {extra}", LABEL)
    assert LABEL in str(info.value) and instead in str(info.value)


@pytest.mark.parametrize(
    "extra",
    [
        "--mem-per-gpu=10G",
        "--ntasks-per-node=2",
        "--export-file=env",
        "--time-min=10",
        "--gres-flags=enforce-binding",
        "--exclusive",
        "--mail-type=END,FAIL --mail-user=me@x.org",
        "--nodelist=n1",
        "--licenses=matlab:1",
    ],
)
def test_slurm_extra_allows_other_options(extra):
    parsed = validate_slurm_extra(extra, LABEL)
    assert parsed.args == tuple(shlex.split(extra)) and parsed.exclude == ()


@pytest.mark.parametrize(
    ("extra", "resolved", "instead"),
    [
        ("--part=debug", "--partition", "slurm_partition"),
        ("--partit debug", "--partition", "slurm_partition"),
        ("--out=o.log", "--output", "the executor sets it"),
        ("--chd=/x", "--chdir", "the executor sets it"),
        ("--wra=true", "--wrap", "the executor sets it"),
        ("--job=x", "--job-name", "the executor sets it"),
        ("--acco x", "--account", "slurm_account"),
        ("--qo=high", "--qos", "qos"),
        ("--mem-per-c=1G", "--mem-per-cpu", "mem_mb_per_cpu"),
        ("--ntasks-per-g=2", "--ntasks-per-gpu", "tasks_per_gpu"),
        ("--cpus-per-t 2", "--cpus-per-task", "cpus_per_task"),
        ("--pars", "--parsable", "the executor sets it"),
        ("--ar=1-3", "--array", "the executor sets it"),
        ("--cluster=c", "--cluster", "clusters"),
        ("--clusters=c", "--clusters", "clusters"),
        ("--const=x", "--constraint", "constraint"),
        ("--test", "--test-only", "submit no job"),
        ("--vers", "--version", "submit no job"),
        ("--usa", "--usage", "submit no job"),
    ],
)
def test_slurm_extra_abbreviations_of_managed_options_refused(extra, resolved, instead):
    with pytest.raises(SlurmSubmitError, match="must not contain") as info:
        validate_slurm_extra(f"--mail-type=END {extra}", LABEL)
    message = str(info.value)
    assert LABEL in message and instead in message and repr(extra.split()[0]) in message
    if extra.split()[0].split("=")[0] != resolved:
        assert f", {resolved})" in message  # says what sbatch makes of the abbreviation


@pytest.mark.parametrize(
    ("extra", "candidates"),
    [
        ("--m=4G", "--mail-type, --mail-user, --mcs-label, --mem, --mem-bind"),
        ("--mem-per 1G", "--mem-per-cpu, --mem-per-gpu"),
        ("--par=x", "--parsable, --partition"),
        ("--cl=x", "--cluster, --cluster-constraint, --clusters"),
        ("--exp=NONE", "--export, --export-file"),
        ("--wai", "--wait, --wait-all-nodes"),
        ("--ti 10", "--time, --time-min"),
        ("--acc x", "--account, --acctg-freq"),
        ("--excl=node1", "--exclude, --exclusive"),
    ],
)
def test_slurm_extra_ambiguous_abbreviation_refused(extra, candidates):
    with pytest.raises(SlurmSubmitError, match="ambiguous") as info:
        validate_slurm_extra(extra, LABEL)
    message = str(info.value)
    assert LABEL in message and candidates in message and "in full" in message


@pytest.mark.parametrize(
    "extra",
    [
        "--mail-t END --mail-u me@x.org",
        "--hin=nomultithread",
        "--mem-per-g=10G",
        "--nodel node1",
        "--kill-on=yes --ope=append",
        "--tasks-per-node=2",  # sbatch's other name of --ntasks-per-node, not --ntasks
        "--nic --prop --exclus",  # optional values left out
        "--nice=5 --propagate=STACK",
    ],
)
def test_slurm_extra_abbreviations_of_other_options_pass_unchanged(extra):
    assert validate_slurm_extra(extra, LABEL).args == tuple(shlex.split(extra))


@pytest.mark.parametrize(
    ("extra", "args"),
    [
        ("--mail-type END --begin now+1hour", ("--mail-type", "END", "--begin", "now+1hour")),
        ("-w node1 -d afterok:1", ("-w", "node1", "-d", "afterok:1")),
        ("-wnode1", ("-w", "node1")),
        ("-Hw node1", ("-H", "-w", "node1")),
        ("-vQ", ("-v", "-Q")),
        ("-kv", ("-kv",)),  # -k takes an optional value, attached: 'v' is its value
        ("-vk", ("-v", "-k")),
        # getopt takes the next argument as the value even when it starts with '-'
        ("--mail-user -x", ("--mail-user", "-x")),
        ("--signal=B:USR1@60 --mail-type=", ("--signal=B:USR1@60", "--mail-type=")),
    ],
)
def test_slurm_extra_values_and_short_clusters(extra, args):
    parsed = validate_slurm_extra(extra, LABEL)
    assert parsed.args == args and parsed.exclude == ()


@pytest.mark.parametrize(
    ("extra", "token"),
    [
        ("-vJname", "-vJname"),
        ("-HJ x", "-HJ"),
        ("-Qp debug", "-Qp"),
        ("-vt10", "-vt10"),
    ],
)
def test_slurm_extra_managed_option_inside_short_cluster_refused(extra, token):
    with pytest.raises(SlurmSubmitError, match=f"must not contain {token!r}"):
        validate_slurm_extra(extra, LABEL)


@pytest.mark.parametrize(
    ("extra", "word"),
    [
        ("--mail-type=END run.sh", "run.sh"),
        ("/home/u/other.sh", "/home/u/other.sh"),
        ("--hold yes", "yes"),  # --hold takes no value
        ("--nice 5", "5"),  # an optional value must be attached (--nice=5)
        ("-v now", "now"),
        ("--exclusive user", "user"),
        ("--tres-per-task gpu:1", "gpu:1"),  # unknown to sbatch 22.05: value must be attached
        ("-", "-"),
        (":", ":"),  # sbatch's separator of heterogeneous job components
        ("''", ""),
    ],
)
def test_slurm_extra_bare_word_refused(extra, word):
    with pytest.raises(SlurmSubmitError, match="batch script") as info:
        validate_slurm_extra(extra, LABEL)
    assert f"has {word!r}, which is neither an option" in str(info.value)
    assert LABEL in str(info.value)


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ("--mail-type", "ends with '--mail-type', which needs a value"),
        ("--hold -w", "ends with '-w', which needs a value"),
        ("--hold=yes", "--hold takes no value"),
        ("--ho=yes", "--hold takes no value"),
        ("--mail-type=END --", "has '--', which ends sbatch's options"),
        ("-Z", "sbatch has no option -Z"),
        ("-vZ", "sbatch has no option -Z"),
    ],
)
def test_slurm_extra_malformed_options_refused(extra, match):
    with pytest.raises(SlurmSubmitError, match=re.escape(match)) as info:
        validate_slurm_extra(extra, LABEL)
    assert LABEL in str(info.value) and "--set-resources" in str(info.value)


def test_slurm_extra_options_unknown_to_sbatch_22_05_pass():
    """A newer sbatch may know them; with an attached value they cannot displace the script."""
    extra = "--tres-per-task=gpu:1 --oom-kill-step"
    assert validate_slurm_extra(extra, LABEL).args == tuple(extra.split())


def test_resolve_sbatch_option_as_getopt_long():
    assert resolve_sbatch_option("mem") == "mem"  # exact wins over --mem-bind, --mem-per-cpu
    assert resolve_sbatch_option("cluster") == "cluster"  # over --clusters
    assert resolve_sbatch_option("gpus") == "gpus"
    assert resolve_sbatch_option("gpus-per-n") == "gpus-per-node"
    assert resolve_sbatch_option("no-k") == "no-kill"
    assert resolve_sbatch_option("tres-per-task") == "tres-per-task"  # unknown: as written
    with pytest.raises(ValueError, match="--no-kill, --no-requeue"):
        resolve_sbatch_option("no-")


@pytest.mark.parametrize("extra", ["-x /etc/bad_nodes", "--exclude=node1,nodes.d/x", "-x 'a b'"])
def test_exclude_file_or_bad_node_in_slurm_extra_refused(extra):
    with pytest.raises(SlurmSubmitError, match="not a node name") as info:
        validate_slurm_extra(extra, LABEL)
    assert LABEL in str(info.value) and "not a file" in str(info.value)


def test_node_list():
    assert node_list(" n1, node[1,3-4],,gpu-a ") == ["n1", "node[1,3-4]", "gpu-a"]
    assert node_list("") == []
    for bad in ("node[1", "n1,/x", "a b", "n]"):
        with pytest.raises(ValueError, match="not a node name"):
            node_list(bad)


# -- against the installed sbatch ---------------------------------------------------------


def sbatch_says(*args: str) -> str:
    """sbatch's first line of complaint about `args` (--test-only: nothing is submitted)."""
    result = subprocess.run(
        ["sbatch", "--test-only", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return (result.stderr or result.stdout).strip().splitlines()[0]


def sbatch_names(prefix: str) -> set[str]:
    """The long options sbatch's getopt_long takes `--prefix` for, from its own messages."""
    said = sbatch_says(f"--{prefix}") + "\n" + sbatch_says(f"--{prefix}=x")
    if "ambiguous" in said:
        return set(re.findall(r"'--([a-z-]+)'", said.split("possibilities:", 1)[1]))
    return set(re.findall(r"option '--([a-z-]+)' (?:requires|doesn't allow)", said))


@pytest.mark.slurm
def test_pinned_long_options_are_the_installed_sbatch_options():
    found: set[str] = set()
    for letter in string.ascii_lowercase:
        found |= sbatch_names(letter)
    assert found == set(SBATCH_LONG_OPTIONS)
    for name, kind in SBATCH_LONG_OPTIONS.items():
        if "requires an argument" in sbatch_says(f"--{name}"):
            assert kind is OptionValue.REQUIRED, name
        elif "doesn't allow an argument" in sbatch_says(f"--{name}=x"):
            assert kind is OptionValue.NONE, name
        else:
            assert kind is OptionValue.OPTIONAL, name


@pytest.mark.slurm
def test_abbreviations_resolve_as_in_sbatch():
    """Every prefix of every option: ambiguous for sbatch exactly when for us, and else the
    same option (named by sbatch's message; an optional-value option names nothing)."""
    prefixes = {name[:end] for name in SBATCH_LONG_OPTIONS for end in range(1, len(name) + 1)}
    for prefix in sorted(prefixes):
        try:
            ours = resolve_sbatch_option(prefix)
        except ValueError:
            assert "ambiguous" in sbatch_says(f"--{prefix}"), prefix
            continue
        if SBATCH_LONG_OPTIONS[ours] is OptionValue.OPTIONAL:
            said = sbatch_says(f"--{prefix}=x")
            assert "ambiguous" not in said and "unrecognized" not in said, prefix
        else:
            assert sbatch_names(prefix) == {ours}, prefix


@pytest.mark.slurm
def test_pinned_short_options_are_the_installed_sbatch_options():
    help_text = subprocess.run(["sbatch", "--help"], capture_output=True, text=True).stdout
    assert dict(re.findall(r"^\s+-(\w),?\s+--([a-z-]+)", help_text, re.MULTILINE)) == (
        SBATCH_SHORT_OPTIONS
    )
    for char in string.ascii_letters + string.digits:
        alone, dashed = sbatch_says(f"-{char}"), sbatch_says(f"-{char}-")
        if f"invalid option -- '{char}'" in alone:
            assert char not in SBATCH_SHORT_OPTIONS, char
            continue
        if char in "hV":  # help and version: sbatch prints and stops before '-'
            continue
        if "requires an argument" in alone:
            expected = OptionValue.REQUIRED
        elif "invalid option -- '-'" in dashed:
            expected = OptionValue.NONE
        else:
            expected = OptionValue.OPTIONAL
        assert SBATCH_LONG_OPTIONS[SBATCH_SHORT_OPTIONS[char]] is expected, char
