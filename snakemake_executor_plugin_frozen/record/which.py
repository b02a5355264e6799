"""``which``: the job that last produced an output, and the code it ran.

The answer is the latest ``submitted`` record naming the output (or a folder above it, for a
``directory()`` output) whose job ended in success. Paths are compared normalised and
relative to the working directory, as Snakemake names outputs.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from snakemake_executor_plugin_frozen.shellwords import visible

from .errors import RecordError
from .history import History, Job
from .ids import SHORT
from .layout import Layout
from .snapshots import SnapshotStore
from .table import commit_text, parse_time, render

MTIME_SLACK = 2.0  # seconds between a job writing its output and its end being recorded


@dataclass
class Answer:
    path: str  # as asked
    output: str  # as the journal would name it
    found: bool
    rule: str | None = None
    wildcards: dict[str, str] = field(default_factory=dict)
    run: str | None = None
    snapshot: str | None = None
    commit: str | None = None
    dirty: bool | None = None
    in_store: bool | None = None
    slurm_id: str | None = None
    node: str | None = None
    state: str | None = None
    submitted: str | None = None
    ended: str | None = None
    log: str | None = None
    mode: str | None = None  # --frozen-mode of the job: freeze, archive or off
    view: str | None = None  # the view its log names (freeze): mount or python; None unknown
    reason: str | None = None  # why nothing was found
    notes: list[str] = field(default_factory=list)


def normalise(path: str, workdir: Path) -> str:
    """``path`` (absolute, or relative to the working directory) as the journal names it."""
    if not os.path.isabs(path):
        return os.path.normpath(path)
    absolute = os.path.normpath(path)
    for root in (str(workdir), os.path.realpath(workdir)):
        if absolute == root or absolute.startswith(root.rstrip("/") + "/"):
            return os.path.relpath(absolute, root)
    return absolute


def _names(output: str) -> list[str]:
    """``output`` and every folder above it: the outputs that would hold it."""
    names = [output]
    while (parent := os.path.dirname(names[-1])) and parent != names[-1]:
        names.append(parent)
    return names


class Finder:
    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.history = History.read(layout.journal)
        self.store = SnapshotStore(layout.store)
        self.order = {id(job): i for i, job in enumerate(self.history.jobs)}
        self.producers: dict[str, list[Job]] = {}
        for job in self.history.jobs:
            for output in job.outputs():
                name = normalise(output, Path(job.record.get("workdir") or layout.workdir))
                self.producers.setdefault(name, []).append(job)

    def jobs_for(self, output: str) -> list[Job]:
        """The jobs naming ``output`` or a folder above it, in journal order."""
        jobs = [job for name in _names(output) for job in self.producers.get(name, [])]
        return sorted(jobs, key=lambda job: self.order[id(job)])

    def answer(self, path: str) -> Answer:
        output = normalise(path, self.layout.workdir)
        answer = Answer(path, output, found=False)
        jobs = self.jobs_for(output)
        produced = [job for job in jobs if job.succeeded]
        if not produced:
            answer.reason = self._missing(output, jobs)
            return answer
        job = produced[-1]
        self._fill(answer, job)
        later = jobs[jobs.index(job) + 1 :]
        if later:
            answer.notes.append(
                f"{len(later)} later job(s) naming it did not succeed (the last: SLURM job "
                f"{later[-1].slurm_id}, {_state(later[-1])})"
            )
        self._check_mtime(answer, job)
        return answer

    def _fill(self, answer: Answer, job: Job) -> None:
        record, end = job.record, job.end or {}
        answer.found = True
        answer.rule = record["rule"]
        answer.wildcards = dict(record.get("wildcards") or {})
        answer.run = job.run
        answer.snapshot = job.snapshot
        answer.slurm_id = job.slurm_id
        answer.node = end.get("node") or None
        answer.state = end.get("state")
        answer.submitted = record.get("time")
        answer.ended = end.get("time")
        answer.log = record.get("log")
        answer.mode = record.get("mode")
        answer.view = end.get("view") or None
        if note := _mode_caveat(answer.mode, answer.view, job.snapshot):
            answer.notes.append(note)
        if job.snapshot is None:
            answer.notes.append("the run had --frozen-mode off: no snapshot of its code")
            return
        try:
            stored = self.store.get(job.snapshot)
        except RecordError:
            answer.notes.append(
                f"the store's record of snapshot {job.snapshot[:SHORT]} is damaged (snakemake-"
                f"frozen verify --repair {job.snapshot[:SHORT]} puts it back from a rule-log copy)"
            )
            return
        answer.in_store = stored is not None
        if stored is None:
            answer.notes.append(f"snapshot {job.snapshot[:SHORT]} is no longer in the store")
            return
        git = stored.manifest.git
        answer.commit = git.commit if git else None
        answer.dirty = git.dirty if git else None

    def _check_mtime(self, answer: Answer, job: Job) -> None:
        ended = parse_time((job.end or {}).get("time"))
        try:
            mtime = (self.layout.workdir / answer.output).stat().st_mtime
        except OSError:
            answer.notes.append("the file does not exist any more")
            return
        if ended is not None and mtime > ended + MTIME_SLACK:
            answer.notes.append(
                "the file was modified after that job ended (by hand, or by a run without "
                "the frozen executor)"
            )

    def _missing(self, output: str, jobs: list[Job]) -> str:
        if jobs:
            last = jobs[-1]
            return (
                f"{len(jobs)} job(s) in the journal name it, none ended in success (the last: "
                f"rule {last.record['rule']}, SLURM job {last.slurm_id}, {_state(last)})"
            )
        if (self.layout.workdir / output).exists():
            return (
                "not in the journal: made before the journal existed, by another executor, "
                "or not as an output of a Snakemake job"
            )
        return "does not exist, and no job in the journal names it as an output"


def _mode_caveat(mode: str | None, view: str | None, snapshot: str | None) -> str:
    """What the job's mode and view leave uncertain about the code it ran ("" nothing)."""
    short = (snapshot or "")[:SHORT]
    if mode == "archive":
        return (
            f"the job ran in --frozen-mode archive: it read the live files, so the code it ran "
            f"may differ from snapshot {short} (by any edit made before it started)"
        )
    if mode == "freeze" and view == "python":
        return (
            "the job ran in the python view: its Python imports and open() read snapshot "
            f"{short}, but shell: commands and other programs read the live files"
        )
    return ""


def _mode_text(answer: Answer) -> str:
    return f"{answer.mode}/{answer.view}" if answer.mode and answer.view else answer.mode or "-"


def _state(job: Job) -> str:
    if job.end is None:
        return "no end recorded"
    return str(job.end.get("state") or job.end.get("outcome"))


def which(layout: Layout, paths: list[str]) -> list[Answer]:
    finder = Finder(layout)
    return [finder.answer(path) for path in paths]


def as_json(answers: list[Answer]) -> dict:
    return {"outputs": [asdict(a) for a in answers]}


def _wildcards_text(wildcards: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in wildcards.items()) or "-"


def as_text(answers: list[Answer]) -> str:
    found = [a for a in answers if a.found]
    parts = []
    if found:
        rows = [
            (
                a.output,
                a.rule,
                _wildcards_text(a.wildcards),
                (a.snapshot or "-")[:SHORT],
                _mode_text(a),
                commit_text(a.commit, a.dirty) if a.in_store else "-",
                a.slurm_id,
                a.node or "-",
                a.log,
            )
            for a in found
        ]
        headers = (
            "OUTPUT", "RULE", "WILDCARDS", "SNAPSHOT", "MODE", "COMMIT", "JOB", "NODE", "LOG"
        )  # fmt: skip
        parts.append(render(headers, rows))
    for a in answers:
        for note in a.notes:
            parts.append(f"{visible(a.output)}: note: {visible(note)}")
        if not a.found:
            parts.append(f"{visible(a.output)}: {visible(str(a.reason))}")
    return "\n".join(parts)
