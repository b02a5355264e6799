"""``reproduce``: run the job that made an output again, from its snapshot, into a folder of
its own, and compare what it makes with what the journal recorded.

The job is the one ``which`` names: the latest job that made the output and succeeded. It
must have run in ``--frozen-mode freeze`` (in ``archive`` it read the live code, in ``off``
there is no snapshot) from a snapshot still in the store, and its batch script must still
be in the log folder: the job's command line is taken from there, exactly as Snakemake wrote
it for the job (target job and rule, wildcards, resources, ``--config``, the snapshot's
Snakefile and config files), not rebuilt from the run's arguments, which miss what a
profile set.

Where it runs (``reproduce_run.py``): a new folder DIR, by default
``<workdir>/.snakemake/frozen/reproduced/<rule>-<job>-<time>`` (never packed, never an
output; ``--into DIR`` gives another, which must be new or empty, of the user's, and outside
the working directory and its outputs), holding the snapshot's files where the job's view
showed them, relative to its working directory, read-only, and links to the live inputs the
journal recorded. The job runs locally, on this machine, one process as on its node: its
SLURM resources are not asked for, its threads are what its command line gives them. The
live working directory is read-only for it where a mount namespace can be had; DIR gets its
outputs, logs and ``.snakemake/``.

Then each output of the job in DIR is compared with what the journal recorded when the job
ended: ``identical`` (same sha256 and size), ``different`` (how), ``missing``, or ``not
compared`` (the journal holds no sha256 of it: it was larger than ``journal.HASH_LIMIT``, 64
MiB, or recorded before outputs were hashed). And each input, as it is now in the live
working directory, with its size and mtime at the job's submission: ``unchanged``,
``changed`` or ``missing`` (no byte of an input is read: a size and an mtime tell that it was
touched since, and explain a different output). Exit 0 when every output is identical, 1
when one differs or is missing, 2 when the job could not be run again or an output could not
be compared.

Limits: the job runs with the software installed now (Python packages, programs, conda
environments, which it builds again in DIR); a read by absolute path of a live code file
(outside what the job's view bound, in the python view, or not through ``$FROZEN_DIR``)
reads the live file; an input the snapshot holds is read from the snapshot, as the job's
view served it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from snakemake_executor_plugin_frozen import journal
from snakemake_executor_plugin_frozen.shellwords import visible

from . import reproduce_run
from .confine import foreign_link, located
from .errors import RecordError
from .history import Job
from .ids import SHORT
from .layout import Layout
from .restore import extract_into, made_by, prepare
from .snapshots import Snapshot
from .table import render
from .which import Finder

REPRODUCED = Path(".snakemake/frozen/reproduced")  # the default DIRs, below the workdir
_LOG_LINES = 15  # of a failed job's log, in the report
_LIMIT = f"{journal.HASH_LIMIT / 2**20:g} MiB"

# Where the reproduction read each input from (``reproduce_run.provide_inputs``), for people.
_FROM = {
    "linked": "live",  # through a link to the live file
    "snapshot": "snapshot",  # the snapshot holds it: the job's view served that copy too
    "absolute": "live",  # at its absolute path
    "refused": "nowhere",  # its folder in DIR would lead out of DIR
}


@dataclass
class Check:
    path: str
    state: str  # inputs: unchanged, changed, missing, unknown; outputs: identical, ...
    detail: str = ""
    recorded: dict | None = None
    now: dict | None = None
    how: str = ""  # inputs: how the reproduction got it (see _FROM)


@dataclass
class Reproduction:
    output: str
    job: Job
    snapshot: str
    dir: Path
    workdir: Path  # the job's working directory within dir
    log: Path
    returncode: int
    guard: str
    inputs: list[Check] = field(default_factory=list)
    outputs: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tail: list[str] = field(default_factory=list)  # of the log, when the job failed

    @property
    def status(self) -> str:
        states = {check.state for check in self.outputs}
        if self.returncode != 0:
            return "failed"
        if states & {"different", "missing"}:
            return "different"
        return "identical" if states == {"identical"} else "unknown"

    @property
    def exit_code(self) -> int:
        return {"identical": 0, "different": 1}.get(self.status, 2)


def _snapshot(job: Job, finder: Finder) -> Snapshot:
    mode = job.record.get("mode")
    if job.snapshot is None or mode == "off":
        raise RecordError(
            f"SLURM job {job.slurm_id} ran with --frozen-mode off: no snapshot holds its code"
        )
    if mode == "archive":
        raise RecordError(
            f"SLURM job {job.slurm_id} ran with --frozen-mode archive: it read the live code, "
            f"which snapshot {job.snapshot[:SHORT]} may not hold; reproduce reruns jobs of "
            "--frozen-mode freeze only (snakemake-frozen restore gives that snapshot's files)"
        )
    snapshot = finder.store.get(job.snapshot)
    if snapshot is None:
        raise RecordError(
            f"snapshot {job.snapshot[:SHORT]}, which SLURM job {job.slurm_id} ran, is no "
            "longer in the store (removed by gc?): its code cannot be had again"
        )
    return snapshot


def _relative_outputs(job: Job) -> list[str]:
    """The job's outputs, which must lie in its working directory: an absolute or climbing
    output would be written where it is, outside the reproduction's folder."""
    outputs = job.outputs()
    for output in outputs:
        if os.path.isabs(output) or output == ".." or output.startswith("../"):
            raise RecordError(
                f"{output}, an output of SLURM job {job.slurm_id}, lies outside its working "
                "directory: running the job again would write it there, over the live file; "
                "not reproducing it"
            )
    return outputs


def _default_dir(layout: Layout, job: Job) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = "".join(c if c.isalnum() or c in "_.-" else "_" for c in job.record["rule"])
    base = layout.workdir / REPRODUCED / f"{name}-{job.slurm_id}-{stamp}"
    candidate, n = base, 1
    while os.path.lexists(candidate):
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def _check_into(into: Path, layout: Layout, finder: Finder) -> None:
    """Refuse a DIR inside the live working directory (but for its ``.snakemake``) or at or
    below an output the journal names."""
    where = located(into)
    live = Path(os.path.realpath(layout.workdir))
    for job in finder.history.jobs:
        for output in job.outputs():
            path = located(live / output)
            if where == path or where.is_relative_to(path):
                raise RecordError(
                    f"{into} lies inside {output}, an output of the workflow (rule "
                    f"{job.record['rule']}): give a new folder outside the working directory"
                )
    if where.is_relative_to(live) and not where.is_relative_to(live / ".snakemake"):
        raise RecordError(
            f"{into} lies inside the working directory {live}: what the reproduction writes "
            "would mix with the live data, and the copy of the code it holds would be packed "
            "by the next run's snapshot; give a new folder outside it (without --into it "
            f"goes below {live / REPRODUCED})"
        )


def reproduce(
    layout: Layout,
    output: str,
    into: Path | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> Reproduction:
    finder = Finder(layout)
    job = made_by(finder, output)
    snapshot = _snapshot(job, finder)
    outputs = _relative_outputs(job)
    recorded_inputs = job.input_facts
    if recorded_inputs is None:
        raise RecordError(
            f"the journal does not record the inputs of SLURM job {job.slurm_id} (a run "
            "before they were recorded): reproduce cannot tell which live files to give it. "
            "Run the workflow again (snakemake --forcerun) to record them"
        )
    inputs = list(dict.fromkeys(os.path.normpath(f["path"]) for f in recorded_inputs))
    if into is not None:
        _check_into(into, layout, finder)
    folder = Path(os.path.abspath(into)) if into is not None else _default_dir(layout, job)
    if why := foreign_link(folder):  # it could lead anywhere: not writing there
        raise RecordError(f"not reproducing into {folder}: {why}; give --into DIR elsewhere")
    existed = prepare(folder, "reproduce")
    _, command = reproduce_run.job_command(job, layout.logdir)
    recorded_workdir = job.record.get("workdir")
    if not (isinstance(recorded_workdir, str) and os.path.isabs(recorded_workdir)):
        recorded_workdir = str(layout.workdir)
    try:
        where = reproduce_run.place(folder, snapshot.manifest, recorded_workdir, inputs)
    except ValueError:  # a relative code root: no manifest the executor wrote
        raise RecordError(
            f"the manifest of snapshot {snapshot.id[:SHORT]} names no absolute "
            "code root: not a snapshot the executor made"
        ) from None
    archive = snapshot.check_archive()
    existed = existed and where.tree == folder
    extract_into(archive, snapshot.archive_sha256, where.tree, existed, writable=False)
    how = reproduce_run.provide_inputs(where, inputs, layout.workdir)
    progress(f"reproducing {visible(output)} in {visible(str(where.workdir))} ...")
    ran = reproduce_run.run(where, command, snapshot.manifest, layout.workdir)
    done = Reproduction(
        output, job, snapshot.id, folder, where.workdir, ran.log, ran.returncode, ran.guard
    )
    done.inputs = [_input_check(f, layout.workdir, how) for f in recorded_inputs]
    done.outputs = [_output_check(o, where.workdir, job.output_facts) for o in outputs]
    done.notes, done.tail = _notes(done), _tail(done)
    return done


def _input_check(recorded: dict, live: Path, how: dict[str, str]) -> Check:
    path = recorded["path"]
    now = journal.facts(path, live)
    check = Check(path, "unchanged", recorded=recorded, now=now)
    check.how = how.get(os.path.normpath(path), "")
    if now["type"] == "missing":
        check.state, check.detail = "missing", "no longer in the working directory"
    elif recorded.get("type") == "missing" or recorded.get("size") is None:
        check.state, check.detail = "unknown", "it did not exist when the job was submitted"
    elif (now["size"], now["mtime_ns"]) != (recorded["size"], recorded.get("mtime_ns")):
        check.state = "changed"
        changes = []
        if now["size"] != recorded["size"]:
            changes.append(f"size {_bytes(recorded['size'])} -> {_bytes(now['size'])}")
        before, after = _times(recorded.get("mtime_ns"), now["mtime_ns"])
        check.detail = ", ".join([*changes, f"modified {before} -> {after}"])
    return check


def _times(*stamps: int | None) -> list[str]:
    """Times to the second, UTC; to the nanosecond when that is where they differ."""
    shown = [
        "?"
        if ns is None
        else datetime.fromtimestamp(ns // 10**9, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        for ns in stamps
    ]
    if len(set(shown)) < len(shown):
        shown = [f"{ns} ns" for ns in stamps]
    return shown


def _output_check(path: str, workdir: Path, recorded_outputs: dict[str, dict] | None) -> Check:
    recorded = (recorded_outputs or {}).get(path)
    now = journal.facts(path, workdir, journal.HASH_LIMIT)
    check = Check(path, "not compared", recorded=recorded, now=now)
    if now["type"] == "missing":
        check.state, check.detail = "missing", "the reproduction did not make it"
    elif recorded is None:
        check.detail = "the journal holds nothing of it as the job left it (an older record)"
    elif recorded.get("type") != now["type"]:
        check.state = "different"
        check.detail = f"a {recorded.get('type')} then, a {now['type']} now"
    elif recorded.get("sha256") and now["sha256"]:
        same = recorded["sha256"] == now["sha256"] and recorded.get("size") == now["size"]
        check.state = "identical" if same else "different"
        check.detail = (
            _sizes(recorded.get("size"), now["size"])
            + ", sha256 "
            + (
                recorded["sha256"][:SHORT]
                if same
                else f"{recorded['sha256'][:SHORT]} -> {now['sha256'][:SHORT]}"
            )
        )
    elif (
        recorded.get("size") is not None
        and now["size"] is not None
        and (recorded["size"] != now["size"])
    ):
        check.state, check.detail = "different", _sizes(recorded["size"], now["size"])
    else:
        check.detail = (
            f"content not compared: the job's output was larger than {_LIMIT}"
            f" when it ended, so the journal holds no sha256 of it ("
            + _sizes(recorded.get("size"), now["size"])
            + ")"
        )
    return check


def _sizes(before: int | None, after: int | None) -> str:
    return f"size {_bytes(before)}" + ("" if before == after else f" -> {_bytes(after)}")


def _bytes(n: int | None) -> str:
    """Exact, so that a difference of one byte shows."""
    return "?" if n is None else f"{n:,} B"


def _notes(done: Reproduction) -> list[str]:
    notes = []
    if not done.guard.startswith("read-only"):
        notes.append(
            f"the live working directory was {done.guard}: only the reproduction's folder "
            "layout kept it from writing there"
        )
    view = (done.job.end or {}).get("view")
    if view == "python":
        notes.append(
            "the job ran in the python view, where shell: commands read the live files; "
            "the reproduction gave them the snapshot's"
        )
    changed = [c.path for c in done.inputs if c.state in ("changed", "missing")]
    if changed and done.status != "identical":
        notes.append(f"{len(changed)} input(s) changed since the job ran: " + ", ".join(changed))
    elif done.returncode == 0 and (
        differing := next((c for c in done.outputs if c.state == "different"), None)
    ):
        notes.append(
            "no input changed since the job ran: the difference comes from the job itself or "
            "where it ran (a host name, the time, random numbers, the software installed "
            f"now); the live file, if the job's still, shows how: diff {differing.path} "
            f"{done.workdir / differing.path}"
        )
    if done.returncode != 0:
        notes.append(f"the job failed (exit status {done.returncode}); its log: {done.log}")
    return notes


def _tail(done: Reproduction) -> list[str]:
    if done.returncode == 0:
        return []
    try:
        return done.log.read_text(errors="replace").splitlines()[-_LOG_LINES:]
    except OSError:
        return []


def as_json(done: Reproduction) -> dict:
    return {
        "output": done.output,
        "status": done.status,
        "rule": done.job.record["rule"],
        "wildcards": done.job.record.get("wildcards") or {},
        "run": done.job.run,
        "slurm_id": done.job.slurm_id,
        "snapshot": done.snapshot,
        "dir": str(done.dir),
        "workdir": str(done.workdir),
        "log": str(done.log),
        "returncode": done.returncode,
        "live_workdir": done.guard,
        "inputs": [_check_json(c) for c in done.inputs],
        "outputs": [_check_json(c) for c in done.outputs],
        "notes": done.notes,
        "log_tail": done.tail,
    }


def _check_json(check: Check) -> dict:
    found = {"path": check.path, "state": check.state, "detail": check.detail}
    found.update(recorded=check.recorded, now=check.now)
    if check.how:
        found["how"] = check.how
    return found


def as_text(done: Reproduction) -> str:
    job = done.job
    wildcards = ",".join(f"{k}={v}" for k, v in (job.record.get("wildcards") or {}).items())
    lines = [
        f"reproduced {visible(done.output)}: rule {visible(str(job.record['rule']))}"
        + (f" ({visible(wildcards)})" if wildcards else "")
        + f", SLURM job {visible(job.slurm_id)} of run {job.run[:8]}, "
        f"snapshot {done.snapshot[:SHORT]}",
        f"folder: {visible(str(done.workdir))}",
        f"log: {visible(str(done.log))}",
    ]
    if done.guard.startswith("read-only"):
        lines.append(f"live working directory: {done.guard}")
    if done.inputs:
        rows = [(c.path, _FROM.get(c.how, "?"), c.state, c.detail) for c in done.inputs]
        lines.append(render(("INPUT", "READ FROM", "STATE", "SINCE SUBMISSION"), rows))
    rows = [(c.path, c.state, c.detail) for c in done.outputs]
    lines.append(render(("OUTPUT", "STATE", "AS THE JOB LEFT IT -> AS REPRODUCED"), rows))
    lines += [f"note: {visible(note)}" for note in done.notes]
    lines += [f"  | {visible(line)}" for line in done.tail]
    lines.append(f"result: {done.status}")
    return "\n".join(lines)
