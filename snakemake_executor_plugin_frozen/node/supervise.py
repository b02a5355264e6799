"""`run`: the job's command, run so that it ends, and ends with it every process it started.

It exists (every job, whatever the mode) because the job's Snakemake does not always end,
nor end what it started. When a pipe() group's producer fails, its local executor kills the
group's shells that have started (not their children: a consumer's subshell blocked opening
the FIFO lives on, orphaned), and a consumer that starts a moment later is not killed at all:
it blocks for good opening a FIFO no producer will open, and Snakemake, having logged its
shutdown, waits for it until the job's time limit. SLURM ends leftover processes only with
proctrack/cgroup. So `run` starts the command in a process group of its own, is the child
subreaper of whatever it orphans, and ends every process of the job (TERM, then KILL):
- `--grace` seconds after the job's Snakemake logged that it is shutting down without
  logging that it is done (the job's log is `run`'s stderr), or after TERM, INT or HUP
  (which it passes on to the job); the status is then 1, or the job's after a signal;
- once the command has ended: what it left behind (its status is kept).
A successful Snakemake never logs that shutdown line; a rule that prints that very line into
the job's log and then runs on for `--grace` seconds would be ended too.
"""

import ctypes
import os
import signal
import stat
import sys
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass

from snakemake_executor_plugin_frozen.node.leases import process_start, stat_fields

# What Snakemake's scheduler logs when, after a failed job or a kill, it starts waiting for
# the jobs it still runs, and once that wait is over (snakemake/scheduling/job_scheduler.py).
SHUTTING_DOWN = b"Shutting down, this might take some time."
SHUT_DOWN = b"Exiting because a job execution failed."
# When a `run:` block raises SystemExit (sys.exit), the thread running it dies (Python logs
# "Exception in worker") or the scheduler logs that it will exit; the job never counts as
# finished and Snakemake 9 waits for ever. In a job of one rule nothing else runs after
# either line; a group job's other rules may run on: not for them.
WILL_EXIT = b"Will exit after finishing currently running jobs (scheduler)."
WORKER_DIED = b"Exception in worker"
# What a write into the job's read-only view of its code fails with: EROFS, or EACCES first
# for an ordinary user (the copy's files are 0444).
READ_ONLY = (b"Read-only file system", b"Permission denied")
_PR_SET_CHILD_SUBREAPER = 36  # prctl(2)
_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_POLL_SECONDS = 0.2
_KILL_AFTER_SECONDS = 2.0  # from TERM to KILL, for processes of a job that is over
_GIVE_UP_SECONDS = 5.0  # after KILL: what is still there is in an uninterruptible wait


@dataclass(frozen=True)
class Process:
    pid: int
    parent: int
    group: int
    start: str


def live_processes() -> dict[int, Process]:
    """Every process this user can see, zombies (already dead) left out."""
    found = {}
    for name in os.listdir("/proc"):
        fields = stat_fields(int(name)) if name.isdigit() else None
        if fields and fields[0] != "Z":
            found[int(name)] = Process(int(name), int(fields[1]), int(fields[2]), fields[19])
    return found


def job_processes(table: Mapping[int, Process], root: int, group: int) -> list[Process]:
    """The processes below `root` and those still in the job's process group (an orphan
    keeps its group when it ends up with init, not with `root`)."""
    children: dict[int, list[Process]] = {}
    for process in table.values():
        children.setdefault(process.parent, []).append(process)
    found: dict[int, Process] = {}
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child.pid not in found:
                found[child.pid] = child
                todo.append(child.pid)
    found.update({p.pid: p for p in table.values() if p.group == group and p.pid != root})
    return sorted(found.values(), key=lambda p: p.pid)


def command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            words = f.read().rstrip(b"\0").split(b"\0")
    except OSError:
        return "?"
    text = " ".join(w.decode(errors="replace") for w in words)
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= 80 else text[:77] + "..."


def shell_status(wait_status: int) -> int:
    """An exit status as bash gives it: 128 + N for a process ended by signal N."""
    code = os.waitstatus_to_exitcode(wait_status)
    return code if code >= 0 else 128 - code


class Children:
    """Reaps every child of this process (the job's shell and, as subreaper, whatever the
    job orphaned) and keeps the job shell's exit status."""

    def __init__(self, job: int) -> None:
        self.job = job
        self.status: int | None = None

    def reap(self) -> None:
        while True:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.job:
                self.status = shell_status(wait_status)


def end_job_processes(job: int, children: Children) -> list[str]:
    """TERM every process of the job, KILL those left after a while; what was running."""
    root = os.getpid()
    running = job_processes(live_processes(), root, job)
    shown = [f"{p.pid} ({command_line(p.pid)})" for p in running]
    _send(running, signal.SIGTERM)
    started = time.monotonic()
    while running:
        waited = time.monotonic() - started
        if waited > _KILL_AFTER_SECONDS + _GIVE_UP_SECONDS:
            print(
                "frozen: could not end process(es) of the job: "
                + ", ".join(str(p.pid) for p in running),
                file=sys.stderr,
            )
            break
        if waited > _KILL_AFTER_SECONDS:
            _send(running, signal.SIGKILL)
        time.sleep(0.05)
        children.reap()
        running = job_processes(live_processes(), root, job)
    return shown


def _send(processes: Sequence[Process], signum: int) -> None:
    for process in processes:
        if process_start(process.pid) == process.start:  # not a new process with its pid
            with suppress(ProcessLookupError, PermissionError):
                os.kill(process.pid, signum)


class ShutdownWatch:
    """Follows the job's log, this process's stderr when that is a file (as in a SLURM job),
    for Snakemake's shutdown lines, from where the log ended when the job started."""

    def __init__(self, single_rule: bool = False) -> None:
        self.log: int | None = None
        self.tail = b""
        self.markers = (SHUTTING_DOWN, WILL_EXIT, WORKER_DIED) if single_rule else (SHUTTING_DOWN,)
        self.since: float | None = None  # when a marker was seen
        self.over = False  # SHUT_DOWN was seen after it
        self.read_only = False  # READ_ONLY was seen
        try:
            log = os.open("/proc/self/fd/2", os.O_RDONLY | os.O_CLOEXEC)  # a reader of its own
        except OSError:
            return
        if stat.S_ISREG(os.fstat(log).st_mode):
            os.lseek(log, 0, os.SEEK_END)
            self.log = log
        else:
            os.close(log)

    def read(self, now: float) -> None:
        while self.log is not None and (chunk := os.read(self.log, 1 << 20)):
            text = self.tail + chunk
            if self.since is None and any(marker in text for marker in self.markers):
                self.since = now
            if self.since is not None and SHUT_DOWN in text:
                self.over = True
            self.read_only = self.read_only or any(m in text for m in READ_ONLY)
            self.tail = text[-len(WILL_EXIT) :]

    def stuck(self, now: float, grace: float) -> bool:
        return self.since is not None and not self.over and now - self.since > grace

    def close(self) -> None:
        if self.log is not None:
            os.close(self.log)
            self.log = None


class Forwarder:
    """Passes TERM, INT and HUP on to the job's process group (a scancel reaches every
    process of the job itself, a local cancel only this one) and notes when the first came."""

    def __init__(self, group: int) -> None:
        self.group = group
        self.since: float | None = None
        for signum in _FORWARDED:
            signal.signal(signum, self.forward)

    def forward(self, signum: int, frame: object) -> None:
        if self.since is None:
            self.since = time.monotonic()
        with suppress(ProcessLookupError):
            os.killpg(self.group, signum)


def become_subreaper() -> None:
    """Orphans of the job become this process's children, not init's, so that they are
    found and ended with the job (Linux 3.4+; elsewhere only its process group is)."""
    with suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def run(
    command: Sequence[str], grace: float, single_rule: bool = False, in_view: bool = False
) -> int:
    """Run the job's command in a process group of its own and end it when it is stuck:
    `grace` seconds after its Snakemake announced a shutdown it never finishes, or after a
    termination signal; then end whatever processes of the job are left. The command's exit
    status, 1 if it had to be ended after its Snakemake's shutdown. `in_view`: the job runs
    in its read-only view of the code, and a failed job that wrote into it is told how to
    allow that."""
    become_subreaper()
    watch = ShutdownWatch(single_rule)
    # SIGCHLD stays blocked, to be waited for; the others until they can be passed on.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD, *_FORWARDED})
    job = os.posix_spawnp(
        command[0],
        list(command),
        os.environ,
        setpgroup=0,
        setsigmask=(),
        setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),  # ignored by Python, not by the job
    )
    children = Children(job)
    signals = Forwarder(job)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORWARDED)
    stuck = ""
    hung_after_failure = False
    while children.status is None and not stuck:
        signal.sigtimedwait({signal.SIGCHLD}, _POLL_SECONDS)
        children.reap()
        now = time.monotonic()
        watch.read(now)
        if watch.stuck(now, grace):
            hung_after_failure = True
            stuck = (
                f"the job's Snakemake announced its shutdown after a failure {grace:g} s ago "
                "and still waits for something that does not end (such as a pipe() consumer "
                "whose producer failed, or a run: block that called sys.exit)"
            )
        elif signals.since is not None and now - signals.since > grace:
            stuck = f"the job did not end within {grace:g} s of a termination signal"
    watch.read(time.monotonic())
    watch.close()
    left = end_job_processes(job, children)
    if left:
        why = stuck or "the job's command ended, leaving processes running"
        print(f"frozen: {why}; ended: {', '.join(left)}", file=sys.stderr)
    if in_view and watch.read_only and children.status != 0:
        print(WRITE_HINT, file=sys.stderr)
    if children.status is None or hung_after_failure:
        return 1  # as its Snakemake would have, had it ended
    return children.status


WRITE_HINT = (
    "frozen: if the job failed writing into a file of its code ('Read-only file system' or "
    "'Permission denied' above): the code is read-only in a frozen job's view, since it is "
    "the snapshot of submission time. Write outputs elsewhere, or give each job a private, "
    "writable copy of its code with frozen-copy: per-job (--frozen-copy per-job)."
)
