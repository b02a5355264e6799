import asyncio
import subprocess

import pytest

from snakemake_executor_plugin_frozen.slurm import commands
from snakemake_executor_plugin_frozen.slurm.commands import (
    SbatchError,
    SlurmCommandError,
    StatusQueryError,
    _Result,
    is_transient,
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
        ids = argv[argv.index("-j") + 1].split(",")
        answer = self.handlers[name]
        return answer(ids) if callable(answer) else _Result(*answer)


@pytest.fixture
def fake_async(monkeypatch):
    def install(**handlers):
        fake = FakeAsyncRun(**handlers)
        monkeypatch.setattr(commands, "_run_async", fake)
        return fake

    return install


def query(ids, **kwargs):
    return asyncio.run(query_states(ids, retry_delay=0, **kwargs))


def test_query_states_uses_sacct_by_id(fake_async):
    fake = fake_async(sacct=(0, "1|COMPLETED|0:0\n2|CANCELLED by 0|0:0\n2.batch|x|0:0\n", ""))
    assert query(["1", "2"]) == {
        "1": JobState("COMPLETED", "0:0"),
        "2": JobState("CANCELLED by 0", "0:0"),
    }
    assert fake.calls == [
        [
            "sacct",
            "-X",
            "--parsable2",
            "--noheader",
            "--format=JobIdRaw,State,ExitCode",
            "-j",
            "1,2",
        ]
    ]


def test_query_states_asks_squeue_for_ids_sacct_does_not_know_yet(fake_async):
    fake = fake_async(sacct=(0, "1|RUNNING|0:0\n", ""), squeue=(0, "2|PENDING\n", ""))
    assert query(["1", "2", "3"]) == {"1": JobState("RUNNING", "0:0"), "2": JobState("PENDING")}
    assert fake.calls[1] == ["squeue", "-h", "-t", "all", "-o", "%i|%T", "-j", "2,3"]


def test_query_states_falls_back_when_accounting_disabled(fake_async):
    fake = fake_async(
        sacct=(1, "", DISABLED),
        squeue=(0, "1|RUNNING\n", ""),
        sacct_c=(0, "2|FAILED|3:0\n", ""),
    )
    assert query(["1", "2", "3"]) == {"1": JobState("RUNNING"), "2": JobState("FAILED", "3:0")}
    assert [c[0] for c in fake.calls] == ["sacct", "squeue", "sacct"]
    assert "-c" in fake.calls[2] and fake.calls[2][-1] == "2,3"


def test_query_states_without_sacct_binary(fake_async):
    fake_async(
        sacct=(127, "", "sacct: command not found"),
        squeue=(0, "1|COMPLETED\n", ""),
        sacct_c=(127, "", "sacct: command not found"),
    )
    assert query(["1", "2"]) == {"1": JobState("COMPLETED")}


def test_query_states_squeue_invalid_id_asks_one_by_one(fake_async):
    def squeue(ids):
        if ids == ["2"]:
            return _Result(1, "", INVALID_ID)
        if len(ids) > 1:
            return _Result(1, "", INVALID_ID)
        return _Result(0, f"{ids[0]}|RUNNING\n", "")

    fake = fake_async(sacct=(1, "", DISABLED), squeue=squeue, sacct_c=(0, "", ""))
    assert query(["1", "2", "3"]) == {"1": JobState("RUNNING"), "3": JobState("RUNNING")}
    squeue_ids = [c[c.index("-j") + 1] for c in fake.calls if c[0] == "squeue"]
    assert squeue_ids == ["1,2,3", "1", "2", "3"]


def test_query_states_retries_transient_sacct_errors(fake_async):
    answers = iter(
        [_Result(1, "", "sacct: error: Socket timed out"), _Result(0, "1|PENDING|0:0", "")]
    )
    fake = fake_async(sacct=lambda ids: next(answers))
    assert query(["1"]) == {"1": JobState("PENDING", "0:0")}
    assert len(fake.calls) == 2


def test_query_states_raises_when_no_source_answers(fake_async):
    down = (1, "", "error: Unable to contact slurm controller (connect failure)")
    fake = fake_async(sacct=down, squeue=down)
    with pytest.raises(StatusQueryError, match="no SLURM status source answered"):
        query(["1"], attempts=2)
    assert [c[0] for c in fake.calls] == ["sacct", "sacct", "squeue", "squeue"]


def test_query_states_keeps_sacct_answer_when_squeue_fails(fake_async):
    fake_async(sacct=(0, "1|RUNNING|0:0\n", ""), squeue=(1, "", "squeue: error: weird"))
    assert query(["1", "2"]) == {"1": JobState("RUNNING", "0:0")}


def test_query_states_chunks_and_clusters(fake_async, monkeypatch):
    monkeypatch.setattr(commands, "CHUNK_SIZE", 2)
    fake = fake_async(sacct=lambda ids: _Result(0, "".join(f"{i}|RUNNING|0:0\n" for i in ids), ""))
    assert len(query(["1", "2", "3", "1"], clusters=True)) == 3
    assert [c[-1] for c in fake.calls] == ["1,2", "3"]
    assert all("--clusters=all" in c for c in fake.calls)


def test_query_states_empty():
    assert asyncio.run(query_states([])) == {}


def write_stub(directory, name, body):
    path = directory / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def test_query_states_with_stub_commands_on_path(tmp_path, monkeypatch):
    """The real asyncio subprocess path, against stub sacct/squeue scripts."""
    write_stub(tmp_path, "sacct", f'echo "{DISABLED}"; exit 1')
    write_stub(tmp_path, "squeue", "echo 'CLUSTER: ci'; echo '7|RUNNING'")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert query(["7"]) == {"7": JobState("RUNNING")}


def test_async_runner_timeout_and_missing_binary():
    result = asyncio.run(commands._run_async(["sleep", "5"], timeout=0.1))
    assert result.returncode != 0 and is_transient(result.output)
    result = asyncio.run(commands._run_async(["/nonexistent/sacct"], timeout=1))
    assert result.returncode == 127 and "command not found" in result.output
