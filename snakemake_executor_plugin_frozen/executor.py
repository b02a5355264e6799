"""The surface Snakemake calls: the run's start, each job's submission, the status queries,
cancellation and shutdown. The parts live in their own modules: the snapshot
(run_snapshot.py), where a job's files go and how it is submitted (placed_jobs.py), the
unfinished jobs (job_tracking.py), the journal (run_journal.py), the end (run_end.py), the
backend (backends.py), and what is read of Snakemake beyond its interface
(workflow_sources.py)."""

import functools
import time
import uuid
from collections.abc import AsyncGenerator
from pathlib import Path

from snakemake_interface_common.exceptions import ApiError, WorkflowError
from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo
from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor
from snakemake_interface_executor_plugins.jobs import JobExecutorInterface

from snakemake_executor_plugin_frozen import arrays, jobscript, placed_jobs, shellwords
from snakemake_executor_plugin_frozen.backends import Backend, JobEnd, backend_for
from snakemake_executor_plugin_frozen.job_command import bash_quoted_job_exec, frozen_general_args
from snakemake_executor_plugin_frozen.job_tracking import JobTracker
from snakemake_executor_plugin_frozen.leaks import leak_warnings
from snakemake_executor_plugin_frozen.placed_jobs import PlacedJob
from snakemake_executor_plugin_frozen.record.layout import Layout, mark_logdir
from snakemake_executor_plugin_frozen.run_end import collect_garbage, status_rate
from snakemake_executor_plugin_frozen.run_journal import RunJournal
from snakemake_executor_plugin_frozen.run_snapshot import RunSnapshot, take
from snakemake_executor_plugin_frozen.settings import ExecutorSettings
from snakemake_executor_plugin_frozen.slurm.commands import SbatchError, SlurmCommandError
from snakemake_executor_plugin_frozen.slurm.sbatch_options import SlurmSubmitError
from snakemake_executor_plugin_frozen.slurm.status import Outcome
from snakemake_executor_plugin_frozen.slurm.submit import JobSpec
from snakemake_executor_plugin_frozen.snapshot import leases
from snakemake_executor_plugin_frozen.view_report import ViewReport, job_view
from snakemake_executor_plugin_frozen.workflow_sources import (
    job_config_files,
    workflow_code,
)

# Seconds between looks for ended jobs; SLURM itself is asked when the tracker says so.
TICK = 0.5


class StartRefused(ApiError):
    """The run cannot start (no sbatch, the code cannot be packed, ...): Snakemake prints an
    ``ApiError`` as one ``Error: ...`` line, a ``WorkflowError`` with the plugin's frames."""


class Executor(RemoteExecutor):
    def __post_init__(self) -> None:
        try:
            self.start()
        except WorkflowError as e:
            raise StartRefused(str(e)) from None

    def start(self) -> None:
        """Everything before the first job: settings, backend, log folder, the snapshot and
        its lease, the run's journal record."""
        self.settings: ExecutorSettings = self.workflow.executor_settings
        workdir = Path(self.workflow.workdir_init).resolve()
        self.layout = Layout(workdir, (workdir / self.settings.logdir).resolve())
        self.run_id = str(uuid.uuid4())
        self.backend: Backend = backend_for(self.settings, self.run_id)
        try:
            mark_logdir(self.layout.logdir)
        except OSError as e:  # each job then fails with its own error as it is prepared
            self.warn(f"cannot mark the log folder {self.layout.logdir}: {e}")
        ended = self.layout.ended(self.run_id) if self.backend.polled else None
        seconds = self.workflow.remote_execution_settings.seconds_between_status_checks
        try:
            self.tracker = JobTracker.for_run(seconds, ended)
        except OSError as e:
            raise WorkflowError(f"frozen: cannot create {ended}: {e}") from None
        self.started = time.monotonic()
        self.warned: set[tuple[str, str]] = set()  # (rule, warning): said once per rule
        self.checked_rules: set[str] = set()  # rules whose shell: leaks were looked for
        self.views = ViewReport()
        if self.settings.copy == "per-job" and not self.freezing:
            self.warn(
                f"--frozen-copy per-job has no effect in --frozen-mode "
                f"{self.settings.mode}: the jobs run the live code and write into it."
            )
        self.say(
            f"mode {self.settings.mode}, submit via {self.settings.submit}, "
            f"run {self.run_id}, logs in {self.layout.logdir}"
        )
        self.array_jobs = self.settings.array_jobs if self.settings.submit == "sbatch" else ""
        # Asked now, before any status call, so that it keeps the calls' distance (scontrol).
        self.array_limit = self.capped_array_limit() if self.array_jobs else 1
        self.journal = RunJournal(self.layout.journal, self.run_id, workdir, self)
        self.snapshot: RunSnapshot | None = None
        self.lease: leases.Lease | None = None
        if self.settings.mode != "off":
            code = workflow_code(self.workflow, self.dag.jobs, workdir)
            self.snapshot, self.lease = take(code, self.layout, self.settings, self.run_id, self)
        code_root = self.snapshot.code_root if self.snapshot else workdir
        self.journal.started(self.snapshot_id, code_root, self.layout.logdir)
        self.journal.write()

    def say(self, message: str) -> None:
        """Tell the user, as the plugin: Snakemake's log, each line "frozen: " first."""
        self.logger.info(f"frozen: {message}")

    def warn(self, message: str) -> None:
        self.logger.warning(f"frozen: {message}")

    @property
    def freezing(self) -> bool:
        return self.settings.mode == "freeze"

    @property
    def snapshot_id(self) -> str | None:
        return self.snapshot.id if self.snapshot else None

    # -- what the job runs ----------------------------------------------------------------

    def get_python_executable(self) -> str:
        python = shellwords.quote(super().get_python_executable())
        if not self.freezing:
            return python
        # -P: `python -m snakemake` would put the live workdir first on sys.path, ahead of
        # the frozen copy on PYTHONPATH. The job's log lists the reads of code-root files
        # its Snakemake served from the snapshot (jobsite/sitecustomize.py).
        return f"FROZEN_REPORT_READS=1 {python} -P"

    def get_snakefile(self) -> str:
        if not self.freezing or self.snapshot is None:
            return super().get_snakefile()
        return self.snapshot.in_copy(Path(self.workflow.main_snakefile))

    def additional_general_args(self) -> str:
        if not self.freezing or self.snapshot is None:
            return ""
        return frozen_general_args(self.snapshot, *job_config_files(self.workflow))

    def format_job_exec(self, job: JobExecutorInterface) -> str:
        """Snakemake's command for the job, every value quoted for bash (job_command.py)."""
        return bash_quoted_job_exec(
            functools.partial(super().format_job_exec, job), job, self.tmpdir
        )

    # -- submission -----------------------------------------------------------------------

    def run_jobs(self, jobs: list[JobExecutorInterface]) -> None:
        for job in jobs:
            self.run_job_pre(job)
        prepared = [p for job in jobs if (p := self.prepare(job)) is not None]
        alone, batches = placed_jobs.array_batches(prepared, self.array_jobs, self.array_limit)
        for p in alone:
            self.submit_alone(p)
        for batch in batches:
            self.submit_array(batch)
        self.journal.write()

    def run_job(self, job: JobExecutorInterface) -> None:
        prepared = self.prepare(job)
        if prepared is not None:
            self.submit_alone(prepared)
        self.journal.write()

    def prepare(self, job: JobExecutorInterface) -> PlacedJob | None:
        """The job's log folder, the snapshot beside it and its batch script; a file-system
        error (a full disk, a quota) becomes this job's error, not the run's end."""
        p = placed_jobs.place(job, self.layout.logdir, self.run_id)
        command = self.format_job_exec(job)
        if self.freezing and self.settings.view == "python":
            self.warn_shell_leaks(job)
        s = self.snapshot
        try:
            p.job_dir.mkdir(parents=True, exist_ok=True)
            entry = None
            if s is not None:
                archive = s.rule_copies.place(p.rule_dir)
                entry = s.entry(archive, self.settings) if self.freezing else None
            text = jobscript.render(
                f"{p.label}, run {self.run_id}" + (f", snapshot {s.id}" if s else ""),
                command,
                entry,
                ended=self.tracker.ended_dir,
                single_rule=not job.is_group(),
            )
            placed_jobs.write_executable(p.script, text)
        except OSError as e:
            self.fail_unsubmitted(job, f"frozen: {p.label} not submitted: {e}")
            return None
        return p

    def capped_array_limit(self) -> int:
        limit, note = arrays.capped_limit(self.settings.array_limit, self.backend.max_array_size())
        if note:
            self.say(note)
        return limit

    def submit(self, spec: JobSpec, token: str, what: str, jobs: list[JobExecutorInterface]):
        """Submit; on failure each job gets the error and None is returned."""
        try:
            job_id, warnings = self.backend.submit(spec, token)
        except (SlurmSubmitError, SbatchError) as e:
            hint = placed_jobs.threads_hint(jobs[0].threads, e)
            for job in jobs:
                self.fail_unsubmitted(job, f"frozen: submitting {what} failed: {e}{hint}")
            return None
        for warning in warnings:
            if (jobs[0].name, warning) not in self.warned:
                self.warned.add((jobs[0].name, warning))
                kind = "group" if jobs[0].is_group() else "rule"
                self.warn(f"{kind} {jobs[0].name}: {warning}")
        return job_id

    def submit_alone(self, p: PlacedJob) -> None:
        token = placed_jobs.submission_token()
        spec = placed_jobs.alone_spec(p, self.run_id, self.layout.workdir, self.snapshot_id, token)
        job_id = self.submit(spec, token, p.label, [p.job])
        if job_id is not None:
            self.track(p.job, job_id, spec.log_file(job_id))

    def submit_array(self, batch: list[PlacedJob]) -> None:
        label = placed_jobs.array_label(batch)
        try:
            placed_jobs.write_array_script(batch, self.run_id)
        except OSError as e:
            for p in batch:
                self.fail_unsubmitted(p.job, f"frozen: {label} not submitted: {e}")
            return
        token = placed_jobs.submission_token()
        spec = placed_jobs.array_spec(
            batch, self.run_id, self.layout.workdir, self.snapshot_id, token
        )
        array_id = self.submit(spec, token, label, [p.job for p in batch])
        if array_id is None:
            return
        for task, p in enumerate(batch):
            self.track(p.job, arrays.task_id(array_id, task), spec.task_log_file(array_id, task))

    def track(self, job: JobExecutorInterface, job_id: str, log: Path) -> None:
        self.logger.info(f"Job {job.jobid} submitted as {job_id} (log: {log})")
        self.journal.submitted(job, job_id, log, self.snapshot_id, self.settings.mode)
        submitted = SubmittedJobInfo(job, external_jobid=job_id, aux={"log": log})
        self.tracker.add(job_id, submitted)
        self.report_job_submission(submitted)

    def fail_unsubmitted(self, job: JobExecutorInterface, message: str) -> None:
        if job.is_group():
            # Snakemake's error report of a group job drops the message.
            self.logger.error(message)
        self.report_job_error(SubmittedJobInfo(job), msg=message + "\n")

    def warn_shell_leaks(self, job: JobExecutorInterface) -> None:
        """Code reached through a workdir-relative path in `shell:` comes from the live tree."""
        if job.is_group() or job.name in self.checked_rules:
            return
        self.checked_rules.add(job.name)
        s = self.snapshot
        shellcmd = getattr(job.rule, "shellcmd", None)
        if s is None or not shellcmd:
            return
        for warning in leak_warnings(job.name, shellcmd, self.layout.workdir, s.code_root, s.files):
            self.warn(warning)

    # -- status and cancellation ----------------------------------------------------------

    async def check_active_jobs(
        self, active_jobs: list[SubmittedJobInfo]
    ) -> AsyncGenerator[SubmittedJobInfo, None]:
        if not active_jobs:
            return
        self.next_seconds_between_status_checks = TICK
        ends = self.tracker.hinted_ends()
        if (answer := self.tracker.asking.answer()) is not None:
            ends = {**self.take_answer(answer), **ends}
        if not self.tracker.asking.busy and self.tracker.query_due():
            ids = [j.external_jobid for j in active_jobs if j.external_jobid not in ends]
            self.tracker.asking.start(self.ask([*ids, *self.tracker.confirming]))
        for job_info in active_jobs:
            end = ends.get(job_info.external_jobid)
            if end is None:
                yield job_info
            else:
                self.end_job(job_info, end)
        self.journal.write()

    async def ask(self, job_ids: list[str]) -> dict[str, JobEnd]:
        try:
            async with self.status_rate_limiter:
                return await self.backend.states(job_ids)
        except SlurmCommandError as e:
            # The controller may be restarting; the jobs are still there, ask again later.
            self.warn(f"status query failed, will retry: {e}")
            return {}

    def take_answer(self, answer: dict[str, JobEnd]) -> dict[str, JobEnd]:
        """The ends of unfinished jobs; SLURM's word on those ended by their hints goes
        into their journal records."""
        found, confirmed = self.tracker.answered(answer)
        for record, end in confirmed:
            if warning := self.journal.confirmed(record, end):
                self.warn(warning)
        return found

    def end_job(self, job_info: SubmittedJobInfo, end: JobEnd) -> None:
        job_id = job_info.external_jobid
        log = job_info.aux["log"]
        view, detail = job_view(log) if self.freezing else ("", "")
        self.views.add(view, detail)
        success = end.outcome is Outcome.SUCCESS
        record = self.journal.ended(job_info.job, job_id, success, end.state, end.node, view)
        if not self.tracker.forget(job_id, kept=record):  # else noted once SLURM confirms
            self.journal.note(record)
        if success:
            self.report_job_success(job_info)
        else:
            message = f"{end.message}\n{self.backend.log_label}: {log}\n"
            self.report_job_error(job_info, msg=message, aux_logs=[str(log)])

    def cancel_jobs(self, active_jobs: list[SubmittedJobInfo]) -> None:
        job_ids = [j.external_jobid for j in active_jobs] + [*self.tracker.unfinished]
        job_ids = list(dict.fromkeys(job_ids))
        if not job_ids:
            return
        try:
            self.backend.cancel(job_ids)
        except SlurmCommandError as e:
            self.logger.error(
                f"frozen: could not cancel job(s) {', '.join(job_ids)}, which may still run; "
                f"cancel them by hand (scancel {' '.join(job_ids)}): {e}"
            )

    def shutdown(self) -> None:
        super().shutdown()
        # Not asked again to confirm the last jobs' ends: the run would wait for its turn.
        for record in self.tracker.confirming.values():  # state EXIT 0: as the hint said
            self.journal.note(record)
        self.journal.write()
        collect_garbage(self.layout, self.settings, self)  # this run's snapshot is leased
        if self.lease is not None:
            self.lease.release()
        self.tracker.close()
        rate = status_rate(self.backend.status_calls, time.monotonic() - self.started)
        if rate is not None:
            self.say(rate)
        if self.snapshot is None:
            return
        if self.freezing:
            for line in self.views.summary():
                self.logger.warning(line)
        self.snapshot.tell_edited(self, self.freezing)
