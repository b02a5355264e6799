import asyncio
import subprocess
from datetime import datetime

import pytest
from helpers.cluster import no_wait

from snakemake_executor_plugin_frozen.slurm import commands
from snakemake_executor_plugin_frozen.slurm.call_budget import CallBudget
from snakemake_executor_plugin_frozen.slurm.commands import (
    SbatchError,
    SlurmCommandError,
    StatusQueryError,
    _Result,
    is_transient,
    parse_sbatch_output,
    query_states,
    run_sbatch,
    sacct_usable,
    scancel,
)
from snakemake_executor_plugin_frozen.slurm.status import JobState

DISABLED = "Slurm accounting storage is disabled"
INVALID_ID = "slurm_load_jobs error: Invalid job id specified"


@pytest.mark.parametrize(
    "message",
    [
        "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation",
        "sbatch: error: Unable to contact slurm controller (connect failure)",
        "sbatch: error: Slurm temporarily unable to accept job, sleeping and retrying",
        "sbatch: error: Batch job submission failed: Resource temporarily unavailable",
        "sacct: error: slurm_persist_conn_open_without_init: failed to open persistent "
        "connection to host:localhost:6819: Connection refused",
        "sacct: error: Problem talking to the database: Connection refused",
        "slurm_reconfigure error: Zero Bytes were transmitted or received",
        "sbatch timed out after 60 s",
    ],
)
def test_transient_errors(message):
    assert is_transient(message)


@pytest.mark.parametrize(
    "message",
    [
        "sbatch: error: Batch job submission failed: Invalid partition name specified",
        "sbatch: error: Batch job submission failed: Invalid account or account/partition "
        "combination specified",
        "sbatch: error: Batch job submission failed: Requested node configuration is not available",
        "sbatch: error: Unable to open file /w/job.sh",
        DISABLED,
    ],
)
def test_permanent_errors(message):
    assert not is_transient(message)


@pytest.mark.parametrize(
    ("returncode", "output", "usable"),
    [
        (0, "1|COMPLETED|0:0", True),
        (0, "", True),
        (1, DISABLED, False),
        (0, DISABLED, False),
        (127, "sacct: command not found", False),
        (1, "sacct: error: Problem talking to the database: Connection refused", False),
    ],
)
def test_sacct_usable(returncode, output, usable):
    assert sacct_usable(returncode, output) is usable


@pytest.mark.parametrize(
    ("stdout", "job_id"),
    [
        ("123\n", "123"),
        ("4567;cluster2\n", "4567"),
        ("sbatch: site banner\n89\n", "89"),
        ("Submitted batch job 42\n", "42"),
        ("warning: 3 jobs queued\nSubmitted batch job 77 on cluster c\n", "77"),
    ],
)
def test_parse_sbatch_output(stdout, job_id):
    assert parse_sbatch_output(stdout) == job_id


@pytest.mark.parametrize("stdout", ["", "sbatch: error: nope", "12\n13\n", "1.5"])
def test_parse_sbatch_output_rejects(stdout):
    with pytest.raises(ValueError, match="job id"):
        parse_sbatch_output(stdout)


class FakeRun:
    """Stands in for subprocess.run: returns queued results, records the calls."""

    def __init__(self, *results):
        self.results = list(results)
        self.calls = []

    def __call__(self, argv, **kwargs):
        self.calls.append(argv)
        result = self.results.pop(0)
        if isinstance(result, BaseException):
            raise result
        returncode, stdout, stderr = result
        return subprocess.CompletedProcess(argv, returncode, stdout, stderr)


@pytest.fixture
def fake_run(monkeypatch):
    def install(*results):
        fake = FakeRun(*results)
        monkeypatch.setattr(commands.subprocess, "run", fake)
        return fake

    return install


ARGV = ["sbatch", "--parsable", "--comment", "a b", "/w/job.sh"]


def test_run_sbatch_returns_job_id(fake_run):
    fake = fake_run((0, "4711;clusterA\n", ""))
    assert run_sbatch(ARGV) == "4711"
    assert fake.calls == [ARGV]


def test_run_sbatch_retries_transient_errors(fake_run):
    socket = "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation"
    fake = fake_run((1, "", socket), subprocess.TimeoutExpired(ARGV, 60), (0, "12\n", ""))
    assert run_sbatch(ARGV, attempts=3, retry_delay=0) == "12"
    assert len(fake.calls) == 3


SUBMISSION = commands.Submission("run-1", "submission=abc")
TIMED_OUT = "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation"


def test_run_sbatch_takes_the_job_a_timed_out_call_made(fake_run):
    """The controller made the job although sbatch timed out: no second submission."""
    squeue = "12_[0-3]|rule_a_array snapshot=x submission=abc\n11|rule_b submission=other\n"
    fake = fake_run((1, "", TIMED_OUT), (0, squeue, ""))
    assert run_sbatch(ARGV, SUBMISSION, retry_delay=0) == "12"
    assert [c[0] for c in fake.calls] == ["sbatch", "squeue"]
    assert "--name=run-1" in fake.calls[1]


def test_run_sbatch_retries_once_slurm_says_no_job_was_made(fake_run):
    fake = fake_run((1, "", TIMED_OUT), (0, "11|rule_b submission=other\n", ""), (0, "13\n", ""))
    assert run_sbatch(ARGV, SUBMISSION, retry_delay=0) == "13"
    assert [c[0] for c in fake.calls] == ["sbatch", "squeue", "sbatch"]


def test_run_sbatch_does_not_retry_when_it_cannot_tell(fake_run):
    down = "squeue: error: Unable to contact slurm controller (connect failure)"
    fake = fake_run((1, "", TIMED_OUT), (1, "", down), (1, "", down))
    with pytest.raises(SbatchError, match="not retried, so as not to run it twice"):
        run_sbatch(ARGV, SUBMISSION, attempts=2, retry_delay=0)
    assert [c[0] for c in fake.calls] == ["sbatch", "squeue", "squeue"]


def test_run_sbatch_gives_up_after_attempts(fake_run):
    busy = "sbatch: error: Slurm temporarily unable to accept job"
    fake_run((1, "", busy), (1, "", busy))
    with pytest.raises(SbatchError, match="2 attempts") as info:
        run_sbatch(ARGV, attempts=2, retry_delay=0)
    assert busy in str(info.value) and "'a b'" in str(info.value)


def test_run_sbatch_permanent_error_fails_at_once(fake_run):
    invalid = "sbatch: error: Batch job submission failed: Invalid partition name specified"
    fake = fake_run((1, "", invalid))
    with pytest.raises(SbatchError, match="Invalid partition name") as info:
        run_sbatch(ARGV, retry_delay=0)
    assert len(fake.calls) == 1
    assert "attempt" not in str(info.value)  # nothing was retried, so nothing to count


def test_run_sbatch_unparsable_output(fake_run):
    fake_run((0, "all good\n", ""))
    with pytest.raises(SbatchError, match="a job may have been submitted"):
        run_sbatch(ARGV)


def test_run_sbatch_missing_binary(fake_run):
    fake_run(FileNotFoundError("sbatch"))
    with pytest.raises(SbatchError, match="command not found"):
        run_sbatch(ARGV, retry_delay=0)


def test_scancel_chunks_and_clusters(fake_run, monkeypatch):
    monkeypatch.setattr(commands, "CHUNK_SIZE", 2)
    fake = fake_run((0, "", ""), (0, "", ""))
    scancel(["1", "2", "3", "2"], clusters=True)
    assert fake.calls == [
        ["scancel", "--clusters=all", "1", "2"],
        ["scancel", "--clusters=all", "3"],
    ]


def test_scancel_ignores_jobs_already_gone(fake_run):
    gone = (
        "scancel: error: Kill job error on job id 5: Job/step already completing or completed\n"
        "scancel: error: Kill job error on job id 6: Invalid job id specified\n"
    )
    fake = fake_run((1, "", gone))
    scancel(["5", "6"])
    assert fake.calls == [["scancel", "5", "6"]]


def test_scancel_retries_a_controller_hiccup(fake_run):
    run = fake_run((1, "", "scancel: error: Unable to contact slurm controller"), (0, "", ""))
    scancel(["5"], retry_delay=0)
    assert run.calls == [["scancel", "5"], ["scancel", "5"]]


def test_scancel_reports_real_errors(fake_run):
    fake_run((1, "", "scancel: error: Kill job error on job id 5: Access/permission denied"))
    with pytest.raises(SlurmCommandError, match="Access/permission denied"):
        scancel(["5"], retry_delay=0)


class FakeAsyncRun:
    """Stands in for _run_async: answers per command name, records the argv lists."""

    def __init__(self, **handlers):
        self.handlers = handlers
        self.calls = []

    async def __call__(self, argv, timeout):
        self.calls.append(list(argv))
        name = "sacct_c" if argv[0] == "sacct" and "-c" in argv else argv[0]
        answer = self.handlers[name]
        return answer(argv) if callable(answer) else _Result(*answer)


@pytest.fixture
def fake_async(monkeypatch):
    def install(**handlers):
        fake = FakeAsyncRun(**handlers)
        monkeypatch.setattr(commands, "_run_async", fake)
        return fake

    return install


SINCE = datetime(2026, 12, 1, 23, 50, 0)


def query(ids, **kwargs):
    return asyncio.run(query_states(ids, "run-1", SINCE, retry_delay=0, **kwargs))


def test_query_states_asks_sacct_once_for_the_whole_run(fake_async):
    fake = fake_async(
        sacct=(0, "1|COMPLETED|0:0|node1|None\n2|CANCELLED by 0|0:0\n2.batch|x|0:0\n9|RUNNING|", "")
    )
    budget = CallBudget(sleep=no_wait)
    answer = query(["1", "2"], budget=budget)
    assert answer.states == {
        "1": JobState("COMPLETED", "0:0", nodes="node1"),
        "2": JobState("CANCELLED by 0", "0:0"),
    }
    assert answer.complete and budget.calls == 1
    assert fake.calls == [
        [
            "sacct",
            "-X",
            "--parsable2",
            "--noheader",
            "--name=run-1",
            # Past midnight: jobs of yesterday are still asked for.
            "--starttime=2026-12-01T23:50:00",
            "--format=JobID,State,ExitCode,NodeList,Reason",
        ]
    ]


def test_query_states_asks_squeue_for_ids_sacct_does_not_know_yet(fake_async):
    fake = fake_async(
        sacct=(0, "1|RUNNING|0:0\n", ""),
        squeue=(
            0,
            "1|COMPLETED||None\n2|PENDING||Priority\n7_[1-2,4%2]|PENDING||JobArrayTaskLimit\n",
            "",
        ),
    )
    answer = query(["1", "2", "3", "7_1", "7_4"])
    assert answer.states == {
        "1": JobState("RUNNING", "0:0"),  # sacct's word is final
        "2": JobState("PENDING", reason="Priority"),
        "7_1": JobState("PENDING", reason="JobArrayTaskLimit"),
        "7_4": JobState("PENDING", reason="JobArrayTaskLimit"),
    }
    assert fake.calls[1] == ["squeue", "-h", "-t", "all", "--name=run-1", "-o", "%i|%T|%N|%r"]


def test_an_array_cancelled_before_it_started_is_one_row_for_all_tasks(fake_async):
    fake_async(sacct=(0, "8|CANCELLED by 0|0:0\n9_0|COMPLETED|0:0\n", ""), squeue=(0, "", ""))
    answer = query(["8_0", "8_1", "9_0", "9_1"])
    assert answer.states == {
        "8_0": JobState("CANCELLED by 0", "0:0"),
        "8_1": JobState("CANCELLED by 0", "0:0"),
        "9_0": JobState("COMPLETED", "0:0"),
    }


def test_a_job_that_ended_before_sacct_knew_its_name_is_asked_by_id(fake_async):
    """squeue tells it ended but not how: its exit code comes from sacct by id."""
    by_name = (0, "1|RUNNING|0:0\n", "")
    by_id = (0, "2|FAILED|3:0|node1|None\n", "")
    fake = fake_async(
        sacct=lambda argv: _Result(*(by_id if "-j" in argv else by_name)),
        squeue=(0, "1|RUNNING\n2|FAILED\n3|PENDING\n", ""),
    )
    answer = query(["1", "2", "3"])
    assert answer.states["2"] == JobState("FAILED", "3:0", nodes="node1")
    assert answer.states["3"] == JobState("PENDING")
    assert fake.calls[2][-2:] == ["-j", "2"] and len(fake.calls) == 3


def test_query_states_falls_back_when_accounting_disabled(fake_async):
    fake = fake_async(
        sacct=(1, "", DISABLED),
        squeue=(0, "1|RUNNING\n", ""),
        sacct_c=(0, "2|FAILED|3:0\n", ""),
    )
    answer = query(["1", "2", "3"])
    assert answer.states == {"1": JobState("RUNNING"), "2": JobState("FAILED", "3:0")}
    assert [c[0] for c in fake.calls] == ["sacct", "squeue", "sacct"]
    assert "-c" in fake.calls[2] and fake.calls[2][-1] == "2,3"


def test_query_states_without_sacct_binary(fake_async):
    fake_async(
        sacct=(127, "", "sacct: command not found"),
        squeue=(0, "1|COMPLETED\n", ""),
        sacct_c=(127, "", "sacct: command not found"),
    )
    assert query(["1", "2"]).states == {"1": JobState("COMPLETED")}


def test_query_states_retries_transient_sacct_errors(fake_async):
    answers = iter(
        [_Result(1, "", "sacct: error: Socket timed out"), _Result(0, "1|RUNNING|0:0", "")]
    )
    fake = fake_async(sacct=lambda argv: next(answers))
    assert query(["1"]).states == {"1": JobState("RUNNING", "0:0")}
    assert len(fake.calls) == 2


def test_query_states_raises_when_no_source_answers(fake_async):
    down = (1, "", "error: Unable to contact slurm controller (connect failure)")
    fake = fake_async(sacct=down, squeue=down)
    with pytest.raises(StatusQueryError, match="no SLURM status source answered"):
        query(["1"], attempts=2)
    assert [c[0] for c in fake.calls] == ["sacct", "sacct", "squeue", "squeue"]


def test_a_pending_jobs_reason_is_the_controllers(fake_async):
    """slurmdbd may never learn why a job waits (sacct: None); squeue knows (PartitionConfig),
    and only then can a hopeless job be bounded. A job sacct shows running costs no squeue."""
    fake = fake_async(
        sacct=(0, "1|PENDING|0:0|None assigned|None\n2|RUNNING|0:0|node1|None\n", ""),
        squeue=(0, "1|PENDING||PartitionConfig\n2|RUNNING|node1|None\n", ""),
    )
    answer = query(["1", "2"])
    assert answer.states["1"] == JobState("PENDING", reason="PartitionConfig")
    assert answer.states["2"] == JobState("RUNNING", "0:0", nodes="node1")  # sacct's word
    assert [c[0] for c in fake.calls] == ["sacct", "squeue"]
    fake = fake_async(sacct=(0, "2|RUNNING|0:0|node1|None\n", ""))
    query(["2"])
    assert [c[0] for c in fake.calls] == ["sacct"]


def test_query_states_failing_squeue_makes_the_answer_partial(fake_async):
    """Jobs sacct does not know yet are not missing when squeue cannot be asked."""
    fake_async(sacct=(0, "1|RUNNING|0:0\n", ""), squeue=(1, "", "squeue: error: weird"))
    answer = query(["1", "2"])
    assert answer.states == {"1": JobState("RUNNING", "0:0")}
    assert not answer.complete


def test_query_states_clusters(fake_async):
    fake = fake_async(sacct=(0, "1|RUNNING|0:0\n", ""))
    query(["1"], clusters=True)
    assert "--clusters=all" in fake.calls[0]


def test_query_states_empty():
    assert asyncio.run(query_states([], "run-1", SINCE)).states == {}


def write_stub(directory, name, body):
    path = directory / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def test_query_states_with_stub_commands_on_path(tmp_path, monkeypatch):
    """The real asyncio subprocess path, against stub sacct/squeue scripts."""
    write_stub(tmp_path, "sacct", f'echo "{DISABLED}"; exit 1')
    write_stub(tmp_path, "squeue", "echo 'CLUSTER: ci'; echo '7|RUNNING|node2|None'")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert query(["7"]).states == {"7": JobState("RUNNING", nodes="node2")}


def test_async_runner_timeout_and_missing_binary():
    result = asyncio.run(commands._run_async(["sleep", "5"], timeout=0.1))
    assert result.returncode != 0 and is_transient(result.output)
    result = asyncio.run(commands._run_async(["/nonexistent/sacct"], timeout=1))
    assert result.returncode == 127 and "command not found" in result.output
