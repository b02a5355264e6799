"""The run's snapshot: packed once as the run starts, under the run's lease, and what the
jobs need of it (where its files lie in the node's copy, what the job's view binds whole or
leaves live); told to the user as it is taken and, at the end, which files were edited."""

import functools
import os
import posixpath
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from snakemake_interface_common.exceptions import WorkflowError

from snakemake_executor_plugin_frozen import jobscript, shellwords, view_plan
from snakemake_executor_plugin_frozen.programs import environment_record
from snakemake_executor_plugin_frozen.record.layout import Layout
from snakemake_executor_plugin_frozen.record.table import size
from snakemake_executor_plugin_frozen.rule_copies import RuleCopies
from snakemake_executor_plugin_frozen.settings import ExecutorSettings
from snakemake_executor_plugin_frozen.snapshot import (
    Manifest,
    PackResult,
    SelectionSettings,
    SnapshotError,
    leases,
    pack,
    read_manifest,
)
from snakemake_executor_plugin_frozen.snapshot.drift import edited_since
from snakemake_executor_plugin_frozen.snapshot.rules import compile_ignore, listing, looks_secret
from snakemake_executor_plugin_frozen.snapshot.store import Store
from snakemake_executor_plugin_frozen.voice import Voice
from snakemake_executor_plugin_frozen.workflow_sources import (
    WorkflowCode,
    changed_since,
    code_root_for,
    modules_imported_from,
    process_start_time,
)


@dataclass
class RunSnapshot:
    packed: PackResult
    code_root: Path  # the live tree it was taken from
    taken: float  # when (epoch seconds): files edited later were not packed
    whole: tuple[str, ...] = ()  # folders the job's view binds whole
    left_live: tuple[str, ...] = ()  # files the job's view leaves live

    @property
    def id(self) -> str:
        return self.packed.id

    @functools.cached_property
    def manifest(self) -> Manifest:
        return read_manifest(self.packed.manifest)

    @functools.cached_property
    def files(self) -> frozenset[str]:
        """The snapshot's paths, relative to the code root."""
        return frozenset(f.path for f in self.manifest.files)

    @functools.cached_property
    def rule_copies(self) -> RuleCopies:
        """The snapshot's archive and manifest beside each rule's logs (rule_copies.py)."""
        return RuleCopies(self.packed.archive, self.packed.manifest, self.id[:12])

    def in_copy(self, path: Path) -> shellwords.ShellWord:
        """A live source file as a node-side path in the extracted copy (a source outside
        the code root lies above the copy of the code root, at the same relative place)."""
        return jobscript.frozen_path(os.path.relpath(path.resolve(), self.code_root))

    def entry(self, archive: Path, settings: ExecutorSettings) -> jobscript.FrozenEntry:
        """How a job reaches the snapshot's copy ``archive`` on the node."""
        return jobscript.FrozenEntry(
            python=sys.executable,
            archive=archive,
            archive_sha256=self.packed.archive_sha256,
            snapshot_id=self.id,
            code_root=self.code_root,
            prefix=self.packed.prefix,
            scratch=settings.scratch,
            keep_extracted=settings.keep_extracted,
            stale_after=settings.scratch_max_age_hours * 3600,
            view=settings.view,
            whole=self.whole,
            live=self.left_live,
            per_job_copy=settings.copy == "per-job",
        )

    def tell_edited(self, voice: Voice, freezing: bool) -> None:
        """At the run's end: the snapshot's files edited since it was taken."""
        edited = edited_since(self.manifest, self.taken)
        if not edited:
            return
        what = f"{len(edited)} file(s) of the code were edited during this run"
        shown = listing(edited, limit=10)
        if freezing:
            voice.say(f"{what} ({shown}); the jobs ran the versions of snapshot {self.id[:12]}.")
        else:  # archive mode: the snapshot is only a record, the jobs read the live files
            voice.warn(
                f"{what} ({shown}); in --frozen-mode archive the jobs ran the live files, so "
                "jobs that started after an edit may have run code that snapshot "
                f"{self.id[:12]} does not hold."
            )


def take(
    code: WorkflowCode,
    layout: Layout,
    settings: ExecutorSettings,
    run_id: str,
    voice: Voice,
) -> tuple[RunSnapshot, leases.Lease]:
    """The snapshot, taken under the run's lease, held until the run releases it: no gc
    (another run's --frozen-gc-*, snakemake-frozen gc) removes it meanwhile, nor any snapshot
    while this run packs (snapshot/leases.py)."""
    code_root = code_root_for(code.snakefile, settings.code_root)
    selection = SelectionSettings(
        exclude_folders=tuple(settings.exclude_folders),
        code_suffixes=tuple(settings.code_suffixes),
        exclude=tuple(settings.exclude),
        allow_secrets=tuple(settings.allow_secrets),
        option_prefix="--frozen-",
        max_size_mb=settings.max_size_mb,
        skip_size_check=settings.skip_size_check,
        extra_excluded_dirs=(layout.logdir, layout.store),
        data=code.outputs,
    )
    # Best effort, never failing the run: the programs of shell: commands and the conda
    # env files as the submit host sees them (kept only when the snapshot is new).
    environment = environment_record(code.shell_commands, code.conda_files, root=code_root)
    taken: list[RunSnapshot] = []

    def pack_snapshot(lost: str | None) -> str:
        if lost is not None:
            voice.warn(
                f"snapshot {lost[:12]} was removed from the store before this run leased "
                "it; packing it again"
            )
        started = time.time()
        try:
            packed = pack(
                code_root,
                layout.store,
                selection,
                explicit=list(code.sources),
                level=settings.level,
                allow_outside=True,
                environment_extra=environment,
            )
        except SnapshotError as e:
            raise WorkflowError(f"frozen: cannot snapshot {code_root}: {e}") from e
        taken.append(RunSnapshot(packed, code_root, started))
        _tell_taken(taken[-1], code, voice, time.time() - started)
        return packed.id

    try:
        lease = leases.hold(Store(layout.store), run_id, pack_snapshot)
    except SnapshotError as e:
        raise WorkflowError(f"frozen: {e}") from e
    snapshot = taken[-1]
    _warn_missing_modules(snapshot, settings.exclude, voice)
    if settings.mode == "freeze" and settings.view != "python":
        _plan_view(snapshot, layout, code, voice)
    return snapshot, lease


def _tell_taken(snapshot: RunSnapshot, code: WorkflowCode, voice: Voice, took: float) -> None:
    """What was packed, and what the selection rules decided beyond git's view, so that a
    surprise shows."""
    # Snakemake parsed the workflow seconds before this snapshot; an edit in between
    # gives jobs code the main process never saw (a renamed rule, another env hash).
    for path in changed_since(list(code.sources), process_start_time()):
        voice.warn(
            f"{path} changed after this run started: the snapshot may hold a version "
            "Snakemake did not parse; if that matters, stop and start the run again."
        )
    s = snapshot.packed
    voice.say(
        f"snapshot {s.id[:12]} of {snapshot.code_root}: {s.files} files, "
        f"{size(s.bytes)} -> {size(s.archive_bytes)} "
        f"({'new' if s.created else 'already stored'}, {took:.2f} s: {s.archive})"
    )
    for warning in s.warnings:
        voice.warn(warning)
    if s.added_back:
        largest = sorted(s.added_back, key=lambda item: (-item[1], item[0]))
        shown = listing([f"{path} ({size / 1e3:.1f} kB)" for path, size in largest], 10)
        voice.say(
            f"{len(s.added_back)} gitignored file(s) packed for their code suffix, "
            f"largest first: {shown}; leave some out with --frozen-exclude or .frozenignore"
        )
    if s.data_excluded:
        voice.say(
            f"{s.data_excluded} output, log or benchmark file(s) of the workflow "
            "left out of the snapshot (data, not code)"
        )
    outside = [p for p in code.sources if not p.is_relative_to(snapshot.code_root)]
    if outside:
        voice.say(
            f"{len(outside)} workflow source(s) outside the code root packed too: "
            + listing([str(p) for p in outside])
        )


def _warn_missing_modules(snapshot: RunSnapshot, exclude: list[str], voice: Voice) -> None:
    """A module Snakemake imported from the code root that the snapshot lacks: the jobs
    would import the live file, or fail with ModuleNotFoundError on the node."""
    selection = snapshot.manifest.selection
    patterns = [*((selection.frozenignore if selection else None) or ()), *exclude]
    root = snapshot.code_root
    for name, path in sorted(modules_imported_from(root, sys.modules.values()).items()):
        relative = path.relative_to(root).as_posix()
        if relative in snapshot.files:
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
        voice.warn(
            f"module {name} ({path}) was imported by the workflow but is not in the "
            f"snapshot: {why}. Jobs will import the live file or fail; remove the pattern "
            "or make sure the module is not needed by jobs."
        )


def _plan_view(snapshot: RunSnapshot, layout: Layout, code: WorkflowCode, voice: Voice) -> None:
    """The snapshot's folders that held only its files, which the job's view binds whole
    (see view_plan.py), and the files the workflow wrote while it was parsed (a
    `shell("date > stamp.txt")` in the Snakefile), which it leaves live: every job's parse
    writes them again. Both relative to the copy's root."""
    prefix = snapshot.packed.prefix
    depth = len(Path(prefix).parts) if prefix else 0
    root = snapshot.code_root
    live_root = root.parents[depth - 1] if depth else root
    files = {
        posixpath.normpath(f"{prefix}/{path}") if prefix else path: Path(
            os.path.normpath(root / path)
        )
        for path in snapshot.files
    }
    parsed = set(code.sources)
    # A parse writes within a second of the start: a small slack, for the clocks' ticks.
    written = changed_since(
        [p for p in files.values() if p not in parsed], process_start_time(), slack=0.05
    )
    written_set = set(written)
    snapshot.left_live = tuple(sorted(k for k, p in files.items() if p in written_set))
    if snapshot.left_live:
        voice.say(
            f"{len(snapshot.left_live)} file(s) of the code were written while the "
            f"workflow was parsed ({listing(list(snapshot.left_live), limit=5)}): jobs see "
            "them live, as their own parse writes them again"
        )
    data_paths = [
        *code.outputs,
        *written,
        layout.logdir,
        layout.store,
        layout.workdir / ".snakemake",
    ]
    snapshot.whole = tuple(view_plan.whole_folders(live_root, list(files), data_paths))
