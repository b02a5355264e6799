"""``gc``: remove what old runs left behind, never what a pending or running job needs.

What is removed: snapshots (the store's archive and record, and their rule-log copies
``<logdir>/<rule folder>/code-<id12>.*``), and of finished runs their SLURM logs (named in
the journal), batch scripts (``job-<run8>-*.sh``, ``array-<run8>-*.sh``), their
``.ended/<run>`` folder and their journal records; folders left empty in the log folder;
store temporaries of packs that died more than a day ago. Logs of runs the journal does not
know (from before it existed) are left alone.

Nothing a record names is trusted as a path: every file to remove must lie under the log folder
(or the store, for its temporaries) once the folders on its way are resolved (``confine``); a
SLURM log must be a file or a link (never a folder); a rule-log copy's record must name a full
id. What fails is refused with a note naming the record, and left untouched.

The policy, judged by *last use*: a run's is its latest journal record; a snapshot's the
latest last use of a run that used it, else when it was created.

- ``keep_last`` N (1 or more): the N most recently used snapshots are kept, and so is
  everything used since the N-th of them was last used.
- ``older_than_days`` D: what was last used more than D days ago is removed.
- Both: only what is beyond both is removed. Neither: nothing is.
- Always kept: every run with a job SLURM lists as pending (held jobs too) or running, or
  whose unfinished jobs SLURM cannot be asked about (SLURM unreachable, local jobs); runs
  whose last record is younger than GRACE (a run between two batches of jobs, whose every
  job has ended for the moment); snapshots created within GRACE (a run packing right now);
  and every snapshot a kept run used. The store's stat cache is left as it is: a snapshot
  it remembers that is gone only costs the next pack a lookup.
- Always kept, whatever the journal says: the snapshot and the run of every lease a
  running Snakemake process holds (``snapshot/leases.py``), and every snapshot when the
  leases cannot be judged (a run packing right now, too). The leases are read, and
  everything is removed, under the store's lock: a run starting meanwhile either holds its
  lease before gc looks, or waits for gc to finish.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from snakemake_executor_plugin_frozen import journal
from snakemake_executor_plugin_frozen.shellwords import visible
from snakemake_executor_plugin_frozen.snapshot import leases
from snakemake_executor_plugin_frozen.snapshot.store import Store

from .activity import Activity, RunState, survey
from .confine import foreign_link, within
from .errors import RecordError
from .gc_files import (
    Files,
    copy_id,
    inode_bytes,
    marked,
    prune_empty,
    stale_temporaries,
    unlink,
)
from .history import History, Job, Run
from .ids import SHORT
from .layout import Layout, ended_folder
from .snapshots import SnapshotStore
from .table import parse_time, size

GRACE = 600.0  # seconds
RUN_TAG = 8  # characters of the run id in batch script names


@dataclass
class GcReport:
    dry_run: bool
    keep_last: int | None
    older_than_days: float | None
    snapshots: list[str] = field(default_factory=list)  # removed (or, dry run, to remove)
    runs: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    bytes: int = 0  # freed: of files whose every hard link is removed
    journal_lines: int = 0
    kept_for_jobs: dict[str, str] = field(default_factory=dict)  # run -> why
    slurm: str = "not needed"
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Use:
    last: float  # the last use of a run of it, else its creation
    created: float | None  # None: not in the store (rule-log copies only)
    copies: list[Path]


def _cutoff(uses: dict[str, float], keep_last: int | None, older_than_days: float | None) -> float:
    """The time before which a last use is beyond the policy (-inf: nothing is)."""
    cutoffs = []
    if keep_last is not None:
        ranked = sorted(uses.values(), reverse=True)
        cutoffs.append(ranked[keep_last - 1] if len(ranked) >= keep_last else float("-inf"))
    if older_than_days is not None:
        cutoffs.append(time.time() - older_than_days * 86400)
    return min(cutoffs) if cutoffs else float("-inf")


def _why_kept(state: RunState) -> str:
    if state.unknown:
        return f"{state.unknown} unfinished job(s) SLURM could not be asked about"
    return f"{state.pending} pending, {state.running} running"


class _Plan:
    def __init__(self, layout: Layout, report: GcReport) -> None:
        self.layout = layout
        self.report = report
        self.store = SnapshotStore(layout.store)
        self.history = History.read(layout.journal)
        self.roots = self._log_roots()
        self.files = Files.scan([root for root in self.roots if root.is_dir()])
        self.now = time.time()

    def snapshot_uses(self) -> dict[str, _Use]:
        """Every snapshot with files to remove (in the store, or rule-log copies only)."""
        usage = self.history.by_snapshot()
        created = {snapshot_id: self.created(snapshot_id) for snapshot_id in self.store.ids()}
        known = created.keys() | usage.keys()
        copies: dict[str, list[Path]] = {}
        for short, paths in self.files.copies.items():
            matches = [i for i in known if i.startswith(short)]
            full = matches[0] if len(matches) == 1 else copy_id(paths)
            if full is None or not full.startswith(short):
                self.report.notes.append(f"left alone: rule-log copies {short} of unknown id")
                continue
            copies.setdefault(full, []).extend(paths)
        uses = {}
        for snapshot_id in created.keys() | copies.keys():
            runs = usage.get(snapshot_id, [])
            made = created.get(snapshot_id)
            last = max(run.last for run in runs) if runs else (made or 0.0)
            uses[snapshot_id] = _Use(last, made, copies.get(snapshot_id, []))
        return uses

    def created(self, snapshot_id: str) -> float:
        """When a stored snapshot was made: its manifest's time, else its record's mtime."""
        try:
            moment = parse_time(self.store.load(snapshot_id).manifest.created)
        except RecordError:
            moment = None
        if moment is None:
            try:
                return self.store.files.record_path(snapshot_id).stat().st_mtime
            except OSError:
                return self.now
        return moment

    def kept_runs(self, activity: Activity, cutoff: float, in_use: leases.InUse) -> set[str]:
        kept = set()
        for run in self.history.runs.values():
            state = activity.of(run.id)
            if state.active:
                kept.add(run.id)
                self.report.kept_for_jobs[run.id] = _why_kept(state)
            elif run.last >= cutoff:
                kept.add(run.id)
            elif run.id in in_use.runs:
                kept.add(run.id)
                self.report.notes.append(f"kept run {run.id}: it is going (its lease is held)")
            elif run.last > self.now - GRACE:
                kept.add(run.id)
                self.report.notes.append(
                    f"kept run {run.id}: it recorded something in the last {GRACE / 60:g} "
                    "minutes, so it may still be going"
                )
        return kept

    def _log_roots(self) -> list[Path]:
        """The log folder, then every other one a run record names (the setting moved the
        logs since) that is a marked log folder of this plugin reached through no other
        user's link: what runs wrote there is theirs to remove too."""
        roots = [self.layout.logdir]
        for run in self.history.runs.values():
            named = (run.start or {}).get("logdir")
            if not isinstance(named, str) or Path(named) in roots:
                continue
            folder = Path(named)
            if marked(folder) and not foreign_link(folder):
                roots.append(folder)
            elif folder.exists():
                self.report.notes.append(
                    f"left alone: {folder}, the log folder of run {run.id}, is not marked as "
                    "one of this plugin's (or is reached through another user's link)"
                )
        return roots

    def within_roots(self, path: object) -> Path | None:
        if not isinstance(path, str | Path):
            return None
        return next((w for root in self.roots if (w := within(path, root))), None)

    def refuse(self, path: object, whose: str, why: str) -> None:
        self.report.notes.append(f"refused: {path}, named by {whose}, {why}; left it untouched")

    def confined(self, path: object, root: Path | None, whose: str) -> Path | None:
        """``path`` resolved if it lies under ``root`` (None: a log folder of ``roots``),
        else None, and a note says why."""
        if root is None:
            where = self.within_roots(path)
        else:
            where = within(path, root) if isinstance(path, str | Path) else None
        if where is None:
            self.refuse(path, whose, f"lies outside {root or self.layout.logdir}")
        return where

    def log_file(self, job: Job) -> Path | None:
        """The job's SLURM log, if the record names one that is safe to remove."""
        whose = f"the journal's record of run {job.run} (SLURM job {job.slurm_id})"
        where = self.confined(job.record["log"], None, whose)
        if where is not None and os.path.isdir(where) and not os.path.islink(where):
            self.refuse(where, whose, "is a folder, not a log file")
            return None
        return where

    def run_files(self, run: Run, kept_tags: set[str]) -> list[Path]:
        paths = [
            where
            for job in run.jobs
            if job.record.get("log") and (where := self.log_file(job)) is not None
        ]
        tag = run.id[:RUN_TAG]
        if tag not in kept_tags:  # a kept run with the same tag keeps the scripts
            paths += self.files.scripts.get(tag, [])
        return paths


@dataclass
class _Removal:
    snapshots: list[str]
    runs: list[str]
    store_files: list[Path]  # removed through the store, under its lock
    other_files: list[Path]  # rule-log copies, runs' files, stale temporaries
    folders: set[Path]  # of other_files, those removed whole: .ended/<run>, temporaries


def _decide(
    plan: _Plan,
    activity: Activity,
    keep_last: int | None,
    older: float | None,
    in_use: leases.InUse,
) -> _Removal:
    uses = plan.snapshot_uses()
    cutoff = _cutoff({s: use.last for s, use in uses.items()}, keep_last, older)
    kept = plan.kept_runs(activity, cutoff, in_use)
    needed = {s for run_id in kept for s in plan.history.runs[run_id].snapshots}
    beyond = {s for s, use in uses.items() if use.last < cutoff and s not in needed}
    young = {s for s in beyond if (uses[s].created or 0.0) > plan.now - GRACE}
    if young:
        plan.report.notes.append(
            f"kept {len(young)} snapshot(s) made in the last {GRACE / 60:g} minutes: a run "
            "may be starting with them"
        )
    # Also the rule-log copies of a leased snapshot gone from the store: its run's jobs use them.
    leased = {s for s in beyond - young if in_use.protects(s)}
    plan.report.notes += [f"kept snapshot {s[:SHORT]}: {in_use.why(s)}" for s in sorted(leased)]
    snapshots = sorted(beyond - young - leased)
    runs = [r for r in plan.history.runs if r not in kept]
    kept_tags = {run_id[:RUN_TAG] for run_id in kept}
    store = plan.layout.store
    other = [p for s in snapshots for p in uses[s].copies]
    other += [p for r in runs for p in plan.run_files(plan.history.runs[r], kept_tags)]
    other = [w for p in other if (w := plan.confined(p, None, "the log folder's scan"))]
    folders = [
        w
        for r in runs
        for root in plan.roots
        if os.path.lexists(ended_folder(root, r))
        and (w := plan.confined(ended_folder(root, r), root, f"the journal's run {r}"))
    ]
    folders += [
        w
        for p in stale_temporaries(store, plan.now)
        if (w := plan.confined(p, store, "the store's scan"))
    ]
    other += folders
    other = _not_kept(plan, other, _kept_files(plan, uses, set(snapshots), kept, kept_tags))
    stored = [
        p
        for s in snapshots
        for p in (plan.store.files.record_path(s), plan.store.files.archive_path(s))
    ]
    return _Removal(
        snapshots,
        runs,
        [p for p in stored if os.path.lexists(p)],
        [p for p in other if os.path.lexists(p)],
        set(folders),
    )


def _kept_files(
    plan: _Plan, uses: dict[str, _Use], removed: set[str], kept: set[str], kept_tags: set[str]
) -> dict[Path, str]:
    """The files, resolved as ``within`` finds them, that what gc keeps owns: the rule-log
    copies of kept snapshots, the logs and batch scripts of kept runs; and which owns each."""
    owned: dict[Path, str] = {}

    def own(path: object, owner: str) -> None:
        where = plan.within_roots(path)
        if where is not None:
            owned.setdefault(where, owner)

    for snapshot_id in uses.keys() - removed:
        for path in uses[snapshot_id].copies:
            own(path, f"the kept snapshot {snapshot_id[:SHORT]}")
    for run_id in kept:
        for job in plan.history.runs[run_id].jobs:
            own(job.record.get("log"), f"the kept run {run_id}")
    for tag in kept_tags:
        for path in plan.files.scripts.get(tag, []):
            own(path, f"a kept run {tag}...")
    return owned


def _not_kept(plan: _Plan, paths: list[Path], owned: dict[Path, str]) -> list[Path]:
    """``paths`` without those something kept owns too (a log path two runs' records name,
    as a forged record does): only what belongs solely to what is removed goes."""
    kept = []
    for path in paths:
        owner = owned.get(path)
        if owner is None:
            kept.append(path)
        else:
            plan.report.notes.append(f"kept: {path}, which {owner} owns too")
    return kept


def _remove(plan: _Plan, removal: _Removal, store: Store) -> int:
    """Remove what ``removal`` names (store entries through ``store``, whose lock ``judge``
    holds); returns the journal lines dropped."""
    for snapshot_id in removal.snapshots:
        store.discard(snapshot_id)  # record first
    for path in removal.other_files:
        unlink(path, removal.folders)
    for root in plan.roots:
        logdir = Path(os.path.realpath(root))  # other_files are resolved
        prune_empty({p.parent for p in removal.other_files}, logdir)
    gone = set(removal.runs)
    return journal.rewrite(plan.layout.journal, lambda record: record["run"] not in gone)


def collect(
    workdir: Path,
    logdir: Path,
    keep_last: int | None,
    older_than_days: float | None,
    dry_run: bool,
) -> GcReport:
    """Remove (``dry_run``: only tell) what the policy (module docstring) does not keep.
    ``logdir``: relative to ``workdir`` unless absolute. Never raises for SLURM trouble
    (then the runs with unfinished jobs are kept, and a note says so)."""
    if keep_last is not None and keep_last < 1:
        # 0 would remove every snapshot here, where the setting frozen-gc-keep-last 0 means
        # "off": one name, one meaning.
        raise RecordError(
            f"--keep-last must be 1 or more, not {keep_last} (to remove everything no run "
            "needs: --older-than 0)"
        )
    if older_than_days is not None and not older_than_days >= 0:
        raise RecordError(f"--older-than must be 0 days or more, not {older_than_days}")
    report = GcReport(dry_run, keep_last, older_than_days)
    if keep_last is None and older_than_days is None:
        return report
    layout = Layout.of(workdir, logdir)
    for root in (layout.logdir, layout.store):
        if why := foreign_link(root):
            raise RecordError(
                f"nothing removed: {why}, so {root} may lead anywhere; check it (ls -l), "
                "replace it by a folder of yours, and run gc again"
            )
    plan = _Plan(layout, report)
    activity = survey(plan.history)
    report.slurm = activity.slurm
    unknown = [run for run, state in activity.runs.items() if state.unknown]
    if unknown:
        asked = activity.slurm in ("asked", "not needed")
        why = "jobs ran without SLURM" if asked else activity.slurm
        report.notes.append(
            f"the state of unfinished jobs of {len(unknown)} run(s) is unknown ({why}): "
            "everything they use is kept"
        )
    # Under the store's lock until all is removed: what a run leases is never removed, and
    # a run starting meanwhile waits to take its lease, then packs again what is gone.
    with leases.judge(plan.store.files, clean=not dry_run) as in_use:
        report.notes += in_use.notes
        removal = _decide(plan, activity, keep_last, older_than_days, in_use)
        every = [*removal.store_files, *removal.other_files]
        report.snapshots, report.runs = removal.snapshots, removal.runs
        report.files = [str(p) for p in every]
        report.bytes = inode_bytes(every)
        if not dry_run:
            report.journal_lines = _remove(plan, removal, in_use.store)
    return report


def as_json(report: GcReport) -> dict:
    return {
        "dry_run": report.dry_run,
        "keep_last": report.keep_last,
        "older_than_days": report.older_than_days,
        "snapshots": report.snapshots,
        "runs": report.runs,
        "files": len(report.files),
        "paths": report.files,
        "bytes": report.bytes,
        "journal_lines": report.journal_lines,
        "kept_for_jobs": report.kept_for_jobs,
        "slurm": report.slurm,
        "notes": report.notes,
    }


def as_text(report: GcReport) -> str:
    lines = [f"note: {visible(note)}" for note in report.notes]
    lines += [f"kept run {run}: {visible(why)}" for run, why in report.kept_for_jobs.items()]
    verb = "would remove" if report.dry_run else "removed"
    lines += [f"{verb} snapshot {s[:SHORT]}" for s in report.snapshots]
    lines.append(
        f"{verb} {len(report.snapshots)} snapshot(s), {len(report.runs)} run(s): "
        f"{len(report.files)} file(s), {size(report.bytes)} freed"
        + ("" if report.dry_run else f", {report.journal_lines} journal line(s)")
    )
    return "\n".join(lines)
