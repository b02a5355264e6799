"""``restore``: a snapshot's files into a new folder, and the command that reruns an output
from them."""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from snakemake_executor_plugin_frozen.snapshot import SnapshotError, extract

from .errors import RecordError
from .history import History, Job
from .snapshots import Snapshot
from .which import Finder, normalise

# Where Snakemake looks for the Snakefile when none is named, in its order.
DEFAULT_SNAKEFILES = ("Snakefile", "snakefile", "workflow/Snakefile", "workflow/snakefile")
SNAKEFILE_OPTIONS = ("-s", "--snakefile")


@dataclass(frozen=True)
class Restored:
    id: str
    dest: Path
    code_root: Path  # the restored copy of the code root (below dest with outside files)
    outside_files: bool
    snakefile: Path | None  # in the restored copy; None if it cannot be told
    command: list[str]
    job: Job | None  # the journal's job for --output


def _prepare(dest: Path) -> None:
    """Refuse a DEST that holds anything; an empty folder is replaced by the restored one."""
    try:
        entries = os.listdir(dest)
    except FileNotFoundError:
        return
    except NotADirectoryError:
        raise RecordError(
            f"{dest} exists and is not a folder: give a new or empty folder"
        ) from None
    if entries:
        raise RecordError(
            f"{dest} is not empty ({len(entries)} entries): restore only writes into a new or "
            "empty folder, so nothing of yours is overwritten"
        )
    dest.rmdir()  # extract() writes a private folder beside it and renames it into place


def _argv_snakefile(argv: list[str]) -> str | None:
    for i, word in enumerate(argv):
        if word in SNAKEFILE_OPTIONS and i + 1 < len(argv):
            return argv[i + 1]
        for option in SNAKEFILE_OPTIONS:
            if word.startswith(option + "=") and option.startswith("--"):
                return word.split("=", 1)[1]
    return None


def snakefile_in(snapshot: Snapshot, history: History, run: str | None) -> str | None:
    """The main Snakefile relative to the code root: the run's ``--snakefile`` when the
    journal has its argv, else the first of Snakemake's default names the snapshot holds."""
    files = snapshot.files()
    root = Path(snapshot.manifest["root"])
    start = history.runs[run].start if run in history.runs else None
    candidates = []
    if start is not None and (named := _argv_snakefile(start.get("argv") or [])):
        path = Path(named) if os.path.isabs(named) else Path(start["workdir"]) / named
        candidates.append(os.path.relpath(os.path.normpath(path), root))
    candidates += DEFAULT_SNAKEFILES
    return next((c for c in candidates if c in files), None)


def _job_for(snapshot: Snapshot, finder: Finder, output: str) -> Job:
    """The journal's job that last made ``output``, which must have run ``snapshot``."""
    answer = finder.answer(output)
    if not answer.found:
        raise RecordError(f"{output}: {answer.reason}", exit_code=1)
    job = next(j for j in reversed(finder.jobs_for(answer.output)) if j.succeeded)
    if job.snapshot != snapshot.id:
        raise RecordError(
            f"{output} was last made by a job of snapshot {str(job.snapshot)[:12]}, not "
            f"{snapshot.id[:12]}: restore that one to rerun it (snakemake-frozen which "
            f"{output} names it)"
        )
    return job


def restore(
    snapshot: Snapshot, dest: Path, finder: Finder, output: str | None, workdir: Path
) -> Restored:
    dest = Path(os.path.abspath(dest))
    job = None if output is None else _job_for(snapshot, finder, output)
    archive = snapshot.check_archive()  # a clear refusal before anything is written
    _prepare(dest)
    try:
        # extract checks the sha256 again, of the very bytes it extracts
        extract(archive, dest, snapshot.archive_sha256)
    except SnapshotError as e:
        raise RecordError(str(e), exit_code=1) from e
    code_root = dest / snapshot.prefix if snapshot.prefix else dest
    relative = snakefile_in(snapshot, finder.history, job.run if job else None)
    snakefile = code_root / relative if relative else None
    # Locally, one core: the reproduction of one output, whatever executor made it.
    command = [
        "snakemake",
        "--cores",
        "1",
        "--snakefile",
        str(snakefile or code_root / "Snakefile"),
    ]
    if job is not None:
        run_workdir = job.record.get("workdir") or str(workdir)
        rerun = normalise(output or "", workdir)
        command += ["--directory", run_workdir, "--forcerun", job.record["rule"], rerun]
    else:
        command += ["--directory", str(workdir)]
    return Restored(snapshot.id, dest, code_root, bool(snapshot.prefix), snakefile, command, job)


def as_json(restored: Restored) -> dict:
    return {
        "id": restored.id,
        "dest": str(restored.dest),
        "code_root": str(restored.code_root),
        "outside_files": restored.outside_files,
        "snakefile": None if restored.snakefile is None else str(restored.snakefile),
        "command": restored.command,
        "run": restored.job.run if restored.job else None,
        "slurm_id": restored.job.slurm_id if restored.job else None,
    }


def as_text(restored: Restored, snapshot: Snapshot) -> str:
    lines = [f"restored snapshot {restored.id[:12]} into {restored.dest}"]
    if restored.outside_files:
        lines.append(
            "note: the snapshot holds files from outside its code root "
            f"{snapshot.manifest['root']}: the code root is {restored.code_root}, the outside "
            "files lie around it as they did"
        )
    if restored.snakefile is None:
        lines.append("note: no Snakefile found in the snapshot under Snakemake's default names")
    what = "to rerun it from this code" if restored.job else "to run the workflow from this code"
    lines.append(f"{what}:\n  {shlex.join(restored.command)}")
    return "\n".join(lines)
