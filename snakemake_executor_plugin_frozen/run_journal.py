"""The run's part of the journal: its records gathered during one step of Snakemake's loop
(a batch of submissions, one status query) and appended together (``journal.append``).

What ran stays answerable (`snakemake-frozen which`, `reproduce`); failing to write it fails
no job, it is said."""

import sys
from pathlib import Path
from typing import Any

from snakemake_executor_plugin_frozen import journal
from snakemake_executor_plugin_frozen.backends import JobEnd
from snakemake_executor_plugin_frozen.slurm.status import Outcome
from snakemake_executor_plugin_frozen.voice import Voice
from snakemake_executor_plugin_frozen.workflow_sources import (
    job_inputs,
    job_outputs,
    job_wildcards,
)


class RunJournal:
    def __init__(self, path: Path, run_id: str, workdir: Path, voice: Voice) -> None:
        self.path = path
        self.run_id = run_id
        self.workdir = workdir
        self._voice = voice
        self._pending: list[dict] = []

    def note(self, record: dict) -> None:
        self._pending.append(record)

    def started(self, snapshot_id: str | None, code_root: Path, logdir: Path) -> None:
        self.note(
            journal.run_started(
                run=self.run_id,
                snapshot=snapshot_id,
                code_root=code_root,
                workdir=self.workdir,
                argv=sys.argv,
                logdir=logdir,
            )
        )

    def submitted(
        self, job: Any, job_id: str, log: Path, snapshot_id: str | None, mode: str
    ) -> None:
        self.note(
            journal.submitted(
                run=self.run_id,
                rule=job.name,
                wildcards=job_wildcards(job),
                outputs=job_outputs(job),
                job=job.jobid,
                slurm_id=job_id,
                snapshot=snapshot_id,
                log=log,
                workdir=self.workdir,
                mode=mode,
                inputs=journal.input_facts(job_inputs(job), self.workdir),
            )
        )

    def ended(self, job: Any, job_id: str, success: bool, state: str, node: str, view: str) -> dict:
        """The job's ``ended`` record, its outputs' facts taken now; noted by the caller."""
        return journal.ended(
            run=self.run_id,
            slurm_id=job_id,
            outcome="success" if success else "failed",
            state=state,
            node=node,
            view=view,
            # What `snakemake-frozen reproduce` compares a rerun with.
            outputs=journal.output_facts(job_outputs(job), self.workdir) if success else None,
        )

    def confirmed(self, record: dict, end: JobEnd) -> str | None:
        """SLURM's word on a job that ended by its own hint of success: its state and node go
        into the job's record, which is noted; what to say when SLURM saw no success."""
        record["state"] = end.state or record["state"]
        record["node"] = end.node or record["node"]
        self.note(record)
        if end.outcome is Outcome.SUCCESS:
            return None
        return (
            f"job {record['slurm_id']} ended with exit status 0, but SLURM says: "
            f"{end.message or end.state}"
        )

    def write(self) -> None:
        """The records noted since the last write, in one locked append."""
        if not self._pending:
            return
        try:
            journal.append(self.path, self._pending)
        except OSError as e:
            self._voice.warn(
                f"cannot write the journal {self.path} ({e}); "
                f"{len(self._pending)} record(s) of what ran are lost"
            )
        self._pending = []
