"""One workflow on the local SLURM cluster: ``--executor frozen`` against the stock plugin.

    .venv/bin/python benchmarks/slurm_bench.py [--runs 3] [--n 20] [--jobs 20]
    .venv/bin/python benchmarks/slurm_bench.py --scale N [--variants frozen stock ...]

The workflow (``benchmarks/workflow``) has N independent short jobs (a ``script:`` that sums
a few numbers, imported helper module) and a local ``all`` rule. Each run copies it to a
fresh temporary folder, makes that a git repository (as a real workflow is: the frozen
plugin then selects its code through git) and runs Snakemake there, once with
``--executor slurm`` from ``benchmarks/.venv-stock`` (``snakemake-executor-plugin-slurm``
2.x, which ``benchmarks/run`` installs) and once with ``--executor frozen`` from the
project venv. Medians of ``--runs`` runs each.

How the comparison is kept fair:

- Same Python (the stock venv is made from the project venv's base interpreter), same
  Snakemake version, same workflow, same resources (``threads: 1``, ``mem_mb=100``,
  ``runtime=5`` in the rule, ``--default-resources slurm_partition=debug``), same
  ``--jobs``, same ``--latency-wait`` (Snakemake's default), a fresh copy for every run (no
  ``.snakemake`` state, no stored snapshot: the frozen plugin always packs cold).
- Status checks: the stock plugin waits ``--slurm-init-seconds-before-status-checks``
  (default 40 s) before its first status query and again after every query that saw a job
  finish, and adds 10 s after every query that saw none (up to 180 s). Ours starts at 2 s
  and grows by 1.5x up to ``--seconds-between-status-checks``. Both get
  ``--seconds-between-status-checks 10`` (Snakemake's default) and the stock plugin
  ``--slurm-init-seconds-before-status-checks 2``, our first interval. Its +10 s back-off
  is its design and stays.
- Accounts: the cluster enforces none (``AccountingStorageEnforce=none``) and neither run
  names one. ``--slurm-no-account`` is passed to the stock plugin; 2.8.0 accepts but
  ignores it and instead tries at its first submissions to guess an account (a ``sacct``
  call that fails, as the plugin hands ``| tail -1`` to ``sacct`` as arguments), then
  submits without one, as we do.
- Runs alternate (stock, frozen, stock, ...) and each starts only when the queue is empty;
  jobs of others that overlapped a run are counted and printed, as they skew it.

What is measured, from Snakemake's log, each line time-stamped as it arrives:

- total wall time of the ``snakemake`` process;
- time from its start until the first and until the last job was submitted;
- plugin start to first submission: from the executor's first log line (``SLURM run ID``,
  ``frozen: mode``) to the first submission, i.e. the plugin's own start-up;
- the frozen plugin's snapshot: from ``frozen: mode`` to ``frozen: snapshot``;
- the mean time a job spent on its node (``sacct`` ``ElapsedRaw``, 1 s resolution): ours
  runs the node helper (verify, extract) and one Snakemake; the stock plugin runs Snakemake
  with its ``slurm-jobstep`` executor, which starts the job with ``srun`` in a second one;
- the span on the cluster, from the first job's start to the last job's end (``sacct``),
  and from that end to the end of the Snakemake process: mostly the wait for the next
  status check, where the two plugins' polling differs;
- our node-side ``enter`` (verify and extract the snapshot), as each job log reports it.

Status calls and end-noticed latency (both modes): Snakemake runs with a PATH whose first
folder holds a wrapper per ``sacct``, ``squeue`` and ``scontrol``; each appends its time,
its name and ``$SLURM_JOB_ID`` to a log, then ``exec``s the real command. Calls with no
``SLURM_JOB_ID`` are the plugin's own on the submit host (calls from inside jobs, which
inherit the PATH, are counted apart). From them: calls per minute of wall time and the
shortest gap between two calls. End-noticed latency per job: when Snakemake learned of the
job's end, minus sacct's ``End``; for ours the ``ended`` record of the run's journal
(``.snakemake/frozen/journal.jsonl``, ISO UTC with ms); for the stock plugin, which keeps
no journal, the moment Snakemake printed ``Finished jobid: N`` (the line as it arrived on
the pipe, ms resolution; N mapped to the SLURM job by the plugin's ``Job N has been
submitted with SLURM jobid M``): the scheduler prints that line right after the executor
reported the job done and its outputs were found, so it is when Snakemake acted on the end.
For ours the same ``Finished jobid`` measure is noted too, for a like-for-like comparison.
sacct's End has whole seconds (truncated), so a latency is up to 1 s above the true one.

Scale mode (``--scale N``): the same workflow with N jobs, all submitted at once
(``--jobs N``), once per variant: ours and the stock plugin, each without and with job
arrays (``--frozen-array-jobs all``, ``--slurm-array-jobs all``), every run with
``--verbose``, as the stock plugin logs its count of status queries at debug level only.
Per run: wall time; sbatch calls (``sacct -X --name <run id>``: a plain job or a whole
array is one); status queries as each plugin counts them at the end of its log (ours:
``frozen: N status queries ...``), per minute of wall time; peak RSS of the Snakemake
process itself (its VmHWM, sampled every 0.5 s); the busy span from the first job's start
to the last one's end (``sacct``) and wall / busy, what the run costs beyond the
cluster's work.

On this machine the cluster's 8 job slots (2 nodes x 4 CPUs) share the real cores
(``nproc``), so a job's CPU time, above all Snakemake's start-up, lengthens every job
running beside it: the job time on the node weighs more here than on a cluster where
each slot has a core of its own.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from snapshot_bench import git

HERE = Path(__file__).resolve().parent
WORKFLOW = HERE / "workflow"
STOCK_VENV = HERE / ".venv-stock"
PARTITION = "debug"
PLUGINS = ("stock", "frozen")

_SUBMITTED = {
    "stock": re.compile(r"^Job \d+ has been submitted with SLURM jobid \d+"),
    "frozen": re.compile(r"^Job \d+ submitted as \d+"),
}
_PLUGIN_START = {
    "stock": re.compile(r"^SLURM run ID: (\S+)"),
    "frozen": re.compile(r"^frozen: mode \S+, submit via \S+, run ([0-9a-f-]+),"),
}
_SNAPSHOT_TAKEN = re.compile(r"^frozen: snapshot [0-9a-f]+ of ")
_ENTER = re.compile(r"^frozen: snapshot \S+ from .* (?:extracted|reused) at .* \(([0-9.]+) s\)$")


@dataclass
class Run:
    plugin: str
    error: str = ""
    wall: float | None = None
    first_submit: float | None = None
    all_submitted: float | None = None
    plugin_to_first: float | None = None
    snapshot: float | None = None
    job_on_node: float | None = None
    cluster_span: float | None = None
    end_lag: float | None = None
    enter: float | None = None
    foreign_jobs: int = 0
    notes: list[str] = field(default_factory=list)
    status: StatusCalls | None = None

    @property
    def ok(self) -> bool:
        return not self.error


@dataclass
class Settings:
    runs: int = 3
    n: int = 20
    jobs: int = 20
    status_seconds: int = 10
    init_seconds: int = 2
    timeout: float = 180.0
    stock_python: Path = STOCK_VENV / "bin" / "python"
    frozen_python: Path = Path(sys.executable)


def stock_problem(settings: Settings) -> str:
    """Why the stock plugin cannot run here, or '' when it can."""
    if not settings.stock_python.exists():
        return f"{settings.stock_python} is missing (benchmarks/run creates it)"
    check = subprocess.run(
        [settings.stock_python, "-c", "import snakemake_executor_plugin_slurm"],
        capture_output=True,
        text=True,
    )
    if check.returncode:
        return "snakemake-executor-plugin-slurm does not import: " + _last_line(check.stderr)
    return ""


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def _command(plugin: str, settings: Settings, extra: Sequence[str] = ()) -> list[str]:
    common = [
        "--jobs", str(settings.jobs),
        "--default-resources", f"slurm_partition={PARTITION}",
        "--seconds-between-status-checks", str(settings.status_seconds),
        *extra,
    ]  # fmt: skip
    config = ["--config", f"parts={settings.n}"]  # last: --config takes every word after it
    if plugin == "stock":
        return [
            str(settings.stock_python), "-m", "snakemake", "--executor", "slurm", *common,
            "--slurm-init-seconds-before-status-checks", str(settings.init_seconds),
            "--slurm-no-account", *config,
        ]  # fmt: skip
    return [
        str(settings.frozen_python), "-m", "snakemake", "--executor", "frozen", *common, *config
    ]  # fmt: skip


def _environment(path: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_JOB", "SNAKEMAKE_"))}
    env["PYTHONUNBUFFERED"] = "1"
    if path is not None:
        env["PATH"] = path
    return env


# -- status calls and end-noticed latency ---------------------------------------------------

COUNTED = ("sacct", "squeue", "scontrol")


def counting_path(folder: Path) -> tuple[str, Path]:
    """A PATH whose sacct, squeue and scontrol log each call (time, name, the job it ran in,
    if any) to the returned log file, then exec the real command."""
    wrappers = folder / "status-wrappers"
    wrappers.mkdir()
    calls = folder / "status-calls.log"
    calls.touch()
    for name in COUNTED:
        real = shutil.which(name)
        if real is None:
            continue
        script = wrappers / name
        script.write_text(
            "#!/bin/bash\n"
            f'printf "%s {name} %s\\n" "$(date +%s.%N)" "${{SLURM_JOB_ID:-}}" >> "{calls}"\n'
            f'exec {real} "$@"\n'
        )
        script.chmod(0o755)
    return f"{wrappers}:{os.environ.get('PATH', '')}", calls


@dataclass
class StatusCalls:
    calls: int  # the submit host's (no SLURM_JOB_ID)
    by_command: dict[str, int]
    in_jobs: int  # calls made inside jobs
    per_minute: float | None
    min_gap: float | None
    latency_median: float | None
    latency_max: float | None
    finished_median: float | None = None  # ours: the "Finished jobid" measure, for comparison
    finished_max: float | None = None


def _read_calls(log: Path) -> tuple[list[tuple[float, str]], int]:
    own, in_jobs = [], 0
    for line in log.read_text().splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        if len(parts) > 2:
            in_jobs += 1
        else:
            own.append((float(parts[0]), parts[1]))
    return sorted(own), in_jobs


_FINISHED = re.compile(r"^Finished jobid: (\d+) ")
_SUBMITTED_ID = {
    "stock": re.compile(r"^Job (\d+) has been submitted with SLURM jobid (\d+)"),
    "frozen": re.compile(r"^Job (\d+) submitted as (\d+)"),
}


def _finished_times(plugin: str, streamed: Streamed) -> dict[str, datetime]:
    """SLURM job id -> when Snakemake printed "Finished jobid" for it (UTC)."""
    slurm_of: dict[str, str] = {}
    finished: dict[str, datetime] = {}
    for t, text in streamed.lines:
        if m := _SUBMITTED_ID[plugin].match(text):
            slurm_of[m.group(1)] = m.group(2)
        elif (m := _FINISHED.match(text)) and m.group(1) in slurm_of:
            finished[slurm_of[m.group(1)]] = datetime.fromtimestamp(streamed.start + t, UTC)
    return finished


def _journal_ended(workdir: Path) -> dict[str, datetime]:
    """SLURM job id (array tasks "<array>_<task>") -> the journal's ``ended`` time (UTC)."""
    ended: dict[str, datetime] = {}
    journal = workdir / ".snakemake" / "frozen" / "journal.jsonl"
    if not journal.exists():
        return ended
    for line in journal.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == "ended" and record.get("slurm_id"):
            when = datetime.fromisoformat(str(record["time"]).replace("Z", "+00:00"))
            ended[str(record["slurm_id"])] = when
    return ended


def _latencies(noticed: dict[str, datetime], jobs: list[JobTimes]) -> list[float]:
    ends = {job.job_id: job.end for job in jobs}
    return [(when - ends[job]).total_seconds() for job, when in noticed.items() if job in ends]


def status_calls(
    plugin: str, log: Path, wall: float, streamed: Streamed, workdir: Path, jobs: list[JobTimes]
) -> StatusCalls:
    own, in_jobs = _read_calls(log)
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(own)]
    by_command = {name: sum(1 for _, n in own if n == name) for name in COUNTED}
    finished = _latencies(_finished_times(plugin, streamed), jobs)
    primary = _latencies(_journal_ended(workdir), jobs) if plugin == "frozen" else finished
    result = StatusCalls(
        calls=len(own),
        by_command=by_command,
        in_jobs=in_jobs,
        per_minute=len(own) / wall * 60 if wall else None,
        min_gap=min(gaps) if gaps else None,
        latency_median=statistics.median(primary) if primary else None,
        latency_max=max(primary) if primary else None,
    )
    if plugin == "frozen" and finished:
        result.finished_median = statistics.median(finished)
        result.finished_max = max(finished)
    return result


def fresh_copy(parent: Path) -> Path:
    target = parent / "workflow"
    shutil.copytree(WORKFLOW, target, ignore=shutil.ignore_patterns("results", ".snakemake"))
    git(target, "init", "-q")
    git(target, "add", "-A")
    git(target, "commit", "-q", "-m", "workflow")
    return target


def queued_jobs() -> list[str]:
    result = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True)
    return result.stdout.split()


def wait_for_empty_queue(limit: float = 30.0) -> float:
    """Seconds waited until no job is queued (at most ``limit``)."""
    start = time.perf_counter()
    while queued_jobs() and time.perf_counter() - start < limit:
        time.sleep(1)
    return time.perf_counter() - start


def _sacct(*args: str) -> list[list[str]]:
    result = subprocess.run(["sacct", "-n", "-P", *args], capture_output=True, text=True)
    return [line.split("|") for line in result.stdout.splitlines() if line.strip()]


class JobTimes(NamedTuple):
    job_id: str  # "123", or "123_7" for a task of array 123
    elapsed: int  # seconds
    start: datetime
    end: datetime


def _job_times(run_id: str, expected: int) -> list[JobTimes]:
    """The run's completed jobs (array tasks one by one), from sacct."""
    # slurmdbd may record the last jobs a moment after Snakemake has seen them end.
    for _ in range(10):
        rows = _sacct("-X", "--name", run_id, "-o", "JobID,ElapsedRaw,Start,End,State")
        done = []
        for row in rows:
            if len(row) == 5 and row[4] == "COMPLETED":
                began, ended = _sacct_time(row[2]), _sacct_time(row[3])
                if began is not None and ended is not None:
                    done.append(JobTimes(row[0], int(row[1]), began, ended))
        if len(done) >= expected:
            break
        time.sleep(1)
    return done


def _foreign_jobs(run_id: str, start: datetime, end: datetime) -> int:
    """Jobs not of this run that were running at some point between start and end."""
    fmt = "%Y-%m-%dT%H:%M:%S"
    rows = _sacct(
        "-X", "-a", "-S", start.strftime(fmt), "-E", end.strftime(fmt),
        "-o", "JobName,Start,End",
    )  # fmt: skip
    count = 0
    for row in rows:
        if len(row) != 3 or row[0] == run_id:
            continue
        began, ended = (_sacct_time(value) for value in row[1:])
        if began is not None and began < end and (ended is None or ended > start):
            count += 1
    return count


def _sacct_time(value: str) -> datetime | None:
    """sacct's time stamp (the controller's local time; this machine is the controller), as
    an aware datetime."""
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S").astimezone()
    except ValueError:  # Unknown, None: not started or not ended
        return None


@dataclass
class Streamed:
    code: int
    lines: list[tuple[float, str]]  # every output line, with the seconds since start
    max_rss_mb: float  # the process's own peak resident size (PeakRss)
    start: float = 0.0  # time.time() at the start


class PeakRss:
    """The peak resident size of a running process: its VmHWM, sampled every ``interval``.

    Not ru_maxrss from wait4: Linux carries a parent's peak over fork and exec into the
    child's, so a child of a large benchmark process would report the parent's size.
    VmHWM only grows; the samples miss at most the last ``interval`` before the exit."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self._status = Path(f"/proc/{pid}/status")
        self._interval = interval
        self._kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, daemon=True)
        self._thread.start()

    def _sample_until_stopped(self) -> None:
        while not self._stop.wait(self._interval):
            self.sample()

    def sample(self) -> None:
        try:
            text = self._status.read_text()
        except OSError:  # ended
            return
        for line in text.splitlines():
            if line.startswith("VmHWM:"):  # absent once the process is a zombie
                self._kib = max(self._kib, int(line.split()[1]))

    def stop(self) -> float:
        """Stop sampling (call before the process is reaped) and return the peak in MB."""
        self._stop.set()
        self._thread.join()
        self.sample()
        return self._kib / 1024


def _stream(command: list[str], cwd: Path, timeout: float, path: str | None = None) -> Streamed:
    """Run command (with ``path`` as its PATH, if given); every output line with the seconds
    since start at which it arrived."""
    wall_start = time.time()
    start = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=_environment(path),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    timer = threading.Timer(timeout, process.kill)
    timer.start()
    peak = PeakRss(process.pid)
    lines: list[tuple[float, str]] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append((time.perf_counter() - start, line.rstrip("\n")))
    finally:
        max_rss_mb = peak.stop()
        code = process.wait()
        timer.cancel()
    lines.append((time.perf_counter() - start, ""))  # the end, as the last time stamp
    return Streamed(code, lines, max_rss_mb, wall_start)


def run_once(plugin: str, settings: Settings) -> Run:
    run = Run(plugin)
    waited = wait_for_empty_queue()
    if waited >= 1:
        run.notes.append(f"waited {waited:.0f} s for an empty queue")
    with tempfile.TemporaryDirectory(prefix=f"slurm-bench-{plugin}-") as tmp:
        workdir = fresh_copy(Path(tmp))
        path, calls_log = counting_path(Path(tmp))
        started = datetime.now().astimezone()
        streamed = _stream(_command(plugin, settings), workdir, settings.timeout, path)
        code, lines = streamed.code, streamed.lines
        ended = datetime.now().astimezone()
        run.wall = lines[-1][0]
        start_line = next(((t, m) for t, s in lines if (m := _PLUGIN_START[plugin].match(s))), None)
        run_id = start_line[1].group(1) if start_line else ""
        submits = [t for t, text in lines if _SUBMITTED[plugin].match(text)]
        if code != 0 or len(submits) != settings.n:
            if run_id:  # a run killed on timeout leaves its jobs behind
                subprocess.run(["scancel", "--name", run_id], capture_output=True)
            run.error = f"{len(submits)} of {settings.n} jobs submitted, {_failure(code, lines)}"
            print(f"{plugin} run failed; its output ends with:", file=sys.stderr)
            print("\n".join(s for _, s in lines[-40:]), file=sys.stderr)
            return run
        run.first_submit, run.all_submitted = submits[0], submits[-1]
        if start_line:
            run.plugin_to_first = submits[0] - start_line[0]
        if plugin == "frozen":
            taken = next((t for t, s in lines if _SNAPSHOT_TAKEN.match(s)), None)
            if start_line and taken is not None:
                run.snapshot = taken - start_line[0]
            enters = []
            for log in (workdir / ".snakemake" / "frozen_logs").rglob("*.log"):
                with log.open(errors="replace") as handle:
                    match = _ENTER.match(handle.readline().strip())
                if match:
                    enters.append(float(match.group(1)))
            if enters:
                run.enter = statistics.mean(enters)
        outputs = list((workdir / "results").glob("part*.txt"))
        hosts = {p.read_text().split("\t")[1] for p in outputs}
        if len(outputs) != settings.n:
            run.error = f"only {len(outputs)} of {settings.n} outputs written"
            return run
        run.notes.append(f"jobs ran on {', '.join(sorted(hosts))}")
        times = _job_times(run_id, settings.n) if run_id else []
        run.status = status_calls(plugin, calls_log, run.wall, streamed, workdir, times)
    if run_id:
        if times:
            run.job_on_node = statistics.mean(job.elapsed for job in times)
            first_start = min(job.start for job in times)
            last_end = max(job.end for job in times)
            run.cluster_span = (last_end - first_start).total_seconds()
            # sacct's seconds are truncated: the job ended within the second after End.
            run.end_lag = max(0.0, (ended - last_end).total_seconds() - 0.5)
        run.foreign_jobs = _foreign_jobs(run_id, started, ended)
    return run


def run_all(settings: Settings, progress=print) -> dict[str, list[Run]]:
    """Alternate the plugins, ``settings.runs`` times each; the stock plugin is skipped (and
    its runs carry the reason) when it cannot run here."""
    problem = stock_problem(settings)
    runs: dict[str, list[Run]] = {plugin: [] for plugin in PLUGINS}
    for i in range(settings.runs):
        for plugin in PLUGINS:
            if plugin == "stock" and problem:
                runs[plugin].append(Run(plugin, error=problem))
                continue
            run = run_once(plugin, settings)
            runs[plugin].append(run)
            state = f"{run.wall:.1f} s" if run.ok else f"FAILED: {run.error}"
            progress(f"slurm bench: run {i + 1}/{settings.runs} {plugin}: {state}")
            if plugin == "stock" and not run.ok and i == 0:
                # The first stock run failing is taken to be final: say why, don't retry.
                problem = run.error
    return runs


def _median(runs: list[Run], name: str) -> float | None:
    if name.startswith("status."):  # a field of the runs' StatusCalls
        field_name = name.removeprefix("status.")
        values = [
            getattr(r.status, field_name)
            for r in runs
            if r.ok and r.status is not None and getattr(r.status, field_name) is not None
        ]
    else:
        values = [getattr(r, name) for r in runs if r.ok and getattr(r, name) is not None]
    return statistics.median(values) if values else None


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def table(runs: dict[str, list[Run]], settings: Settings) -> str:
    stock, frozen = runs["stock"], runs["frozen"]
    stock_ok = [r for r in stock if r.ok]
    stock_error = "" if stock_ok else (stock[0].error if stock else "not run")
    rows = [
        ("total wall time", "wall"),
        ("start → first job submitted", "first_submit"),
        (f"start → all {settings.n} jobs submitted", "all_submitted"),
        ("plugin start → first job submitted", "plugin_to_first"),
        ("mean job time on its node (sacct)", "job_on_node"),
        ("first job start → last job end (sacct)", "cluster_span"),
        ("last job end → Snakemake done (status-check lag, `all`, exit)", "end_lag"),
        ("status calls per minute (sacct/squeue/scontrol, submit host)", "status.per_minute"),
        ("shortest gap between two status calls", "status.min_gap"),
        ("end noticed - sacct End, median over jobs", "status.latency_median"),
        ("end noticed - sacct End, max over jobs", "status.latency_max"),
    ]
    out = [
        "| measure | stock `slurm` s | `frozen` s | frozen / stock |",
        "|---|---:|---:|---:|",
    ]
    for label, name in rows:
        ours = _median(frozen, name)
        theirs = _median(stock, name)
        if stock_error:
            theirs_cell, ratio = "did not run (below)", "—"
        else:
            theirs_cell = _seconds(theirs)
            # theirs shown as 0.00 (the stock plugin's shortest gap): no ratio
            ratio = (
                f"{ours / theirs:.2f}" if ours is not None and theirs and theirs >= 0.005 else "—"
            )
        out.append(f"| {label} | {theirs_cell} | {_seconds(ours)} | {ratio} |")
    wall = _median(frozen, "wall")
    for label, name, share in (
        ("frozen only: snapshot at start", "snapshot", "of its wall time"),
        ("frozen only: node-side enter per job (mean)", "enter", "of its job time"),
    ):
        ours = _median(frozen, name)
        whole = wall if name == "snapshot" else _median(frozen, "job_on_node")
        note = f"n/a ({100 * ours / whole:.1f} % {share})" if ours is not None and whole else "—"
        out.append(f"| {label} | n/a | {_seconds(ours)} | {note} |")
    lines = ["\n".join(out), ""]
    for plugin in PLUGINS:
        done = [r for r in runs[plugin] if r.ok and r.status is not None]
        if not done:
            continue
        counts = ", ".join(
            f"{r.status.calls} ({', '.join(f'{k} {v}' for k, v in r.status.by_command.items())})"
            for r in done
        )
        in_jobs = ", ".join(str(r.status.in_jobs) for r in done)
        extra = ""
        if plugin == "frozen":
            fin = [
                f"{_seconds(r.status.finished_median)} / {_seconds(r.status.finished_max)}"
                for r in done
            ]
            extra = f'; its "Finished jobid" line - sacct End, median / max s: {", ".join(fin)}'
        lines.append(
            f"- {plugin} status calls per run on the submit host: {counts}; "
            f"inside its jobs: {in_jobs}{extra}"
        )
    lines.append(
        "- end noticed: ours from the run journal's `ended` records, the stock plugin's from "
        "Snakemake's \"Finished jobid\" line (the stock plugin keeps no journal); sacct's End "
        "is truncated to the second, so each latency is up to 1 s above the true one"
    )
    for plugin in PLUGINS:
        done = [r for r in runs[plugin] if r.ok]
        walls = ", ".join(f"{r.wall:.1f}" for r in done) or "none"
        foreign = sum(r.foreign_jobs for r in done)
        notes = sorted({note for r in done for note in r.notes})
        failed = [r.error for r in runs[plugin] if not r.ok]
        lines.append(
            f"- {plugin}: {len(done)} of {len(runs[plugin])} runs ok, wall s: {walls}; "
            f"other jobs on the cluster during the runs: {foreign}"
            + (f"; {'; '.join(notes)}" if notes else "")
            + (f"; failed: {failed[0]}" if failed and done else "")
        )
    if stock_error:
        lines.append(f"- the stock plugin did not run: {stock_error}")
    lines.append(
        f"- both: {settings.n} jobs, --jobs {settings.jobs}, threads 1, mem_mb 100, runtime 5, "
        f"partition {PARTITION}, --seconds-between-status-checks {settings.status_seconds}; "
        f"stock also --slurm-init-seconds-before-status-checks {settings.init_seconds} "
        "--slurm-no-account"
    )
    return "\n".join(lines)


# -- scale mode: N trivial jobs, with and without job arrays --------------------------------


@dataclass(frozen=True)
class Variant:
    name: str
    plugin: str
    args: tuple[str, ...] = ()

    @property
    def arrays(self) -> bool:
        return bool(self.args)


SCALE_VARIANTS = (
    Variant("frozen", "frozen"),
    Variant("frozen-arrays", "frozen", ("--frozen-array-jobs", "all")),
    Variant("stock", "stock"),
    Variant("stock-arrays", "stock", ("--slurm-array-jobs", "all", "--slurm-array-limit", "50")),
)
# Why the stock arrays go in chunks of 50: the stock plugin (2.8.0) passes the commands of an
# array's other tasks as one --wrap argument; past Linux's 128 kB per argument (about 80 of
# this workflow's tasks) it falls back to a batch script on stdin that puts the option on a
# line of its own, so every task runs the array's first job and then fails on
# "--slurm-jobstep-array-execs: not found" (the scale run's arrays failed at 100 jobs so).
STOCK_ARRAY_NOTE = (
    "- stock-arrays: --slurm-array-limit 50, because the stock plugin (2.8.0) cannot submit "
    "larger arrays of this workflow: past about 80 tasks the commands of the other tasks "
    "exceed Linux's 128 kB per argument in --wrap, and its fallback (a batch script on "
    "stdin) puts --slurm-jobstep-array-execs on a line of its own, so every task runs the "
    'array\'s first job (missing outputs; "--slurm-jobstep-array-execs: not found")'
)
# The plugins' own count of status queries, logged at the end: ours at info level, the
# stock plugin's at debug level (so every scale run gets --verbose).
_STATUS_QUERIES = {
    "frozen": re.compile(r"^frozen: (\d+) status quer(?:y|ies)\b"),
    "stock": re.compile(r"Status query timing summary at shutdown: calls=(\d+)"),
}


@dataclass
class ScaleRun:
    variant: Variant
    error: str = ""
    wall: float | None = None
    sbatch_calls: int | None = None
    status_queries: int | None = None
    max_rss_mb: float | None = None
    busy_span: float | None = None
    foreign_jobs: int = 0
    status: StatusCalls | None = None

    @property
    def ok(self) -> bool:
        return not self.error


def scale_timeout(n: int) -> float:
    """Generous: the 8 slots of this machine finish about 2 trivial jobs a second."""
    return 600.0 + 3.0 * n


def _failure(code: int, lines: list[tuple[float, str]]) -> str:
    """The exit code and the most telling line: the last job error's message, else the
    last line naming an error with more than a heading ("WorkflowError:"), else the last."""
    texts = [s.strip() for _, s in lines if s.strip()]
    messages = [t.removeprefix("message: ") for t in texts if t.startswith("message: ")]
    errors = [t for t in texts if "rror" in t and not t.endswith(":")]
    return f"exit {code}: {(messages or errors or texts or ['(no output)'])[-1]}"[:300]


def _sbatch_calls(jobs: list[JobTimes]) -> int:
    """One per plain job, one per array (its tasks are "<array>_<task>")."""
    return len({job.job_id.split("_")[0] for job in jobs})


def run_scale_once(variant: Variant, settings: Settings) -> ScaleRun:
    """One run of N jobs, all submitted at once (--jobs N)."""
    run = ScaleRun(variant)
    wait_for_empty_queue()
    command = _command(variant.plugin, settings, (*variant.args, "--verbose"))
    with tempfile.TemporaryDirectory(prefix=f"slurm-scale-{variant.plugin}-") as tmp:
        workdir = fresh_copy(Path(tmp))
        path, calls_log = counting_path(Path(tmp))
        started = datetime.now().astimezone()
        streamed = _stream(command, workdir, scale_timeout(settings.n), path)
        ended = datetime.now().astimezone()
        lines = streamed.lines
        start_line = next(
            (m for _, s in lines if (m := _PLUGIN_START[variant.plugin].match(s))), None
        )
        run_id = start_line.group(1) if start_line else ""
        outputs = len(list((workdir / "results").glob("part*.txt")))
        jobs = _job_times(run_id, settings.n) if run_id and streamed.code == 0 else []
        status = status_calls(variant.plugin, calls_log, lines[-1][0], streamed, workdir, jobs)
    if streamed.code != 0 or outputs != settings.n:
        if run_id:  # a run killed on timeout leaves its jobs behind
            subprocess.run(["scancel", "--name", run_id], capture_output=True)
        run.error = f"{outputs} of {settings.n} outputs, {_failure(streamed.code, lines)}"
        print(f"{variant.name} run failed; its output ends with:", file=sys.stderr)
        print("\n".join(s for _, s in lines[-40:]), file=sys.stderr)
        return run
    run.wall, run.max_rss_mb = lines[-1][0], streamed.max_rss_mb
    counted = [m for _, s in lines if (m := _STATUS_QUERIES[variant.plugin].search(s))]
    if counted:
        run.status_queries = int(counted[-1].group(1))
    run.status = status
    if len(jobs) != settings.n:
        run.error = f"sacct shows {len(jobs)} of {settings.n} jobs of run {run_id!r} completed"
        return run
    run.sbatch_calls = _sbatch_calls(jobs)
    run.busy_span = (max(j.end for j in jobs) - min(j.start for j in jobs)).total_seconds()
    run.foreign_jobs = _foreign_jobs(run_id, started, ended)
    return run


def run_scale(settings: Settings, variants: Sequence[Variant], progress=print) -> list[ScaleRun]:
    """One run per variant; the stock variants are skipped (with the reason) when the stock
    plugin cannot run here."""
    problem = stock_problem(settings)
    runs = []
    for variant in variants:
        if variant.plugin == "stock" and problem:
            runs.append(ScaleRun(variant, error=problem))
            continue
        run = run_scale_once(variant, settings)
        runs.append(run)
        state = f"{run.wall:.1f} s" if run.ok else f"FAILED: {run.error}"
        progress(f"scale bench: {variant.name}, {settings.n} jobs: {state}")
        # A run of 1,000 jobs takes up to an hour: its row is kept even if a later one is cut.
        progress(scale_table([run], settings))
    return runs


def _cell(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _status_cells(status: StatusCalls | None) -> str:
    if status is None:
        return " | | | | "
    return " | ".join(
        [
            str(status.calls),
            _cell(status.per_minute),
            _cell(status.min_gap, 2),
            _cell(status.latency_median, 2),
            _cell(status.latency_max, 2),
        ]
    )


def scale_table(runs: list[ScaleRun], settings: Settings) -> str:
    out = [
        "| variant | wall s | sbatch calls | status queries | per minute | peak RSS MB "
        "| busy span s | wall / busy | sacct/squeue/scontrol calls | calls / min "
        "| min gap s | end-noticed median s | end-noticed max s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    notes = []
    for run in runs:
        if not run.ok:
            out.append(f"| {run.variant.name} | failed (below) | | | | | | | | | | | |")
            notes.append(f"- {run.variant.name}: {run.error}")
            continue
        assert run.wall is not None and run.busy_span is not None
        per_minute = None if run.status_queries is None else run.status_queries / run.wall * 60
        ratio = run.wall / run.busy_span if run.busy_span else None
        out.append(
            f"| {run.variant.name} | {run.wall:.1f} | {run.sbatch_calls} "
            f"| {'' if run.status_queries is None else run.status_queries} "
            f"| {_cell(per_minute)} | {_cell(run.max_rss_mb, 0)} | {run.busy_span:.0f} "
            f"| {_cell(ratio, 2)} | {_status_cells(run.status)} |"
        )
        if run.status is not None:
            by_command = ", ".join(f"{k} {v}" for k, v in run.status.by_command.items())
            notes.append(
                f"- {run.variant.name}: status calls on the submit host: {by_command}; "
                f"from inside its jobs: {run.status.in_jobs}"
            )
        if run.status is not None and run.status.finished_median is not None:
            notes.append(
                f'- {run.variant.name}: "Finished jobid" line - sacct End, median '
                f"{run.status.finished_median:.2f} s, max {run.status.finished_max:.2f} s"
            )
        if run.variant.arrays and run.sbatch_calls == settings.n:
            notes.append(f"- {run.variant.name}: one sbatch call per job, so no job arrays")
        if run.foreign_jobs:
            notes.append(f"- {run.variant.name}: {run.foreign_jobs} other jobs ran meanwhile")
    if any(run.variant.name == "stock-arrays" for run in runs):
        notes.append(STOCK_ARRAY_NOTE)
    notes.append(
        f"- every variant: {settings.n} jobs of benchmarks/workflow, all submitted at once "
        f"(--jobs {settings.n}), --seconds-between-status-checks {settings.status_seconds}, "
        "--verbose (the stock plugin counts its status queries at debug level); stock also "
        f"--slurm-init-seconds-before-status-checks {settings.init_seconds} --slurm-no-account"
    )
    notes.append(
        "- sacct/squeue/scontrol calls: counted by a PATH wrapper, the submit host's only; "
        "end noticed: ours from the run journal's `ended` records, the stock plugin's from "
        "Snakemake's \"Finished jobid\" line, each minus sacct's End (whole seconds, "
        "truncated: up to 1 s too high)"
    )
    return "\n".join([*out, "", *notes])


def _to_stderr(text: str) -> None:
    print(text, file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--n", type=int, default=20, help="jobs in the workflow")
    parser.add_argument("--jobs", type=int, default=20, help="snakemake --jobs")
    parser.add_argument("--stock-python", type=Path, default=Settings.stock_python)
    parser.add_argument(
        "--scale",
        type=int,
        metavar="N",
        help="instead: N trivial jobs, submitted at once, once per --variants",
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=[v.name for v in SCALE_VARIANTS],
        default=[v.name for v in SCALE_VARIANTS],
        help="scale variants to run (default: all)",
    )
    args = parser.parse_args()
    if args.scale is not None:
        if args.scale < 1:
            parser.error(f"--scale must be a positive number of jobs, not {args.scale}")
        settings = Settings(n=args.scale, jobs=args.scale, stock_python=args.stock_python)
        variants = [v for v in SCALE_VARIANTS if v.name in args.variants]
        print(scale_table(run_scale(settings, variants, _to_stderr), settings))
        return 0
    settings = Settings(runs=args.runs, n=args.n, jobs=args.jobs, stock_python=args.stock_python)
    print(table(run_all(settings, _to_stderr), settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
