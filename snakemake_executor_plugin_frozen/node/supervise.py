"""`run`: the job's command, run so that it ends, and ends with it every process it started.

It exists (every job, whatever the mode) because the job's Snakemake does not always end,
nor end what it started. When a pipe() group's producer fails, its local executor kills the
group's shells that have started (not their children: a consumer's subshell blocked opening
the FIFO lives on, orphaned), and a consumer that starts a moment later is not killed at all:
it blocks for good opening a FIFO no producer will open, and Snakemake, having logged its
shutdown, waits for it until the job's time limit. When a `run:` block calls sys.exit, the
pool thread that ran it dies and Snakemake 9 waits for ever for the job it ran. SLURM ends
leftover processes only with proctrack/cgroup. So `run` starts the command in a process
group of its own, is the child subreaper of whatever it orphans, and ends every process of
the job (TERM, then KILL):
- when the job is stuck (below); the status is then 1;
- `--grace` seconds after TERM, INT or HUP (which it passes on to the job); the job's status;
- once the command has ended: what it left behind (its status is kept).

What "stuck" is, and why no output of the job can make it so. Both hangs were caught in
/proc (tests/node/test_supervise.py makes both with the real Snakemake):
- sys.exit in a `run:` block: Snakemake has one thread left, its main thread, asleep in a
  futex (the scheduler's semaphore, which only the dead pool thread would have released),
  and no child process; the batch script's shell waits for it (wchan do_wait).
- a failed pipe() group: Snakemake's main thread asleep in a futex (joining its pool), its
  one other thread waiting for the consumer's shell (do_wait), which waits for `cat`, which
  sleeps opening the FIFO (wait_for_partner) that Snakemake has already deleted.
In both, every thread of every process of the job sleeps in a wait that only another process
of the job could end, and none of them can: the job is frozen. `job_is_frozen` is that
condition: every thread of every process of the job sleeps (state S) waiting for a child
(do_wait) or for a FIFO's other end (wait_for_partner; pipe_wait before Linux 5.10), except
the main thread of the job's Snakemake (the program the batch script waits for), which may
sleep in a futex. `run` acts only when that has held at every poll for `--grace` seconds,
after a line of the log began with Snakemake's shutdown line (any job), or, in a job of one
rule, with "Exception in worker" (Python's logger) or the scheduler's "Will exit" line. The
line is a hint (it saves scanning /proc in a healthy job) and proves nothing, since a rule
may print anything; the process state is what decides. No output of a rule can bring it
about, because while any code of a rule runs something of the job is not in those waits: a
`run:` block runs in a thread of Snakemake other than its main one (running, or asleep in
anything but do_wait; when it waits for a child, that child is active or waits too), and a
shell:, script: or wrapper: command is a child process of Snakemake that runs, or sleeps in
a timer, a read, a socket, a lock... none of which counts. Waiting for a child or a FIFO
only counts when what is waited for is itself frozen, down to the leaves. The condition
could hold in a healthy job only if something outside the job were to end one of those
waits (another user's process opening the job's FIFO, a signal); a rule that merely prints
Snakemake's lines, or cats a file holding them, cannot. Where the kernel does not name the
waits (/proc/<pid>/task/<tid>/wchan reads "0"), nothing counts as frozen and a stuck job
runs to its time limit, as it would without `run`.
"""

import ctypes
import os
import signal
import stat
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass

from snakemake_executor_plugin_frozen.node.leases import process_start, stat_fields

# What Snakemake's scheduler logs when, after a failed job or a kill, it starts waiting for
# the jobs it still runs (snakemake/scheduling/job_scheduler.py).
SHUTTING_DOWN = b"Shutting down, this might take some time."
# When a `run:` block raises SystemExit (sys.exit), the thread running it dies (Python logs
# "Exception in worker") or the scheduler logs that it will exit; the job never counts as
# finished and Snakemake 9 waits for ever. A group job's other rules may run on after
# either line, and its idle pool threads keep it from looking frozen: hints for a job of one
# rule only.
WILL_EXIT = b"Will exit after finishing currently running jobs (scheduler)."
WORKER_DIED = b"Exception in worker"
# What a sleeping thread waits in (/proc/<pid>/task/<tid>/wchan, the kernel function): for a
# child to end (wait4), and for a FIFO's other end to be opened (Linux 5.10+; before, that
# wait showed as pipe_wait, as did a read or write blocked on a pipe: as frozen, since the
# other end must then be frozen too when every process of the job is).
CHILD_WAIT = frozenset({"do_wait"})
FIFO_WAIT = frozenset({"wait_for_partner", "fifo_open", "pipe_wait"})
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


@dataclass(frozen=True)
class Thread:
    tid: int
    state: str  # R running, S sleeping, D uninterruptible, T stopped, ... (proc(5))
    wchan: str  # the kernel function it sleeps in; "0" when the kernel does not say


def threads_of(pid: int) -> list[Thread] | None:
    """The threads of process `pid`, None if it is gone (or one of them went meanwhile)."""
    try:
        found = []
        for name in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{name}/stat", "rb") as f:
                state = f.read().rpartition(b")")[2].split()[0].decode()
            with open(f"/proc/{pid}/task/{name}/wchan", "rb") as f:
                wchan = f.read().decode(errors="replace").strip()
            found.append(Thread(int(name), state, wchan))
    except (OSError, IndexError, ValueError):
        return None
    return found


def runs_snakemake(argv: Sequence[str]) -> bool:
    """`python [options] -m snakemake ...` (as the batch script runs it), or Python running
    the `snakemake` script, or that script itself."""
    program = os.path.basename(argv[0]) if argv else ""
    if program == "snakemake":
        return True
    if not program.startswith(("python", "pypy")):
        return False
    words = iter(argv[1:])
    for word in words:
        if word == "-m":
            return next(words, "") == "snakemake"
        if word == "-c":
            return False
        if word in ("-W", "-X"):
            next(words, "")  # the option's value
        elif not word.startswith("-"):
            return os.path.basename(word) == "snakemake"  # the script Python runs
    return False


def job_is_frozen(
    processes: Sequence[Process],
    threads: Mapping[int, Sequence[Thread] | None],
    job: int,
    commands: Mapping[int, Sequence[str]],
) -> bool:
    """Whether no process of the job can go on unless another one does (module docstring):
    every thread of every process in `processes` (the job's, `job` the command's) sleeps
    waiting for a child or for a FIFO's other end, except the main thread of the job's
    Snakemake, which may sleep in a futex. Snakemake is where the chain from `job` through
    processes doing nothing but wait for their one child ends (the batch script's shell
    waits for it), if `commands` shows it runs Snakemake. A thread unknown counts as awake."""
    children: dict[int, list[int]] = {}
    for process in processes:
        children.setdefault(process.parent, []).append(process.pid)
    if job not in {p.pid for p in processes}:
        return False

    def waits_for_child(pid: int) -> bool:
        found = threads.get(pid) or ()
        return len(found) == 1 and found[0].state == "S" and found[0].wchan in CHILD_WAIT

    top = job
    while len(children.get(top, ())) == 1 and waits_for_child(top):
        top = children[top][0]
    snakemake = top if runs_snakemake(commands.get(top, ())) else None
    for process in processes:
        found = threads.get(process.pid)
        if not found:
            return False
        for thread in found:
            if thread.state != "S":
                return False
            if thread.wchan in FIFO_WAIT:
                continue
            if thread.wchan in CHILD_WAIT and children.get(process.pid):
                continue
            if process.pid == snakemake and thread.tid == snakemake and "futex" in thread.wchan:
                continue  # Snakemake's scheduler or pool join, its job threads all frozen
            return False
    return True


def argv_of(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [w.decode(errors="replace") for w in f.read().rstrip(b"\0").split(b"\0")]
    except OSError:
        return []


def descendants(root: int) -> list[Process] | None:
    """The live processes below `root`, found through /proc/<pid>/task/<tid>/children (as
    `root` is the subreaper, every process of the job): a few reads per process of the job,
    not one per process of the node. None where the kernel has no such file."""
    found: list[Process] = []
    todo = [root]
    while todo:
        pid = todo.pop()
        try:
            for name in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{name}/children", "rb") as f:
                    for child in map(int, f.read().split()):
                        fields = stat_fields(child)
                        if fields and fields[0] != "Z":
                            found.append(Process(child, int(fields[1]), int(fields[2]), fields[19]))
                            todo.append(child)
        except FileNotFoundError:
            if pid == root:
                return None  # no children files (a kernel without CONFIG_PROC_CHILDREN)
        except OSError:
            continue  # it went meanwhile
    return found


def job_frozen_now(job: int) -> bool:
    """`job_is_frozen` for the job's processes as /proc shows them now."""
    processes = descendants(os.getpid())
    if processes is None:
        processes = job_processes(live_processes(), os.getpid(), job)
    threads = {p.pid: threads_of(p.pid) for p in processes}
    return job_is_frozen(processes, threads, job, {p.pid: argv_of(p.pid) for p in processes})


class ShutdownWatch:
    """Follows the job's log, this process's stderr when that is a file (as in a SLURM job),
    from where the log ended when the job started, for a line that begins with one of
    Snakemake's shutdown lines; from then on looks at the job's processes, and calls the job
    stuck once they have been frozen (`job_is_frozen`) for `grace` seconds."""

    def __init__(self, single_rule: bool = False) -> None:
        self.log: int | None = None
        self.tail = b"\n"  # the log's end when the job started counts as a line's start
        markers = (SHUTTING_DOWN, WILL_EXIT, WORKER_DIED) if single_rule else (SHUTTING_DOWN,)
        self.lines = tuple(b"\n" + marker for marker in markers)
        self.hinted = False  # a line began with a marker
        self.since: float | None = None  # when the job was first seen frozen, since then
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

    def read(self) -> None:
        while self.log is not None and (chunk := os.read(self.log, 1 << 20)):
            text = self.tail + chunk
            self.hinted = self.hinted or any(line in text for line in self.lines)
            self.read_only = self.read_only or any(m in text for m in READ_ONLY)
            self.tail = text[-len(b"\n" + WILL_EXIT) :]

    def observe(self, now: float, frozen: Callable[[], bool]) -> None:
        """After the hint, whether the job is frozen now (`frozen` scans /proc); before
        it, nothing is scanned."""
        if not self.hinted or not frozen():
            self.since = None
        elif self.since is None:
            self.since = now

    def stuck(self, now: float, grace: float) -> bool:
        return self.since is not None and now - self.since > grace

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
    once, after its Snakemake announced a shutdown, every process of the job has been frozen
    for `grace` seconds (`ShutdownWatch`), or `grace` seconds after a termination signal;
    then end whatever processes of the job are left. The command's exit status, 1 if it had
    to be ended as frozen. `in_view`: the job runs in its read-only view of the code, and a
    failed job that wrote into it is told how to allow that."""
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
        watch.read()
        watch.observe(now, lambda: job_frozen_now(job))
        if watch.stuck(now, grace):
            hung_after_failure = True
            stuck = (
                f"the job's Snakemake announced its shutdown after a failure {grace:g} s ago "
                "and still waits for something that does not end: every process of the job "
                "waits only for another one (such as a pipe() consumer whose producer failed, "
                "or a run: block that called sys.exit)"
            )
        elif signals.since is not None and now - signals.since > grace:
            stuck = f"the job did not end within {grace:g} s of a termination signal"
    watch.read()
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
