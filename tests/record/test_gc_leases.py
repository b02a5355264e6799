"""Runs and gc agree through leases, not timing (issue 15 item 9): a run holds a lease on its
stored snapshot for its whole life, and gc, under the store's lock, keeps what a held lease
names, removes the leases of runs that are gone, and is never led by a planted one."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import select
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers.node import deadline
from helpers.records import RUN_A, RUN_B, RUN_C, Site, make_site, run_cli

from snakemake_executor_plugin_frozen import journal
from snakemake_executor_plugin_frozen.record import gc
from snakemake_executor_plugin_frozen.snapshot import PackResult, SnapshotError, leases
from snakemake_executor_plugin_frozen.snapshot.store import Store

RUN_X = "dddddddd-0000-4000-8000-000000000004"  # a run going now, not yet in the journal

pytestmark = pytest.mark.usefixtures("no_grace")  # gc judges by age alone


@pytest.fixture
def runs(request: pytest.FixtureRequest) -> tuple[Site, list[PackResult]]:
    """The three runs of three snapshots, 30, 10 and 1 day(s) ago (tests/record/conftest.py)."""
    return request.getfixturevalue("three")


# A run's main process as far as the lease goes: it takes the lease, finds the snapshot
# stored (or, given "packing", packs for ever) and lives on.
HOLDER = """
import sys, time
from pathlib import Path
from snakemake_executor_plugin_frozen.snapshot import leases
from snakemake_executor_plugin_frozen.snapshot.store import Store

def pack(lost):
    if lost is not None:
        raise SystemExit("the holder was asked to pack again")
    if sys.argv[3] == "packing":
        print("held", flush=True)
        time.sleep(600)
    return sys.argv[3]

leases.hold(Store(Path(sys.argv[1])), sys.argv[2], pack)
print("held", flush=True)
time.sleep(600)
"""


def start_holder(store: Path, run: str, snapshot_id: str) -> subprocess.Popen[str]:
    """A process about to hold ``run``'s lease on ``snapshot_id`` (it says "held")."""
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(store), run, snapshot_id],
        stdout=subprocess.PIPE,
        text=True,
    )


def says_held(process: subprocess.Popen[str], seconds: float) -> bool:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], seconds)
    return bool(ready) and process.stdout.readline() == "held\n"


@contextmanager
def holder(store: Path, run: str, snapshot_id: str) -> Iterator[subprocess.Popen[str]]:
    """A process holding ``run``'s lease on ``snapshot_id`` until it is killed."""
    process = start_holder(store, run, snapshot_id)
    try:
        assert says_held(process, 60)
        yield process
    finally:
        process.kill()
        process.wait()


def already_stored(snapshot_id: str) -> leases.Pack:
    """A pack that finds ``snapshot_id`` stored; asked to pack again, it fails the test."""

    def pack(lost: str | None) -> str:
        assert lost is None, f"packed again: {lost} was lost"
        return snapshot_id

    return pack


def lease_path(site: Site, run: str) -> Path:
    return site.layout.store / leases.FOLDER_NAME / run


def gc_json(capsys: pytest.CaptureFixture[str], site: Site, *policy: str) -> dict:
    code, out, err = run_cli(capsys, "-C", str(site.workdir), "gc", *policy, "--json")
    assert code == 0, err
    return json.loads(out)


def copies(site: Site, snapshot_id: str) -> list[Path]:
    return sorted(site.layout.logdir.glob(f"rule_count/code-{snapshot_id[:12]}.*"))


def test_gc_keeps_the_snapshot_a_running_run_leased_and_says_why(
    runs, capsys: pytest.CaptureFixture[str]
) -> None:
    # The race of the issue: a run found snapshot 1 already stored and leased it, but its
    # run record is not in the journal yet; by the journal alone keep-last 1 removes it.
    site, (first, second, _) = runs
    placed = copies(site, first.id)
    with holder(site.layout.store, RUN_X, first.id):
        assert json.loads(lease_path(site, RUN_X).read_bytes())["snapshot"] == first.id
        report = gc_json(capsys, site, "--keep-last", "1")
        assert report["snapshots"] == [second.id]
        assert report["runs"] == [RUN_A, RUN_B]  # the old run of snapshot 1 goes, not it
        assert Store(site.layout.store).load_record(first.id) is not None
        assert copies(site, first.id) == placed and placed
        note = f"kept snapshot {first.id[:12]}: in use by run {RUN_X} (its lease in "
        assert any(n.startswith(note) for n in report["notes"]), report["notes"]
        assert lease_path(site, RUN_X).exists()
    assert not second.archive.exists()


def test_the_lease_of_a_killed_run_is_stale_and_gc_removes_it_and_its_snapshot(
    runs, capsys: pytest.CaptureFixture[str]
) -> None:
    site, (first, second, third) = runs
    with holder(site.layout.store, RUN_X, first.id) as process:
        process.send_signal(signal.SIGKILL)  # no shutdown: the lease file stays behind
        process.wait()
        assert lease_path(site, RUN_X).exists()
        dry = gc_json(capsys, site, "--keep-last", "1", "--dry-run")
        assert f"would remove the stale lease {lease_path(site, RUN_X)}" in dry["notes"][0]
        assert lease_path(site, RUN_X).exists()
        report = gc_json(capsys, site, "--keep-last", "1")
    assert f"removed the stale lease {lease_path(site, RUN_X)}" in report["notes"][0]
    assert not lease_path(site, RUN_X).exists()
    assert report["snapshots"] == sorted([first.id, second.id])
    assert not first.archive.exists() and not copies(site, first.id)
    assert third.archive.exists()


def test_a_run_starting_while_gc_holds_the_store_lock_waits_for_it(runs) -> None:
    # gc holds the store's lock from reading the leases to its last removal: a run cannot
    # lease (nor find stored) what gc is about to remove.
    site, (first, _, _) = runs
    with Store(site.layout.store).locked():
        process = start_holder(site.layout.store, RUN_X, first.id)
        try:
            assert not says_held(process, 1.0)
            assert not lease_path(site, RUN_X).exists()
        except BaseException:
            process.kill()
            raise
    try:
        assert says_held(process, 60)
        assert json.loads(lease_path(site, RUN_X).read_bytes())["snapshot"] == first.id
    finally:
        process.kill()
        process.wait()


def test_the_runs_own_gc_keeps_its_snapshot_until_the_lease_is_released(runs) -> None:
    # --frozen-gc-* runs in the process holding the lease: another open of the file cannot
    # take the lock either, so the run's own snapshot is kept; after release it is not.
    site, (first, _, _) = runs
    lease = leases.hold(Store(site.layout.store), RUN_X, already_stored(first.id))
    try:
        report = gc.collect(site.workdir, site.layout.logdir, None, 0, dry_run=False)
        assert first.id not in report.snapshots and first.archive.exists()
        assert f"kept snapshot {first.id[:12]}: in use by run {RUN_X}" in " ".join(report.notes)
    finally:
        lease.release()
    assert not lease_path(site, RUN_X).exists()
    report = gc.collect(site.workdir, site.layout.logdir, None, 0, dry_run=False)
    assert first.id in report.snapshots and not first.archive.exists()


def test_a_lease_keeps_its_run_whose_records_are_old(runs) -> None:
    site, (first, _, _) = runs
    lease = leases.hold(Store(site.layout.store), RUN_A, already_stored(first.id))
    try:
        report = gc.collect(site.workdir, site.layout.logdir, 1, None, dry_run=False)
    finally:
        lease.release()
    assert RUN_A not in report.runs and first.archive.exists()
    assert f"kept run {RUN_A}: it is going (its lease is held)" in report.notes
    assert RUN_A in {r["run"] for r in journal.read(site.layout.journal).records}


def test_a_snapshot_gc_removed_between_pack_and_lease_is_packed_again(tmp_path: Path) -> None:
    site = make_site(tmp_path / "wf")
    store = Store(site.layout.store)
    losses = []

    def pack(lost: str | None) -> str:
        losses.append(lost)
        snapshot = site.pack()
        if lost is None:
            store.discard(snapshot.id)  # something that reads no leases, after the pack
        return snapshot.id

    lease = leases.hold(store, RUN_X, pack)
    try:
        (first, again) = losses
        assert first is None and again is not None
        assert store.load_record(again) is not None
        assert json.loads(lease_path(site, RUN_X).read_bytes())["snapshot"] == again
    finally:
        lease.release()


def test_a_store_that_keeps_losing_the_snapshot_is_a_clear_error(tmp_path: Path) -> None:
    site = make_site(tmp_path / "wf")
    snapshot = site.pack()
    store = Store(site.layout.store)
    store.discard(snapshot.id)
    losses = []

    def pack(lost: str | None) -> str:
        losses.append(lost)
        return snapshot.id  # claims it stored, but it is not

    with pytest.raises(SnapshotError) as refused:
        leases.hold(store, RUN_X, pack)
    assert losses == [None] + [snapshot.id] * (leases.ATTEMPTS - 1)
    message = str(refused.value)
    assert f"{site.layout.store} lost snapshot {snapshot.id[:12]} 3 times" in message
    assert "start the run again" in message
    assert not lease_path(site, RUN_X).exists()  # released on the way out


def test_a_run_whose_snapshot_gc_removed_before_the_lease_packs_again_and_runs(
    tmp_path: Path,
) -> None:
    # End to end (local submission): something that reads no leases removes the run's
    # snapshot between its pack and its lease naming it; the run packs again, and its job
    # runs, and at shutdown the lease is gone.
    workdir = tmp_path / "wf"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(
        "rule a:\n    output: 'out.txt'\n    shell: 'cat helper.txt > {output}'\n"
    )
    (workdir / "helper.txt").write_text("frozen\n")
    driver = tmp_path / "racing_gc.py"
    driver.write_text(
        "from snakemake.cli import main\n"
        "from snakemake_executor_plugin_frozen.snapshot import leases\n"
        "hold = leases.hold\n"
        "def gc_after_the_pack(store, run_id, pack):\n"
        "    def pack_then_gc(lost):\n"
        "        snapshot_id = pack(lost)\n"
        "        if lost is None:\n"
        "            store.discard(snapshot_id)\n"
        "        return snapshot_id\n"
        "    return hold(store, run_id, pack_then_gc)\n"
        "leases.hold = gc_after_the_pack\n"
        "main()\n"
    )
    result = subprocess.run(
        [sys.executable, str(driver), "--executor", "frozen", "--frozen-submit", "local", "-j1"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-6000:]
    assert "before this run leased it; packing it again" in result.stderr
    assert (workdir / "out.txt").read_text() == "frozen\n"
    (start,) = [r for r in journal.read(workdir / journal.JOURNAL).records if r["event"] == "run"]
    store = workdir / ".snakemake/frozen/snapshots"
    assert Store(store).load_record(start["snapshot"]) is not None
    assert os.listdir(store / leases.FOLDER_NAME) == []  # released


def test_a_symlinked_lease_is_not_followed_and_protects_nothing(runs, tmp_path: Path) -> None:
    site, (first, _, _) = runs
    planted = tmp_path / "planted"
    planted.write_text(json.dumps({"snapshot": first.id}))
    before = planted.read_bytes()
    folder = site.layout.store / leases.FOLDER_NAME
    folder.mkdir(mode=0o700)
    (folder / RUN_X).symlink_to(planted)
    with open(planted) as held:  # if the link were followed, its lease would look held
        fcntl.flock(held, fcntl.LOCK_SH)
        report = gc.collect(site.workdir, site.layout.logdir, 1, None, dry_run=False)
    assert first.id in report.snapshots and not first.archive.exists()
    ignored = f"ignored {folder / RUN_X}: it is a symbolic link, not a lease; left it untouched"
    assert ignored in report.notes
    assert (folder / RUN_X).is_symlink() and planted.read_bytes() == before
    # the run side: a planted link at its lease's name is refused, its target left alone
    with pytest.raises(SnapshotError, match=f"cannot make the lease {folder / RUN_X}: there is"):
        leases.hold(Store(site.layout.store), RUN_X, already_stored(first.id))
    assert planted.read_bytes() == before


def test_hostile_names_and_files_in_the_lease_folder_are_left_alone(runs) -> None:
    site, (first, _, _) = runs
    folder = site.layout.store / leases.FOLDER_NAME
    folder.mkdir(mode=0o700)
    os.mkfifo(folder / RUN_X)  # opened, it would block gc
    (folder / RUN_B).mkdir()
    for name in ("-rf", "a b", ".hidden"):
        (folder / name).write_text(json.dumps({"snapshot": first.id}))
    (folder / RUN_C).write_text("x" * (leases.MAX_BYTES + 10))
    with deadline(20):
        report = gc.collect(site.workdir, site.layout.logdir, 1, None, dry_run=False)
    assert first.id in report.snapshots  # none of them protects anything
    notes = "\n".join(report.notes)
    assert f"ignored {folder / RUN_X}: it is a named pipe (FIFO), not a lease" in notes
    assert f"ignored {folder / RUN_B}: it is a folder, not a lease" in notes
    assert f"ignored {folder / '-rf'}: its name is no run id; left it untouched" in notes
    assert f"removed the stale lease {folder / RUN_C}" in notes  # a file nobody holds
    assert sorted(os.listdir(folder)) == sorted([".hidden", "-rf", "a b", RUN_B, RUN_X])
    assert stat.S_ISFIFO((folder / RUN_X).lstat().st_mode)
    with pytest.raises(SnapshotError, match="a run id is one file name"):
        leases.hold(Store(site.layout.store), "../escape", already_stored(first.id))
    assert not (site.layout.store / "escape").exists()


def test_an_untrusted_lease_folder_makes_runs_refuse_and_gc_keep_everything(
    runs, tmp_path: Path
) -> None:
    site, (first, second, third) = runs
    folder = site.layout.store / leases.FOLDER_NAME
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    folder.symlink_to(elsewhere)
    store = Store(site.layout.store)
    with pytest.raises(SnapshotError, match=f"{folder} is a symbolic link, not a folder"):
        leases.hold(store, RUN_X, already_stored(first.id))
    report = gc.collect(site.workdir, site.layout.logdir, None, 0, dry_run=False)
    assert report.snapshots == [] and first.archive.exists() and third.archive.exists()
    assert report.notes[0].startswith(f"kept every snapshot: {folder} is a symbolic link")
    assert os.listdir(elsewhere) == []  # nothing made through the link
    folder.unlink()
    folder.mkdir()
    folder.chmod(0o777)
    with pytest.raises(SnapshotError, match="is writable by every user"):
        leases.hold(store, RUN_X, already_stored(first.id))
    report = gc.collect(site.workdir, site.layout.logdir, None, 0, dry_run=False)
    assert report.snapshots == [] and second.archive.exists()
    assert "kept every snapshot" in report.notes[0]


def test_without_flock_a_lease_counts_as_held_and_a_note_says_so(
    runs, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A filesystem without flock (NFS without its lock service, Lustre mounted noflock):
    # the run is not failed, and gc, unable to tell a held lease from a stale one, keeps
    # what each names.
    site, (first, second, third) = runs
    real = fcntl.flock

    def no_flock_in_leases(fd, operation):
        if f"/{leases.FOLDER_NAME}/" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOLCK, "No locks available")
        return real(fd, operation)

    monkeypatch.setattr(fcntl, "flock", no_flock_in_leases)
    lease = leases.hold(Store(site.layout.store), RUN_X, already_stored(first.id))
    try:
        assert not lease.locked
        report = gc.collect(site.workdir, site.layout.logdir, None, 0, dry_run=False)
    finally:
        lease.release()
    assert report.snapshots == sorted([second.id, third.id]) and first.archive.exists()
    held = f"cannot lock the lease {lease.path} (No locks available; a filesystem without flock?)"
    assert report.notes[0].startswith(held + ": counted as held")
    assert f"kept snapshot {first.id[:12]}: in use by run {RUN_X}" in " ".join(report.notes)


def test_while_a_run_packs_gc_keeps_every_snapshot(
    runs, capsys: pytest.CaptureFixture[str]
) -> None:
    # The pack may be reading a stored snapshot to reuse it: its lease names none yet.
    site, snapshots = runs
    with holder(site.layout.store, RUN_X, "packing"):
        report = gc_json(capsys, site, "--older-than", "0")
    assert report["snapshots"] == [] and all(s.archive.exists() for s in snapshots)
    packing = f"kept every snapshot: run {RUN_X} holds a lease naming no snapshot"
    assert report["notes"][0].startswith(packing), report["notes"]


@pytest.mark.parametrize(
    ("store_mode", "folder_mode", "file_mode"),
    [(0o700, 0o700, 0o600), (0o750, 0o2750, 0o640), (0o2775, 0o2770, 0o660)],
)
def test_the_lease_folder_follows_the_stores_owner_and_group_bits(
    tmp_path: Path, store_mode: int, folder_mode: int, file_mode: int
) -> None:
    site = make_site(tmp_path / "wf")
    snapshot = site.pack()
    site.layout.store.chmod(store_mode)
    lease = leases.hold(Store(site.layout.store), RUN_X, already_stored(snapshot.id))
    try:
        folder = site.layout.store / leases.FOLDER_NAME
        assert stat.S_IMODE(folder.stat().st_mode) == folder_mode
        assert stat.S_IMODE((folder / RUN_X).stat().st_mode) == file_mode
    finally:
        lease.release()
