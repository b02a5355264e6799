"""``list``: the store's snapshots, newest first, with the runs and jobs that used them."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .activity import Activity, survey
from .errors import RecordError
from .history import History, Run
from .ids import SHORT
from .layout import Layout
from .snapshots import SnapshotStore
from .table import commit_text, iso, moment, parse_time, render, size


@dataclass(frozen=True)
class Listed:
    id: str
    created: str
    commit: str | None
    branch: str | None
    dirty: bool | None  # None outside git
    files: int
    bytes: int
    archive_bytes: int
    runs: int
    jobs: int
    last_used: str | None  # the latest journal time of a run using it
    pending: int | None  # None: unknown (SLURM unreachable, or local jobs)
    running: int | None


def _activity(runs: list[Run], activity: Activity) -> tuple[int | None, int | None]:
    states = [activity.of(run.id) for run in runs]
    if any(state.unknown for state in states):
        return None, None
    return sum(s.pending for s in states), sum(s.running for s in states)


@dataclass
class Listing:
    snapshots: list[Listed]
    activity: Activity
    history: History
    unreadable: list[str]  # ids whose record cannot be read (verify tells why)


def snapshots(layout: Layout) -> Listing:
    store = SnapshotStore(layout.store)
    history = History.read(layout.journal)
    usage = history.by_snapshot()
    activity = survey(history)
    listing = Listing([], activity, history, [])
    for snapshot_id in store.ids():
        try:
            manifest = store.load(snapshot_id).manifest
        except RecordError:
            listing.unreadable.append(snapshot_id)
            continue
        git = manifest.git
        runs = usage.get(snapshot_id, [])
        last = max((run.last for run in runs), default=None)
        pending, running = _activity(runs, activity)
        listing.snapshots.append(
            Listed(
                id=snapshot_id,
                created=manifest.created or "",
                commit=git.commit if git else None,
                branch=git.branch if git else None,
                dirty=git.dirty if git else None,
                files=len(manifest.files) if manifest.file_count is None else manifest.file_count,
                bytes=manifest.bytes or 0,
                archive_bytes=manifest.archive_bytes or 0,
                runs=len(runs),
                jobs=sum(sum(1 for job in run.jobs if job.snapshot == snapshot_id) for run in runs),
                last_used=iso(last),
                pending=pending,
                running=running,
            )
        )
    listing.snapshots.sort(key=lambda s: (parse_time(s.created) or 0, s.id), reverse=True)
    return listing


def as_json(listing: Listing) -> dict:
    return {
        "snapshots": [asdict(s) for s in listing.snapshots],
        "unreadable": listing.unreadable,
        "slurm": listing.activity.slurm,
        "journal_skipped_lines": listing.history.skipped,
    }


def _active_text(s: Listed) -> str:
    if s.pending is None:
        return "unknown"
    parts = [f"{s.pending} pending"] * bool(s.pending) + [f"{s.running} running"] * bool(s.running)
    return ", ".join(parts) or "-"


def as_table(listed: list[Listed]) -> str:
    if not listed:
        return "no snapshots in this working directory's store"
    rows = [
        (
            s.id[:SHORT],
            moment(parse_time(s.created)),
            commit_text(s.commit, s.dirty),
            s.files,
            size(s.archive_bytes),
            s.runs,
            s.jobs,
            _active_text(s),
        )
        for s in listed
    ]
    headers = ("ID", "CREATED", "COMMIT", "FILES", "SIZE", "RUNS", "JOBS", "ACTIVE")
    return render(headers, rows, right="FILES SIZE RUNS JOBS")
