"""Glue between Snakemake and the snapshot engine, the batch script and the SLURM backend."""

import contextlib
import functools
import os
import posixpath
import shutil
import sys
import time
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snakemake_interface_common.exceptions import ApiError, WorkflowError
from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo
from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor
from snakemake_interface_executor_plugins.jobs import JobExecutorInterface

from snakemake_executor_plugin_frozen import arrays, jobscript, journal, shellwords, view_plan
from snakemake_executor_plugin_frozen.backends import Backend, LocalBackend, SbatchBackend
from snakemake_executor_plugin_frozen.job_names import wildcards_comment, wildcards_dir
from snakemake_executor_plugin_frozen.leaks import shell_leaks
from snakemake_executor_plugin_frozen.programs import conda_file, environment_record
from snakemake_executor_plugin_frozen.record.table import size
from snakemake_executor_plugin_frozen.rule_copies import RuleCopies
from snakemake_executor_plugin_frozen.settings import ExecutorSettings
from snakemake_executor_plugin_frozen.slurm.commands import (
    SbatchError,
    SlurmCommandError,
    max_array_size,
)
from snakemake_executor_plugin_frozen.slurm.sbatch_options import SlurmSubmitError, node_list
from snakemake_executor_plugin_frozen.slurm.status import Outcome, PollInterval
from snakemake_executor_plugin_frozen.slurm.submit import JobSpec, SubmitSettings
from snakemake_executor_plugin_frozen.snapshot import (
    PackResult,
    SelectionSettings,
    SnapshotError,
    leases,
    pack,
    read_manifest,
)
from snakemake_executor_plugin_frozen.snapshot.drift import edited_since
from snakemake_executor_plugin_frozen.snapshot.rules import (
    LOG_FOLDER_MARKER,
    compile_ignore,
    listing,
    looks_secret,
)
from snakemake_executor_plugin_frozen.snapshot.store import Store
from snakemake_executor_plugin_frozen.view_report import ViewReport, job_view
from snakemake_executor_plugin_frozen.workflow_sources import (
    changed_since,
    code_root_for,
    job_config_files,
    modules_imported_from,
    process_start_time,
    runtime_cached_sources,
    snakemake_sources,
    workflow_outputs,
)

STORE = Path(".snakemake/frozen/snapshots")
# Seconds between looks for ended jobs; SLURM itself is asked at the poll interval.
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
        self.workdir = Path(self.workflow.workdir_init).resolve()
        self.logdir = (self.workdir / self.settings.logdir).resolve()
        self.run_id = str(uuid.uuid4())
        if self.settings.submit == "sbatch" and shutil.which("sbatch") is None:
            raise WorkflowError(
                "frozen: sbatch was not found on PATH, so jobs cannot be submitted to SLURM. "
                "Run on a SLURM login node, or use --frozen-submit local to run the jobs on "
                "this machine from the same snapshot."
            )
        self.backend = self.make_backend()
        self.mark_logdir()
        # Snakemake's own list of active jobs is empty while a status query runs, so a
        # Ctrl-C then would cancel nothing: keep our own.
        self.unfinished: dict[str, SubmittedJobInfo] = {}
        # Start polling fast, back off to the user's --seconds-between-status-checks.
        longest = max(self.workflow.remote_execution_settings.seconds_between_status_checks, 0.5)
        self.poll_interval = PollInterval(initial=min(2.0, longest), maximum=longest)
        self.poll_wait = self.poll_interval.current
        self.last_query = time.monotonic()
        self.started = time.monotonic()
        # Jobs leave a file here as they end: SLURM is asked at once instead of at the next
        # poll. Only a hint when to ask; what SLURM answers decides the outcome.
        self.ended_dir: Path | None = None
        self.ended: set[str] = set()
        if self.backend.polled:
            self.ended_dir = self.logdir / ".ended" / self.run_id
            try:
                self.ended_dir.mkdir(mode=0o700, parents=True)
            except OSError as e:
                raise WorkflowError(f"frozen: cannot create {self.ended_dir}: {e}") from None
        self.snapshot: PackResult | None = None
        self.code_root = Path()
        self.checked_rules: set[str] = set()
        self.warned: set[tuple[str, str]] = set()  # (rule, warning): said once per rule
        self.rule_copies: RuleCopies | None = None  # once the snapshot is taken
        self.whole: tuple[str, ...] = ()  # folders the job's view binds whole
        self.left_live: tuple[str, ...] = ()  # files the job's view leaves live
        self.views = ViewReport()
        self.check_view_settings()
        self.say(
            f"mode {self.settings.mode}, submit via {self.settings.submit}, "
            f"run {self.run_id}, logs in {self.logdir}"
        )
        self.journal_path = self.workdir / journal.JOURNAL
        self.journal_records: list[dict] = []
        self.lease: leases.Lease | None = None
        if self.settings.mode != "off":
            self.lease_snapshot()
        self.note(
            journal.run_started(
                run=self.run_id,
                snapshot=self.snapshot.id if self.snapshot else None,
                code_root=self.code_root if self.snapshot else self.workdir,
                workdir=self.workdir,
                argv=sys.argv,
                logdir=self.logdir,
            )
        )
        self.write_journal()

    def say(self, message: str) -> None:
        """Tell the user, as the plugin: Snakemake's log, each line "frozen: " first."""
        self.logger.info(f"frozen: {message}")

    def warn(self, message: str) -> None:
        self.logger.warning(f"frozen: {message}")

    def mark_logdir(self) -> None:
        """Mark the log folder: what it holds is never packed as code, here nor wherever
        the setting moves the logs later (``rules.LOG_FOLDER_MARKER``). Best effort: a log
        folder that cannot be written fails each job with its own error when it is prepared."""
        marker = self.logdir / LOG_FOLDER_MARKER
        try:
            self.logdir.mkdir(parents=True, exist_ok=True)
            if not marker.exists():
                marker.write_text(
                    "This folder holds logs, batch scripts and code archives of "
                    "snakemake-executor-plugin-frozen runs; no snapshot packs it.\n"
                )
        except OSError as e:
            with contextlib.suppress(OSError):  # a half-written marker marks nothing
                marker.unlink(missing_ok=True)
            self.warn(f"cannot mark the log folder {self.logdir}: {e}")

    def check_view_settings(self) -> None:
        # (Values that cannot work are refused with the settings: settings_checks.py.)
        if self.settings.copy == "per-job" and not self.freezing:
            self.warn(
                f"--frozen-copy per-job has no effect in --frozen-mode "
                f"{self.settings.mode}: the jobs run the live code and write into it."
            )

    def make_backend(self) -> Backend:
        if self.settings.submit == "local":
            return LocalBackend()
        # The values were checked with the settings (settings_checks.py).
        submit_settings = SubmitSettings(
            qos=self.settings.qos or None,
            reservation=self.settings.reservation or None,
            requeue=self.settings.requeue,
            no_requeue=self.settings.no_requeue,
            exclude_nodes=frozenset(node_list(self.settings.exclude_failed_nodes)),
        )
        return SbatchBackend(
            submit_settings, self.run_id, stuck_seconds=self.settings.stuck_minutes * 60
        )

    # -- the snapshot, taken once ---------------------------------------------------------

    def take_snapshot(self) -> None:
        snakefile = Path(self.workflow.main_snakefile).resolve()
        self.code_root = code_root_for(snakefile, self.settings.code_root)
        store = self.workdir / STORE
        selection = SelectionSettings(
            exclude_folders=tuple(self.settings.exclude_folders),
            code_suffixes=tuple(self.settings.code_suffixes),
            exclude=tuple(self.settings.exclude),
            allow_secrets=tuple(self.settings.allow_secrets),
            option_prefix="--frozen-",
            max_size_mb=self.settings.max_size_mb,
            skip_size_check=self.settings.skip_size_check,
            extra_excluded_dirs=(self.logdir, store),
            data=tuple(workflow_outputs(self.dag.jobs, self.workdir)),
        )
        sources = sorted(
            {
                *snakemake_sources(self.workflow, self.dag.jobs),
                *runtime_cached_sources(self.workflow),
            }
        )
        # Best effort, never failing the run: the programs of shell: commands and the conda
        # env files as the submit host sees them (kept only when the snapshot is new).
        rules = self.workflow.rules
        environment = environment_record(
            [(rule.name, rule.shellcmd) for rule in rules if rule.shellcmd],
            [
                (rule.name, path)
                for rule in rules
                if (path := conda_file(rule.conda_env, str(rule.basedir))) is not None
            ],
            root=self.code_root,
        )
        self.snapshot_taken = time.time()
        try:
            self.snapshot = pack(
                self.code_root,
                store,
                selection,
                explicit=sources,
                level=self.settings.level,
                allow_outside=True,
                environment_extra=environment,
            )
        except SnapshotError as e:
            raise WorkflowError(f"frozen: cannot snapshot {self.code_root}: {e}") from e
        # Snakemake parsed the workflow seconds before this snapshot; an edit in between
        # gives jobs code the main process never saw (a renamed rule, another env hash).
        for path in changed_since(sources, process_start_time()):
            self.warn(
                f"{path} changed after this run started: the snapshot may hold a "
                "version Snakemake did not parse; if that matters, stop and start the run again."
            )
        s = self.snapshot
        took = time.time() - self.snapshot_taken
        self.say(
            f"snapshot {s.id[:12]} of {self.code_root}: {s.files} files, "
            f"{size(s.bytes)} -> {size(s.archive_bytes)} "
            f"({'new' if s.created else 'already stored'}, {took:.2f} s: {s.archive})"
        )
        for warning in s.warnings:
            self.warn(f"{warning}")
        self.report_selection(sources)
        self.warn_missing_modules()
        if self.freezing and self.settings.view != "python":
            self.plan_view(selection.data, sources)

    def lease_snapshot(self) -> None:
        """Take the snapshot under this run's lease, held until shutdown: no gc (another
        run's --frozen-gc-*, snakemake-frozen gc) removes it meanwhile, nor any snapshot
        while this run packs (snapshot/leases.py)."""

        def pack(lost: str | None) -> str:
            if lost is not None:
                self.warn(
                    f"snapshot {lost[:12]} was removed from the store before this "
                    "run leased it; packing it again"
                )
            self.take_snapshot()
            assert self.snapshot is not None
            return self.snapshot.id

        try:
            self.lease = leases.hold(Store(self.workdir / STORE), self.run_id, pack)
        except SnapshotError as e:
            raise WorkflowError(f"frozen: {e}") from e

    def plan_view(self, data: tuple[Path, ...], sources: list[Path]) -> None:
        """The snapshot's folders that held only its files, which the job's view binds whole
        (see view_plan.py), and the files the workflow wrote while it was parsed (a
        `shell("date > stamp.txt")` in the Snakefile), which it leaves live: every job's
        parse writes them again. Both relative to the copy's root."""
        assert self.snapshot is not None
        prefix = self.snapshot.prefix
        depth = len(Path(prefix).parts) if prefix else 0
        live_root = self.code_root.parents[depth - 1] if depth else self.code_root
        files = {
            posixpath.normpath(f"{prefix}/{path}") if prefix else path: Path(
                os.path.normpath(self.code_root / path)
            )
            for path in self.snapshot_files
        }
        parsed = set(sources)
        # A parse writes within a second of the start: a small slack, for the clocks' ticks.
        written = changed_since(
            [p for p in files.values() if p not in parsed], process_start_time(), slack=0.05
        )
        written_set = set(written)
        self.left_live = tuple(sorted(k for k, p in files.items() if p in written_set))
        if self.left_live:
            self.say(
                f"{len(self.left_live)} file(s) of the code were written while the "
                f"workflow was parsed ({listing(list(self.left_live), limit=5)}): jobs see "
                "them live, as their own parse writes them again"
            )
        data_paths = [
            *data,
            *written,
            self.logdir,
            self.workdir / STORE,
            self.workdir / ".snakemake",
        ]
        self.whole = tuple(view_plan.whole_folders(live_root, list(files), data_paths))

    def report_selection(self, sources: list[Path]) -> None:
        """What the selection rules decided beyond git's view, so that a surprise shows."""
        s = self.snapshot
        assert s is not None
        if s.added_back:
            largest = sorted(s.added_back, key=lambda item: (-item[1], item[0]))
            shown = listing([f"{path} ({size / 1e3:.1f} kB)" for path, size in largest], 10)
            self.say(
                f"{len(s.added_back)} gitignored file(s) packed for their code suffix, "
                f"largest first: {shown}; leave some out with --frozen-exclude or .frozenignore"
            )
        if s.data_excluded:
            self.say(
                f"{s.data_excluded} output, log or benchmark file(s) of the workflow "
                "left out of the snapshot (data, not code)"
            )
        outside = [p for p in sources if not p.is_relative_to(self.code_root)]
        if outside:
            self.say(
                f"{len(outside)} workflow source(s) outside the code root packed too: "
                + listing([str(p) for p in outside])
            )

    def warn_missing_modules(self) -> None:
        """A module Snakemake imported from the code root that the snapshot lacks: the jobs
        would import the live file, or fail with ModuleNotFoundError on the node."""
        manifest = self.manifest
        files = self.snapshot_files
        patterns = [*manifest["selection"].get("frozenignore", []), *self.settings.exclude]
        for name, path in sorted(
            modules_imported_from(self.code_root, sys.modules.values()).items()
        ):
            relative = path.relative_to(self.code_root).as_posix()
            if relative in files:
                continue
            culprits = [
                p for p in patterns if (spec := compile_ignore([p])) and spec.match_file(relative)
            ]
            if culprits:
                why = (
                    f"left out by the pattern(s) {', '.join(map(repr, culprits))} "
                    "(--frozen-exclude or .frozenignore)"
                )
            elif looks_secret(relative):
                why = "left out as it looks like a credential (--frozen-allow-secrets packs it)"
            else:
                why = "not selected (hard-excluded folder or ignored)"
            self.warn(
                f"module {name} ({path}) was imported by the workflow but is not in "
                f"the snapshot: {why}. Jobs will import the live file or fail; remove the "
                "pattern or make sure the module is not needed by jobs."
            )

    @functools.cached_property
    def manifest(self) -> dict:
        assert self.snapshot is not None
        return read_manifest(self.snapshot.manifest)

    @functools.cached_property
    def snapshot_files(self) -> frozenset[str]:
        """The snapshot's paths, relative to the code root."""
        return frozenset(f["path"] for f in self.manifest["files"])

    def in_copy(self, path: Path) -> shellwords.ShellWord:
        """A live source file as a node-side path in the extracted copy (a source outside
        the code root lies above the copy of the code root, at the same relative place)."""
        return jobscript.frozen_path(os.path.relpath(path.resolve(), self.code_root))

    def place_snapshot(self, rule_dir: Path) -> Path:
        """The run's archive and manifest beside the rule's logs (``rule_copies.py``)."""
        assert self.snapshot is not None
        if self.rule_copies is None:
            s = self.snapshot
            self.rule_copies = RuleCopies(s.archive, s.manifest, s.id[:12])
        return self.rule_copies.place(rule_dir)

    # -- what the job runs ----------------------------------------------------------------

    @property
    def freezing(self) -> bool:
        return self.settings.mode == "freeze"

    def get_python_executable(self) -> str:
        python = shellwords.quote(super().get_python_executable())
        if not self.freezing:
            return python
        # -P: `python -m snakemake` would put the live workdir first on sys.path, ahead of
        # the frozen copy on PYTHONPATH. The job's log lists the reads of code-root files
        # its Snakemake served from the snapshot (jobsite/sitecustomize.py).
        return f"FROZEN_REPORT_READS=1 {python} -P"

    def get_snakefile(self) -> str:
        if not self.freezing:
            return super().get_snakefile()
        return self.in_copy(Path(self.workflow.main_snakefile))

    def additional_general_args(self) -> str:
        if not self.freezing:
            return ""
        # Each job its own source cache: Snakemake's shared one is keyed by absolute path and
        # would serve one snapshot's files to another.
        args = ['--runtime-source-cache-path "$FROZEN_JOB_DIR/source-cache"']
        configs, replace = job_config_files(self.workflow)
        if configs:
            # Given last, the frozen copies win over the live paths Snakemake passes.
            args.append("--configfiles " + " ".join(self.in_copy(c) for c in configs))
        if replace:
            args.append("--replace-workflow-config")
        return " ".join(args)

    def format_job_exec(self, job: JobExecutorInterface) -> str:
        """Snakemake's command for the job, every value quoted for bash.

        Snakemake's own formatting quotes values for Python and pastes "already quoted"
        ones raw (code runs on the node from a path or a wildcard value); within our call
        its value formatters quote for bash instead (`shellwords.bash_quoted_cli`, which says
        why that is safe). A value the job's Snakemake would not get back intact (a NUL, an
        option-like `-x`, a wildcard value `--target-jobs` mangles, a line break in a
        `--wait-for-files-file`) is refused here, before anything is submitted.
        """
        what = shellwords.describe(job.name, job_wildcards(job), group=job.is_group())
        try:
            with shellwords.bash_quoted_cli() as formatting:
                command = super().format_job_exec(job)
        except shellwords.RefusedValue as e:
            raise WorkflowError(f"frozen: {what} not submitted: {e}") from None
        except UnicodeEncodeError as e:  # Snakemake's own --wait-for-files-file
            raise WorkflowError(f"frozen: {what} not submitted: a path is not text: {e}") from None
        problem = shellwords.target_jobs_problem(job.get_target_spec())
        if problem is None and "--wait-for-files-file" in command:
            problem = shellwords.wait_files_problem([self.tmpdir, *job.get_wait_for_files()])
        if problem is None and formatting.calls == 0:
            problem = (
                "this version of snakemake-interface-executor-plugins no longer formats job "
                "arguments through format_cli_pos_arg, so they cannot be quoted for bash"
            )
        if problem is None and not command.isprintable():
            problem = (
                "its command holds a control character outside quotes (from --precommand, "
                f"or a value Snakemake passed unquoted): {shellwords.shown(command)}"
            )
        if problem is not None:
            raise WorkflowError(f"frozen: {what} not submitted: {problem}")
        return command

    def frozen_entry(self, archive: Path) -> jobscript.FrozenEntry | None:
        if not self.freezing or self.snapshot is None:
            return None
        return jobscript.FrozenEntry(
            python=sys.executable,
            archive=archive,
            archive_sha256=self.snapshot.archive_sha256,
            snapshot_id=self.snapshot.id,
            code_root=self.code_root,
            prefix=self.snapshot.prefix,
            scratch=self.settings.scratch,
            keep_extracted=self.settings.keep_extracted,
            stale_after=self.settings.scratch_max_age_hours * 3600,
            view=self.settings.view,
            whole=self.whole,
            live=self.left_live,
            per_job_copy=self.settings.copy == "per-job",
        )

    # -- submission -----------------------------------------------------------------------

    def run_jobs(self, jobs: list[JobExecutorInterface]) -> None:
        for job in jobs:
            self.run_job_pre(job)
        prepared = [p for job in jobs if (p := self.prepare(job)) is not None]
        alone, arrays = self.array_batches(prepared)
        for job in alone:
            self.submit_alone(job)
        for batch in arrays:
            self.submit_array(batch)
        self.write_journal()

    def run_job(self, job: JobExecutorInterface) -> None:
        prepared = self.prepare(job)
        if prepared is not None:
            self.submit_alone(prepared)
        self.write_journal()

    def prepare(self, job: JobExecutorInterface) -> "PreparedJob | None":
        """The job's log folder, the snapshot beside it and its batch script; a file-system
        error (a full disk, a quota) becomes this job's error, not the run's end."""
        wildcards = job_wildcards(job)
        if job.is_group():
            folder, comment, label = f"group_{job.name}", f"group_{job.name}", f"group {job.name}"
        else:
            folder = f"rule_{job.name}"
            comment = wildcards_comment(job.name, wildcards)
            label = f"rule {job.name}" + (f" ({comment})" if wildcards else "")
        rule_dir = self.logdir / folder
        job_dir = rule_dir / wildcards_dir(wildcards) if wildcards else rule_dir
        script = job_dir / f"job-{self.run_id[:8]}-{job.jobid}.sh"
        command = self.format_job_exec(job)
        if self.freezing and self.settings.view == "python":
            self.warn_shell_leaks(job)
        try:
            job_dir.mkdir(parents=True, exist_ok=True)
            archive = self.place_snapshot(rule_dir) if self.snapshot else None
            text = jobscript.render(
                f"{label}, run {self.run_id}"
                + (f", snapshot {self.snapshot.id}" if self.snapshot else ""),
                command,
                self.frozen_entry(archive) if archive else None,
                ended=self.ended_dir,
                single_rule=not job.is_group(),
            )
            write_executable(script, text)
        except OSError as e:
            self.fail_unsubmitted(job, f"frozen: {label} not submitted: {e}")
            return None
        return PreparedJob(job, label, comment, rule_dir, job_dir, script)

    def array_batches(
        self, prepared: list["PreparedJob"]
    ) -> tuple[list["PreparedJob"], list[list["PreparedJob"]]]:
        if not self.settings.array_jobs or self.settings.submit != "sbatch":
            return prepared, []
        rules = arrays.array_rules(self.settings.array_jobs)

        def key(p: PreparedJob) -> tuple | None:
            if p.job.is_group() or (rules is not None and p.job.name not in rules):
                return None
            # Tasks share one set of sbatch options: jobs of a rule whose resources differ
            # (by wildcard, by attempt) go into separate arrays.
            return (p.job.name, p.job.threads, repr(sorted(job_resources(p.job).items())))

        return arrays.batches(prepared, key, self.array_limit)

    @functools.cached_property
    def array_limit(self) -> int:
        limit = self.settings.array_limit
        maximum = max_array_size()
        if maximum is not None and maximum < limit:
            self.say(
                f"the cluster's MaxArraySize is {maximum}: arrays of at most {maximum} "
                f"tasks (--frozen-array-limit {limit})"
            )
            limit = maximum
        return max(limit, 1)

    def comment(self, comment: str, token: str) -> str:
        """The job's comment: its rule and wildcards (as the stock plugin writes them), the
        snapshot it runs (so that sacct alone tells which code ran) and the submission."""
        snapshot = f" snapshot={self.snapshot.id[:12]}" if self.snapshot else ""
        return f"{comment}{snapshot} {token}"

    def submit(self, spec: JobSpec, token: str, what: str, jobs: list[JobExecutorInterface]):
        """Submit; on failure each job gets the error and None is returned."""
        try:
            job_id, warnings = self.backend.submit(spec, token)
        except (SlurmSubmitError, SbatchError) as e:
            hint = self.threads_hint(jobs[0], e)
            for job in jobs:
                self.fail_unsubmitted(job, f"frozen: submitting {what} failed: {e}{hint}")
            return None
        for warning in warnings:
            if (jobs[0].name, warning) not in self.warned:
                self.warned.add((jobs[0].name, warning))
                kind = "group" if jobs[0].is_group() else "rule"
                self.warn(f"{kind} {jobs[0].name}: {warning}")
        return job_id

    def submit_alone(self, p: "PreparedJob") -> None:
        token = submission_token()
        spec = JobSpec(
            job_label=p.label,
            job_name=self.run_id,
            comment=self.comment(p.comment, token),
            # The run's tag too: local job ids restart every run, and SLURM's wrap around
            # or restart on a new cluster; no two jobs of two runs may share a log.
            log_path=p.job_dir / f"%j-{self.run_id[:8]}.log",
            workdir=self.workdir,
            script=p.script,
            resources=job_resources(p.job),
            threads=p.job.threads,
        )
        job_id = self.submit(spec, token, p.label, [p.job])
        if job_id is not None:
            self.track(p.job, job_id, spec.log_file(job_id))

    def submit_array(self, batch: list["PreparedJob"]) -> None:
        first = batch[0]
        rule = first.job.name
        label = f"rule {rule} (array of {len(batch)} jobs)"
        script = first.rule_dir / f"array-{self.run_id[:8]}-{first.job.jobid}.sh"
        try:
            text = arrays.render(f"{label}, run {self.run_id}", [p.script for p in batch])
            write_executable(script, text)
        except OSError as e:
            for p in batch:
                self.fail_unsubmitted(p.job, f"frozen: {label} not submitted: {e}")
            return
        token = submission_token()
        spec = JobSpec(
            job_label=label,
            job_name=self.run_id,
            comment=self.comment(f"rule_{rule}_array", token),
            log_path=first.rule_dir / f"%A_%a-{self.run_id[:8]}.log",
            workdir=self.workdir,
            script=script,
            resources=job_resources(first.job),
            threads=first.job.threads,
            array=f"0-{len(batch) - 1}",
        )
        array_id = self.submit(spec, token, label, [p.job for p in batch])
        if array_id is None:
            return
        for task, p in enumerate(batch):
            self.track(p.job, arrays.task_id(array_id, task), spec.task_log_file(array_id, task))

    def track(self, job: JobExecutorInterface, job_id: str, log: Path) -> None:
        self.logger.info(f"Job {job.jobid} submitted as {job_id} (log: {log})")
        self.note(
            journal.submitted(
                run=self.run_id,
                rule=job.name,
                wildcards=job_wildcards(job),
                outputs=job_outputs(job),
                job=job.jobid,
                slurm_id=job_id,
                snapshot=self.snapshot.id if self.snapshot else None,
                log=log,
                workdir=self.workdir,
                mode=self.settings.mode,
                inputs=journal.input_facts(job_inputs(job), self.workdir),
            )
        )
        submitted = SubmittedJobInfo(job, external_jobid=job_id, aux={"log": log})
        self.unfinished[job_id] = submitted
        self.report_job_submission(submitted)

    def fail_unsubmitted(self, job: JobExecutorInterface, message: str) -> None:
        if job.is_group():
            # Snakemake's error report of a group job drops the message.
            self.logger.error(message)
        self.report_job_error(SubmittedJobInfo(job), msg=message + "\n")

    @staticmethod
    def threads_hint(job: JobExecutorInterface, error: Exception) -> str:
        """sbatch refuses more CPUs per task than a node has; say how to ask for fewer."""
        text = str(error)
        if "node configuration is not available" not in text and "CPU count" not in text:
            return ""
        return (
            f"\n    The job asks for {job.threads} thread(s) per task; if no node has that many "
            "CPUs, cap them with --max-threads N, or per rule with --set-threads RULE=N "
            "(or the cpus_per_task resource)."
        )

    def warn_shell_leaks(self, job: JobExecutorInterface) -> None:
        """Code reached through a workdir-relative path in `shell:` comes from the live tree."""
        if job.is_group() or job.name in self.checked_rules:
            return
        self.checked_rules.add(job.name)
        shellcmd = getattr(job.rule, "shellcmd", None)
        if not shellcmd:
            return
        for path in shell_leaks(shellcmd, self.workdir, self.code_root, self.snapshot_files):
            self.warn(
                f"rule {job.name}: its shell command names {path} relative to the "
                "working directory, so the job would use the LIVE file, not the snapshot's "
                "(only reads made by Python are served from the snapshot). "
                f'Write "{{workflow.basedir}}/..." or "$FROZEN_DIR/..." instead.'
            )

    # -- status and cancellation ----------------------------------------------------------

    async def check_active_jobs(
        self, active_jobs: list[SubmittedJobInfo]
    ) -> AsyncGenerator[SubmittedJobInfo, None]:
        if not active_jobs:
            return
        self.next_seconds_between_status_checks = TICK
        if not self.query_due():
            for job_info in active_jobs:
                yield job_info
            return
        try:
            async with self.status_rate_limiter:
                ends = await self.backend.states([j.external_jobid for j in active_jobs])
        except SlurmCommandError as e:
            # The controller may be restarting; the jobs are still there, ask again later.
            self.warn(f"status query failed, will retry: {e}")
            ends = {}
        self.last_query = time.monotonic()
        for job_info in active_jobs:
            end = ends.get(job_info.external_jobid)
            if end is None:
                yield job_info
                continue
            self.forget(job_info.external_jobid)
            view, detail = job_view(job_info.aux["log"]) if self.freezing else ("", "")
            self.views.add(view, detail)
            success = end.outcome is Outcome.SUCCESS
            self.note(
                journal.ended(
                    run=self.run_id,
                    slurm_id=job_info.external_jobid,
                    outcome="success" if success else "failed",
                    state=end.state,
                    node=end.node,
                    view=view,
                    # What `snakemake-frozen reproduce` compares a rerun with.
                    outputs=journal.output_facts(job_outputs(job_info.job), self.workdir)
                    if success
                    else None,
                )
            )
            if end.outcome is Outcome.SUCCESS:
                self.report_job_success(job_info)
            else:
                log = job_info.aux["log"]
                message = f"{end.message}\n{self.backend.log_label}: {log}\n"
                self.report_job_error(job_info, msg=message, aux_logs=[str(log)])
        self.poll_wait = self.poll_interval.next(finished=bool(ends))
        self.write_journal()

    # -- the journal ----------------------------------------------------------------------

    def note(self, record: dict) -> None:
        self.journal_records.append(record)

    def write_journal(self) -> None:
        """The records of this step, in one locked append: what ran stays answerable
        (`snakemake-frozen which`); failing to write it fails no job."""
        if not self.journal_records:
            return
        try:
            journal.append(self.journal_path, self.journal_records)
        except OSError as e:
            self.warn(
                f"cannot write the journal {self.journal_path} ({e}); "
                f"{len(self.journal_records)} record(s) of what ran are lost"
            )
        self.journal_records = []

    def query_due(self) -> bool:
        """Whether to ask SLURM now: at the poll interval, and within a second of a job
        saying it ended (at most once a second, so that a thousand ending jobs cost no
        more than one query a second)."""
        if not self.backend.polled:
            return True
        since = time.monotonic() - self.last_query
        if since >= self.poll_wait:
            return True
        if self.ended_dir is not None and since >= 1.0:
            with contextlib.suppress(OSError):  # a hint only: the poll interval still applies
                self.ended |= set(os.listdir(self.ended_dir)) & self.unfinished.keys()
            return bool(self.ended)
        return False

    def forget(self, job_id: str) -> None:
        del self.unfinished[job_id]
        if job_id in self.ended:
            self.ended.discard(job_id)
            assert self.ended_dir is not None
            with contextlib.suppress(OSError):
                os.unlink(self.ended_dir / job_id)

    def shutdown(self) -> None:
        super().shutdown()
        self.write_journal()
        self.collect_garbage()  # while the lease is held: this run's snapshot is kept
        if self.lease is not None:
            self.lease.release()
        if self.ended_dir is not None:
            shutil.rmtree(self.ended_dir, ignore_errors=True)
        if self.backend.status_calls:
            minutes = max(time.monotonic() - self.started, 1.0) / 60
            self.say(
                f"{self.backend.status_calls} status queries in {minutes:.1f} minutes "
                f"({self.backend.status_calls / minutes:.1f} per minute)"
            )
        if self.snapshot is None:
            return
        if self.freezing:
            for line in self.views.summary():
                self.logger.warning(line)
        edited = edited_since(self.manifest, self.snapshot_taken)
        if not edited:
            return
        what = f"{len(edited)} file(s) of the code were edited during this run"
        if self.freezing:
            self.say(
                f"{what} ({listing(edited, limit=10)}); the jobs ran the versions of "
                f"snapshot {self.snapshot.id[:12]}."
            )
        else:  # archive mode: the snapshot is only a record, the jobs read the live files
            self.warn(
                f"{what} ({listing(edited, limit=10)}); in --frozen-mode archive the "
                "jobs ran the live files, so jobs that started after an edit may have run code "
                f"that snapshot {self.snapshot.id[:12]} does not hold."
            )

    def collect_garbage(self) -> None:
        """--frozen-gc-*: the policy of `snakemake-frozen gc`, once the run's jobs are over."""
        keep_last = self.settings.gc_keep_last or None
        older_than = self.settings.gc_older_than_days or None
        if keep_last is None and older_than is None:
            return
        from snakemake_executor_plugin_frozen.record import gc
        from snakemake_executor_plugin_frozen.record.errors import RecordError

        try:
            report = gc.collect(self.workdir, self.logdir, keep_last, older_than, dry_run=False)
        except (RecordError, OSError) as e:
            self.warn(f"--frozen-gc-*: nothing removed: {e}")
            return
        for note in report.notes:
            self.say(f"gc: {note}")
        if report.snapshots or report.files:
            self.say(
                f"gc removed {len(report.snapshots)} snapshot(s) and "
                f"{len(report.files)} file(s) of {len(report.runs)} earlier run(s), "
                f"{report.bytes / 1e6:.1f} MB freed"
            )

    def cancel_jobs(self, active_jobs: list[SubmittedJobInfo]) -> None:
        job_ids = list(dict.fromkeys([j.external_jobid for j in active_jobs] + [*self.unfinished]))
        if not job_ids:
            return
        try:
            self.backend.cancel(job_ids)
        except SlurmCommandError as e:
            self.logger.error(
                f"frozen: could not cancel job(s) {', '.join(job_ids)}, which may still run; "
                f"cancel them by hand (scancel {' '.join(job_ids)}): {e}"
            )


@dataclass(frozen=True)
class PreparedJob:
    """A job whose batch script is written, ready to be submitted alone or in an array."""

    job: JobExecutorInterface
    label: str  # for messages: "rule align (rule_align_wildcards_a)"
    comment: str  # rule and wildcards, as the stock plugin's --comment
    rule_dir: Path
    job_dir: Path
    script: Path


def submission_token() -> str:
    return f"submission={uuid.uuid4().hex[:16]}"


def job_wildcards(job: JobExecutorInterface) -> dict[str, str]:
    # `wildcards` is not in the stable job interface (group jobs have none).
    wildcards = getattr(job, "wildcards", None)
    return {k: str(v) for k, v in wildcards.items()} if wildcards else {}


def job_outputs(job: JobExecutorInterface) -> list[str]:
    """The job's outputs as Snakemake names them; a group job's are those of its jobs."""
    # `output` and a group's `jobs` are not in the stable job interface.
    jobs = getattr(job, "jobs", None) if job.is_group() else [job]
    return [str(path) for member in jobs or () for path in getattr(member, "output", ())]


def job_inputs(job: JobExecutorInterface) -> list[str]:
    """The job's inputs as Snakemake names them; a group job's are those it reads from
    outside the group."""
    # `input` is not in the stable job interface.
    return [str(path) for path in getattr(job, "input", ())]


def job_resources(job: JobExecutorInterface) -> dict[str, Any]:
    return dict(job.resources.items())


def write_executable(path: Path, text: str) -> None:
    """The batch script, for its owner only: it names the job's paths and wildcard values."""
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o700)
    with open(fd, "w", encoding="utf-8", errors="surrogateescape") as script:
        os.fchmod(script.fileno(), 0o700)  # whatever the umask or an older file said
        script.write(text)
    os.replace(temporary, path)
