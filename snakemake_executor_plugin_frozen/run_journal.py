"""The run's part of the journal: its records gathered during one step of Snakemake's loop
(a batch of submissions, one status query) and appended together (``journal.append``).

What ran stays answerable (`snakemake-frozen which`, `reproduce`); failing to write it fails
no job, it is said."""

from pathlib import Path
from typing import Any

from snakemake_executor_plugin_frozen import journal
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

    def ended(self, job: Any, job_id: str, success: bool, state: str, node: str, view: str) -> None:
        self.note(
            journal.ended(
                run=self.run_id,
                slurm_id=job_id,
                outcome="success" if success else "failed",
                state=state,
                node=node,
                view=view,
                # What `snakemake-frozen reproduce` compares a rerun with.
                outputs=journal.output_facts(job_outputs(job), self.workdir) if success else None,
            )
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
