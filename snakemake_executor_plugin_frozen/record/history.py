"""The journal read as runs and jobs: each ``submitted`` record joined with its ``ended``
record (by run and SLURM job id), each run with its ``run`` record and jobs."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from snakemake_executor_plugin_frozen import journal

from .table import parse_time

_SUBMITTED_KEYS = ("rule", "outputs", "slurm_id", "time")


@dataclass
class Job:
    run: str
    record: dict  # the submitted record
    end: dict | None = None  # its ended record, None while unfinished (or lost by a crash)

    @property
    def slurm_id(self) -> str:
        return self.record["slurm_id"]

    @property
    def snapshot(self) -> str | None:
        return self.record.get("snapshot")

    @property
    def succeeded(self) -> bool:
        return self.end is not None and self.end.get("outcome") == "success"

    @property
    def local(self) -> bool:
        """Run without SLURM (``--frozen-submit local``): SLURM cannot tell its state."""
        return self.slurm_id.startswith("local")

    def outputs(self) -> list[str]:
        return [os.path.normpath(o) for o in self.record["outputs"]]

    @property
    def input_facts(self) -> list[dict] | None:
        """The job's inputs as they were at submission (``journal.input_facts``); None when
        its record has none (written before the journal recorded them)."""
        return _facts(self.record.get("inputs"))

    @property
    def output_facts(self) -> dict[str, dict] | None:
        """The job's outputs as they were when it ended (``journal.output_facts``), by their
        normalised path; None when its end is not recorded or has none."""
        found = _facts((self.end or {}).get("outputs"))
        return None if found is None else {os.path.normpath(f["path"]): f for f in found}


def _facts(value: object) -> list[dict] | None:
    """The well-formed entries of a record's list of file facts: a text path each, sizes and
    times whole numbers or null (anything else is read as unknown); None without a list."""
    if not isinstance(value, list):
        return None
    found = []
    for entry in value:
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            continue
        if not entry["path"] or "\0" in entry["path"]:
            continue
        clean = dict(entry)
        for key in ("size", "mtime_ns"):
            if not isinstance(clean.get(key), int) or isinstance(clean.get(key), bool):
                clean[key] = None
        sha256 = clean.get("sha256")
        if "sha256" in clean and not (isinstance(sha256, str) and len(sha256) == 64):
            clean["sha256"] = None  # outputs only: inputs are never hashed
        found.append(clean)
    return found


@dataclass
class Run:
    id: str
    start: dict | None = None  # the run record, None if the journal lacks it
    jobs: list[Job] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # of every record of the run

    @property
    def snapshots(self) -> set[str]:
        found = {job.snapshot for job in self.jobs if job.snapshot}
        if self.start is not None and self.start.get("snapshot"):
            found.add(self.start["snapshot"])
        return found

    @property
    def last(self) -> float:
        """When the run last did something the journal recorded (0 when it tells no time)."""
        return max(self.times, default=0.0)

    def unfinished(self) -> list[Job]:
        return [job for job in self.jobs if job.end is None]


@dataclass
class History:
    runs: dict[str, Run] = field(default_factory=dict)  # in the order the journal names them
    jobs: list[Job] = field(default_factory=list)  # submitted records, in journal order
    skipped: int = 0  # lines that were no whole record, and records lacking fields

    @classmethod
    def read(cls, path: Path) -> History:
        contents = journal.read(path)
        history = cls(skipped=contents.skipped)
        history.add(contents.records)
        return history

    def add(self, records: Iterable[dict]) -> None:
        by_slurm_id: dict[tuple[str, str], Job] = {}
        for record in records:
            event, run_id = record["event"], record["run"]
            if event == "submitted" and all(k in record for k in _SUBMITTED_KEYS):
                job = Job(run_id, record)
                self._run(run_id).jobs.append(job)
                self.jobs.append(job)
                by_slurm_id[run_id, job.slurm_id] = job
            elif event == "ended" and (run_id, record.get("slurm_id")) in by_slurm_id:
                by_slurm_id[run_id, record["slurm_id"]].end = record
            elif event == "run":
                self._run(run_id).start = record
            else:  # incomplete, or the end of a job the journal does not have
                self.skipped += 1
                continue
            if (moment := parse_time(record.get("time"))) is not None:
                self.runs[run_id].times.append(moment)

    def _run(self, run_id: str) -> Run:
        return self.runs.setdefault(run_id, Run(run_id))

    def by_snapshot(self) -> dict[str, list[Run]]:
        """The runs of each snapshot id the journal names."""
        usage: dict[str, list[Run]] = {}
        for run in self.runs.values():
            for snapshot_id in run.snapshots:
                usage.setdefault(snapshot_id, []).append(run)
        return usage
