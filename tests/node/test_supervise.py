"""A job is ended as stuck by what its processes do, not by what its log says (issue 15
item 11).

`node run` used to end a job 5 s after its log showed one of Snakemake's shutdown lines
anywhere, whoever printed it: a rule that printed them, or cat-ed a file holding them, and
ran on for 5 s was killed and reported failed. Now the line is only a hint; the job is ended
once every thread of every process of it has waited only for another one (`job_is_frozen`)
for the grace period. The two genuine hangs are made here with the real Snakemake: a `run:`
block calling sys.exit, and a pipe() group whose producer fails before its consumer started
(made certain by a consumer whose command takes 2 s to format)."""

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.node import NODE_RUN, processes_in
from helpers.snakemake import run_snakemake

from snakemake_executor_plugin_frozen.node.supervise import (
    Process,
    Thread,
    descendants,
    job_is_frozen,
    runs_snakemake,
    threads_of,
)

# Every line Snakemake (or Python's logger, for it) writes when a job of it hangs.
MARKERS = (
    "Shutting down, this might take some time.\n"
    "Exception in worker\n"
    "Will exit after finishing currently running jobs (scheduler).\n"
)
SNAKEMAKE = [sys.executable, "-P", "-m", "snakemake"]
# As the batch script runs the job's Snakemake (jobscript.py), minus what needs a run.
JOB_ARGS = [
    "--cores", "2", "--attempt", "1", "--force-use-threads", "--force",
    "--target-files-omit-workdir-adjustment", "--max-inventory-time", "0", "--retries", "0",
    "--nocolor", "--no-hooks", "--nolock", "--ignore-incomplete", "--latency-wait", "1",
    "--mode", "remote",
]  # fmt: skip

WORKFLOW = f'''
import sys, threading, time

MARKERS = {MARKERS!r}


class Late:
    """The consumer's command takes 2 s to format in its pool thread: its shell starts
    after Snakemake killed the group's shells (it looks at the group every second)."""

    def __str__(self):
        if threading.current_thread() is not threading.main_thread():
            time.sleep(2)
        return ""


rule talk_shell:
    output: "out/shell.txt"
    params: markers=MARKERS
    shell: "cat markers.txt >&2; printf %s {{params.markers:q}} >&2; sleep 3; echo ok > {{output}}"


rule talk_run:
    output: "out/run.txt"
    run:
        print(MARKERS, file=sys.stderr, flush=True)
        threading.Event().wait(3)  # a lock wait, as a hang's; in a thread of its own
        with open(output[0], "w") as out:
            print("ok", file=out)


rule exit_run:
    output: "out/exit.txt"
    run:
        time.sleep(1)  # else the callback may run in the main thread, which then just exits
        sys.exit(1)


rule produce:
    output: pipe("pipes/p")
    shell: "exit 3"


rule consume:
    input: "pipes/p"
    output: "out/consumed.txt"
    params: late=Late()
    shell: "{{params.late}}cat {{input}} > {{output}}"
'''


def job_workflow(tmp_path: Path) -> Path:
    workdir = tmp_path / "wf"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(WORKFLOW)
    (workdir / "markers.txt").write_text(MARKERS)
    return workdir


def node_run(workdir: Path, command: list[str], *options: str) -> tuple[int, float, str]:
    """`node run --grace 1` of `command` from a batch-script-like shell that waits for it,
    the log a file as in a SLURM job: exit status, seconds, log."""
    log = workdir / "job.log"
    script = workdir / "job.sh"
    script.write_text(shlex.join(command) + "\nexit\n")
    started = time.monotonic()
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [*NODE_RUN, "--grace", "1", *options, "--", "bash", str(script)],
            cwd=workdir, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
        )  # fmt: skip
        try:
            status = process.wait(timeout=90)
        finally:
            process.kill()
    return status, time.monotonic() - started, log.read_text()


def job_of(workdir: Path, *targets: str, group: bool = False) -> list[str]:
    rules = [target.partition(":")[0] for target in targets]
    grouped = ["--local-groupid", "7a1e4c43-0b6d-4c52-9c8e-9f1b5c8d0e11"] if group else []
    return [*SNAKEMAKE, "--snakefile", str(workdir / "Snakefile"), "--target-jobs", *targets,
            "--allowed-rules", *rules, *grouped, *JOB_ARGS]  # fmt: skip


# -- on the node: the real Snakemake under `node run` -----------------------------------------


@pytest.mark.parametrize("rule", ["talk_shell", "talk_run"])
def test_a_rule_printing_snakemakes_shutdown_lines_runs_to_its_end(
    tmp_path: Path, rule: str
) -> None:
    """Its shell command prints every marker line, and cats a file of them, then works on
    (sleeps, or its run: block waits on a lock): longer than the grace period."""
    workdir = job_workflow(tmp_path)
    status, seconds, log = node_run(workdir, job_of(workdir, f"{rule}:"), "--single-rule")
    assert status == 0, log
    assert seconds > 3, log
    assert log.count("Shutting down, this might take some time.\n") >= 1, log
    assert "frozen:" not in log, log
    out = "shell" if rule == "talk_shell" else "run"
    assert (workdir / "out" / f"{out}.txt").read_text() == "ok\n"


def test_a_run_block_calling_sys_exit_still_ends_its_job(tmp_path: Path) -> None:
    """The pool thread that ran it dies; Snakemake's main thread waits for it for ever."""
    workdir = job_workflow(tmp_path)
    status, seconds, log = node_run(workdir, job_of(workdir, "exit_run:"), "--single-rule")
    assert status == 1, log
    assert "SystemExit: 1" in log
    assert "every process of the job waits only for another one" in log
    assert seconds < 30, log
    assert processes_in(workdir) == []


def test_a_pipe_group_whose_consumer_started_late_still_ends(tmp_path: Path) -> None:
    """The producer fails; Snakemake kills the shells started so far, logs its shutdown and
    waits for the consumer, whose `cat` blocks opening the FIFO for good."""
    workdir = job_workflow(tmp_path)
    (workdir / "out").mkdir()
    command = job_of(workdir, "consume:", "produce:", group=True)
    status, seconds, log = node_run(workdir, command)
    assert status == 1, log
    assert "every process of the job waits only for another one" in log
    assert "(cat pipes/p)" in log
    assert seconds < 60, log
    assert processes_in(workdir) == []


def test_a_job_that_is_not_snakemake_may_print_the_lines_and_sleep(tmp_path: Path) -> None:
    """What the old watch ended within its grace: the words, then a long sleep."""
    (tmp_path / "markers.txt").write_text(MARKERS)
    command = ["bash", "-c", f"printf %s '{MARKERS}' >&2; cat markers.txt >&2; sleep 2.5"]
    status, seconds, log = node_run(tmp_path, command, "--single-rule")
    assert status == 0 and seconds > 2.5, log
    assert "frozen:" not in log


# -- on the cluster ---------------------------------------------------------------------------


@pytest.mark.slurm
def test_healthy_jobs_printing_snakemakes_lines_succeed_on_the_cluster(tmp_path: Path) -> None:
    """Two jobs of one rule each print the markers and cat them to their log, then work on
    for 8 s: longer than `node run`'s 5 s grace. Both succeed."""
    workdir = job_workflow(tmp_path)
    workflow = (workdir / "Snakefile").read_text().replace("sleep 3", "sleep 8")
    workflow = workflow.replace("Event().wait(3)", "Event().wait(8)")
    (workdir / "Snakefile").write_text(workflow)
    result = run_snakemake(
        workdir, "--executor", "frozen", "--jobs", "2", "--latency-wait", "5",
        "out/shell.txt", "out/run.txt", check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert (workdir / "out" / "shell.txt").read_text() == "ok\n"
    assert (workdir / "out" / "run.txt").read_text() == "ok\n"
    logs = sorted((workdir / ".snakemake" / "frozen_logs").glob("rule_talk_*/*.log"))
    assert len(logs) == 2, output
    for log in logs:
        text = log.read_text()
        assert "Exception in worker\nWill exit after finishing" in text, text
        assert "frozen: the job" not in text, text


# -- the decision, on fabricated /proc states -------------------------------------------------

SCRIPT, SNAKE, SHELL, TOOL, ORPHAN = 10, 11, 12, 13, 14
COMMANDS = {
    SCRIPT: ["/bin/bash", "/spool/slurm_script", "--frozen-job-command"],
    SNAKE: ["/venv/bin/python", "-P", "-m", "snakemake", "--snakefile", "Snakefile"],
    SHELL: ["/usr/bin/bash", "-c", "set -euo pipefail; cat pipes/p > out/c.txt"],
    TOOL: ["cat", "pipes/p"],
    ORPHAN: ["cat", "pipes/q"],
}
PARENTS = {SCRIPT: 1, SNAKE: SCRIPT, SHELL: SNAKE, TOOL: SHELL, ORPHAN: 1}


def frozen(threads: dict[int, list[Thread] | None], commands=COMMANDS) -> bool:
    processes = [Process(pid, PARENTS[pid], SCRIPT, "0") for pid in threads]
    return job_is_frozen(processes, threads, SCRIPT, commands)


def one(pid: int, wchan: str, state: str = "S") -> list[Thread]:
    return [Thread(pid, state, wchan)]


WAITS = one(SCRIPT, "do_wait")
PIPE_HANG = {
    SCRIPT: WAITS,
    SNAKE: [Thread(SNAKE, "S", "futex_do_wait"), Thread(99, "S", "do_wait")],
    SHELL: one(SHELL, "do_wait"),
    TOOL: one(TOOL, "wait_for_partner"),
}


def test_the_two_hangs_as_proc_showed_them_are_frozen() -> None:
    assert frozen({SCRIPT: WAITS, SNAKE: one(SNAKE, "futex_do_wait")})  # sys.exit
    assert frozen(PIPE_HANG)
    # Older kernels' names of the same waits.
    assert frozen({SCRIPT: WAITS, SNAKE: one(SNAKE, "futex_wait_queue_me")})
    assert frozen({**PIPE_HANG, TOOL: one(TOOL, "pipe_wait")})
    # The killed consumer's subshell, orphaned, also waiting for the FIFO.
    assert frozen({**PIPE_HANG, ORPHAN: one(ORPHAN, "wait_for_partner")})


@pytest.mark.parametrize(
    "healthy",
    [
        # a shell: rule sleeping, reading, working, in I/O
        {**PIPE_HANG, TOOL: one(TOOL, "hrtimer_nanosleep")},
        {**PIPE_HANG, TOOL: one(TOOL, "anon_pipe_read")},
        {**PIPE_HANG, TOOL: one(TOOL, "0", state="R")},
        {**PIPE_HANG, TOOL: one(TOOL, "folio_wait_bit", state="D")},
        # a tool of the rule waiting on a lock (a timed wait looks the same)
        {**PIPE_HANG, TOOL: one(TOOL, "futex_do_wait")},
        # a run: block waiting on a lock or sleeping in Snakemake's pool thread
        {
            SCRIPT: WAITS,
            SNAKE: [Thread(SNAKE, "S", "futex_do_wait"), Thread(99, "S", "futex_do_wait")],
        },
        {
            SCRIPT: WAITS,
            SNAKE: [Thread(SNAKE, "S", "futex_do_wait"), Thread(99, "S", "hrtimer_nanosleep")],
        },
        # something left running beside the hang: it may yet open the FIFO
        {**PIPE_HANG, ORPHAN: one(ORPHAN, "hrtimer_nanosleep")},
        # stopped (a debugger), or the kernel does not name the wait
        {**PIPE_HANG, TOOL: one(TOOL, "do_signal_stop", state="T")},
        {SCRIPT: WAITS, SNAKE: one(SNAKE, "0")},
        # a thread waiting for a child it no longer has is about to return
        {SCRIPT: WAITS, SNAKE: [Thread(SNAKE, "S", "futex_do_wait"), Thread(99, "S", "do_wait")]},
        # a process gone between two reads
        {**PIPE_HANG, TOOL: None},
        # no job at all
        {},
    ],
)
def test_a_job_with_anything_awake_or_unknown_is_not_frozen(healthy) -> None:
    assert not frozen(healthy)


def test_only_snakemake_s_main_thread_may_wait_in_a_futex() -> None:
    """A program other than Snakemake where the batch script waits for it (a job's command
    that is no Snakemake) gets no exception, nor does another thread of Snakemake."""
    other = {**COMMANDS, SNAKE: ["/venv/bin/python", "tool.py"]}
    assert not frozen({SCRIPT: WAITS, SNAKE: one(SNAKE, "futex_do_wait")}, other)
    side = [Thread(SNAKE, "S", "do_wait"), Thread(99, "S", "futex_do_wait")]
    assert not frozen({**PIPE_HANG, SNAKE: side})


def test_which_command_lines_run_snakemake() -> None:
    assert runs_snakemake(["/venv/bin/python", "-P", "-m", "snakemake", "--cores", "1"])
    assert runs_snakemake(["/venv/bin/python3", "-m", "snakemake"])
    assert runs_snakemake(["/venv/bin/python", "/venv/bin/snakemake", "--cores", "1"])
    assert runs_snakemake(["/venv/bin/snakemake", "--cores", "1"])
    assert not runs_snakemake(["/venv/bin/python", "tool.py", "-m", "snakemake"])
    assert not runs_snakemake(["bash", "-c", "snakemake"])
    assert not runs_snakemake(["bash", "-m", "snakemake"])
    assert not runs_snakemake(["/venv/bin/python", "-c", "snakemake", "snakemake"])
    assert runs_snakemake(["/usr/bin/python3.11", "-W", "ignore", "-m", "snakemake"])
    assert not runs_snakemake([])


def test_the_job_s_processes_and_threads_are_read_from_proc() -> None:
    """Below a process through the children files (orphans included, being the subreaper's
    children in a job); each thread's state and wait as the kernel names it."""
    shell = subprocess.Popen(["bash", "-c", "sleep 30 & sleep 30 & wait"], process_group=0)

    def seen() -> tuple[list[Thread] | None, list[str]]:
        below = descendants(os.getpid()) or []
        sleeps = [p.pid for p in below if p.parent == shell.pid]
        waits = [(threads_of(pid) or [Thread(0, "?", "?")])[0].wchan for pid in sleeps]
        return threads_of(shell.pid), waits

    try:
        deadline = time.monotonic() + 10
        while (found := seen()) != ([Thread(shell.pid, "S", "do_wait")], ["hrtimer_nanosleep"] * 2):
            assert time.monotonic() < deadline, found  # the shell in `wait`, both asleep
            time.sleep(0.05)
    finally:
        os.killpg(shell.pid, signal.SIGKILL)
        shell.wait()
    assert threads_of(shell.pid) is None
