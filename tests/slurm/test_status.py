import pytest
from helpers.cluster import Clock

from snakemake_executor_plugin_frozen.slurm.status import (
    JobState,
    MissingJobs,
    Outcome,
    PollInterval,
    StuckJobs,
    failure_message,
    job_ids_of,
    outcome,
    parse_sacct,
    parse_squeue,
)


def test_parse_sacct_rows_including_cancelled_by_uid():
    stdout = "1|COMPLETED|0:0\n18|FAILED|3:0\n20|CANCELLED by 0|0:0\n21|PENDING|0:0\n"
    assert parse_sacct(stdout) == {
        "1": JobState("COMPLETED", "0:0"),
        "18": JobState("FAILED", "3:0"),
        "20": JobState("CANCELLED by 0", "0:0"),
        "21": JobState("PENDING", "0:0"),
    }


def test_parse_sacct_ignores_steps_blank_and_noise_lines():
    stdout = (
        "\n"
        "5|FAILED|1:0\n"
        "5.batch|FAILED|1:0\n"
        "5.extern|COMPLETED|0:0\n"
        "5.0|OUT_OF_MEMORY|0:125\n"
        "sacct: warning: something\n"
    )
    assert parse_sacct(stdout) == {"5": JobState("FAILED", "1:0")}


def test_parse_sacct_last_row_wins_and_missing_exit_code():
    assert parse_sacct("7|NODE_FAIL|0:0\n7|PENDING|0:0\n8|RUNNING|\n") == {
        "7": JobState("PENDING", "0:0"),
        "8": JobState("RUNNING", None),
    }


def test_parse_squeue_with_cluster_headers():
    stdout = "CLUSTER: ci\n31|RUNNING\n32|COMPLETED\n33|PENDING\n"
    assert parse_squeue(stdout) == {
        "31": JobState("RUNNING"),
        "32": JobState("COMPLETED"),
        "33": JobState("PENDING"),
    }
    assert parse_squeue("") == {}


@pytest.mark.parametrize(
    "state",
    [
        "PENDING",
        "RUNNING",
        "CONFIGURING",
        "COMPLETING",
        "REQUEUED",
        "RESIZING",
        "SUSPENDED",
        "UNKNOWN",
        "SOMETHING_NEW",
        "",
    ],
)
def test_running_states(state):
    assert outcome(state) is Outcome.RUNNING


@pytest.mark.parametrize(
    "state",
    [
        "BOOT_FAIL",
        "CANCELLED",
        "CANCELLED by 0",
        "CANCELLED by 1000",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "TIMEOUT",
        "ERROR",
        "REVOKED",
        "SPECIAL_EXIT",
        "PREEMPTED",
        "timeout",
    ],
)
def test_failed_states(state):
    assert outcome(state) is Outcome.FAILED


def test_success_and_requeue():
    assert outcome("COMPLETED") is Outcome.SUCCESS
    assert outcome("NODE_FAIL", requeue=True) is Outcome.RUNNING
    assert outcome("PREEMPTED", requeue=True) is Outcome.RUNNING
    assert outcome("TIMEOUT", requeue=True) is Outcome.FAILED


def test_failure_messages():
    assert failure_message("123", JobState("TIMEOUT", "0:0")).startswith(
        "SLURM job 123 ended TIMEOUT (exit 0:0): it hit its time limit"
    )
    assert "mem_mb" in failure_message("9", JobState("OUT_OF_MEMORY", "0:125"))
    assert failure_message("5", JobState("CANCELLED")).startswith("SLURM job 5 ended CANCELLED:")
    assert failure_message("6", JobState("FAILED", "3:0")) == "SLURM job 6 ended FAILED (exit 3:0)"


def test_missing_jobs_expire_after_grace():
    clock = Clock()
    missing = MissingJobs(grace_seconds=60, clock=clock)
    assert missing.update(["1", "2"], {"2": JobState("RUNNING")}) == {}
    clock.now += 60
    assert missing.update(["1", "2"], {"2": JobState("RUNNING")}) == {}
    clock.now += 1
    overdue = missing.update(["1", "2"], {})
    assert list(overdue) == ["1"]
    assert "SLURM job 1 has not been visible in sacct or squeue for 1.0 minutes" in overdue["1"]
    clock.now += 61
    assert set(missing.update(["1", "2"], {})) == {"1", "2"}


def test_missing_jobs_reset_when_seen_and_forget_inactive():
    clock = Clock()
    missing = MissingJobs(grace_seconds=10, clock=clock)
    missing.update(["1"], {})
    clock.now += 8
    missing.update(["1"], {"1": JobState("PENDING")})
    clock.now += 8
    assert missing.update(["1"], {}) == {}  # the clock restarted when it was seen
    missing.update([], {})  # job 1 is no longer active
    clock.now += 100
    assert missing.update(["1"], {}) == {}


def test_unknown_state_counts_as_missing():
    clock = Clock()
    missing = MissingJobs(grace_seconds=10, clock=clock)
    missing.update(["1"], {"1": JobState("UNKNOWN")})
    clock.now += 11
    overdue = missing.update(["1"], {"1": JobState("UNKNOWN")})
    assert "state 'UNKNOWN'" in overdue["1"]


def test_poll_interval_grows_caps_and_resets():
    poll = PollInterval(initial=2, factor=1.5, maximum=5)
    assert poll.current == 2
    assert [poll.next(finished=False) for _ in range(4)] == [3, 4.5, 5, 5]
    assert poll.next(finished=True) == 2
    assert poll.next(finished=False) == 3


def test_poll_interval_defaults_reach_cap():
    poll = PollInterval()
    values = [poll.next(finished=False) for _ in range(20)]
    assert values[0] == 3 and values[-1] == 60 and values == sorted(values)


@pytest.mark.parametrize(
    ("initial", "factor", "maximum"), [(0, 1.5, 60), (2, 0.5, 60), (10, 1.5, 5)]
)
def test_poll_interval_rejects_bad_settings(initial, factor, maximum):
    with pytest.raises(ValueError, match="poll interval"):
        PollInterval(initial, factor, maximum)


def test_array_rows_stand_for_each_task():
    assert job_ids_of("12_[0-2,5%2]") == ["12_0", "12_1", "12_2", "12_5"]
    assert job_ids_of("12_[7]") == ["12_7"]
    assert job_ids_of("12_3") == ["12_3"]
    stdout = "12_[1-2]|PENDING||JobArrayTaskLimit\n12_0|RUNNING|node1|None\n"
    assert parse_squeue(stdout) == {
        "12_0": JobState("RUNNING", nodes="node1"),
        "12_1": JobState("PENDING", reason="JobArrayTaskLimit"),
        "12_2": JobState("PENDING", reason="JobArrayTaskLimit"),
    }


def test_sacct_columns_nodes_and_reason():
    stdout = "5|NODE_FAIL|0:0|node2|None\n6|PENDING|0:0|None assigned|PartitionConfig\n"
    assert parse_sacct(stdout) == {
        "5": JobState("NODE_FAIL", "0:0", nodes="node2"),
        "6": JobState("PENDING", "0:0", reason="PartitionConfig"),
    }


def test_stuck_jobs_end_after_the_bound_and_restart_on_change():
    clock = Clock()
    stuck = StuckJobs(bound_seconds=60, clock=clock)
    hopeless = JobState("PENDING", reason="PartitionConfig")
    waiting = JobState("PENDING", reason="Resources")
    assert stuck.update({"1": hopeless, "2": waiting, "3": JobState("COMPLETING")}) == {}
    clock.now += 61
    overdue = stuck.update({"1": hopeless, "2": waiting, "3": JobState("RUNNING")})
    assert list(overdue) == ["1"]
    assert "PENDING (PartitionConfig) for 1.0 minutes" in overdue["1"]
    assert "--frozen-stuck-minutes" in overdue["1"]
    # A pending job that waits for resources or a hold is never ended.
    clock.now += 6000
    assert "2" not in stuck.update({"2": waiting, "4": JobState("PENDING", reason="JobHeldUser")})


def test_stuck_jobs_with_requeue_bound_preempted_and_node_failed():
    clock = Clock()
    stuck = StuckJobs(bound_seconds=60, requeue=True, clock=clock)
    states = {"1": JobState("PREEMPTED"), "2": JobState("NODE_FAIL"), "3": JobState("SUSPENDED")}
    assert stuck.update(states) == {}
    clock.now += 61
    assert set(stuck.update(states)) == {"1", "2"}
    # Without requeue they have ended already (outcome FAILED), nothing to bound.
    assert StuckJobs(bound_seconds=0, clock=clock).update(states) == {}
