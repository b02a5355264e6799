"""What killed jobs leave in scratch is removed by a later job on the node: only once it is
older than `--stale-after` and no running job holds it, only entries named as ours, never
through a link, within a bounded effort, and never at the cost of the later job."""

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import replace
from pathlib import Path

import pytest
from helpers.node import batch_entry, enter_args, exports, make_code, node, user_folder
from helpers.paths import CLUSTER_NODES

from snakemake_executor_plugin_frozen.jobscript import render
from snakemake_executor_plugin_frozen.node.cleanup import (
    _CLEANUP_SNAPSHOTS,
    slurm_job_states,
    snapshot_of,
)
from snakemake_executor_plugin_frozen.node.leases import (
    lease_is_stale,
    lease_job_id,
    pid_namespace,
    process_start,
)
from snakemake_executor_plugin_frozen.snapshot import PackResult, pack

HOUR = 3600.0
NOT_IN_SLURM = {"SLURM_JOB_ID": ""}  # judged by pids alone, as outside SLURM
REMOVED = "frozen: removed what earlier jobs left of snapshot"


# -- the decisions ----------------------------------------------------------------------------


def test_our_entries_are_told_by_name_and_nothing_else_is() -> None:
    sid = "0123abcd"
    for name in (
        sid, f"{sid}.seal", f"{sid}.lock", f"{sid}.leases",
        f".{sid}.0123456789ab.tmp", f".{sid}.seal.0123456789ab.tmp",
        f".{sid}.deleting.0123456789ab", f".{sid}.leases.deleting.0123456789ab",
    ):  # fmt: skip
        assert snapshot_of(name) == sid, name
    for name in (
        "jobs", "notes.txt", "0123abc", "0123ABCD", f"{sid}.seal.bak", f"{sid}.old",
        f".{sid}.tmp", f".{sid}", f".{sid}.deleting", f"{sid}.0123456789ab.tmp", f"x{sid}",
    ):  # fmt: skip
        assert snapshot_of(name) is None, name


def test_a_leases_job_id_comes_from_its_name_or_its_job_record() -> None:
    assert lease_job_id("node1.4242.77", "pid node1 pid:[1] 77 99") == "4242"
    assert lease_job_id("n1.site.org.4242.77", "pid n1.site.org pid:[1] 77 99") == "4242"
    assert lease_job_id("node1.77", "pid node1 pid:[1] 77 99") == ""  # outside SLURM
    assert lease_job_id("node1.job4242", "job node1 4242") == "4242"
    assert lease_job_id("node1.4242.77", "") == ""  # no holder record: no job to ask about
    assert lease_job_id("node1.4,2.77", "pid node1 pid:[1] 77 99") == ""


def dead_pid() -> int:
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


def test_a_process_of_this_node_holds_its_lease_while_it_lives_or_slurm_runs_its_job() -> None:
    host, namespace = socket.gethostname(), pid_namespace()
    me = f"pid {host} {namespace} {os.getpid()} {process_start(os.getpid())}"
    gone = f"pid {host} {namespace} {dead_pid()} 1"
    recycled = f"pid {host} {namespace} {os.getpid()} 1"  # this pid, another start time
    name = f"{host}.4242.{os.getpid()}"
    for jobs in (None, {"4242": "RUNNING"}, {"4242": ""}, {"4242": "COMPLETED"}):
        assert not lease_is_stale(name, me, host, namespace, jobs), jobs
    for record in (gone, recycled):
        pid = record.split()[3]
        assert lease_is_stale(f"{host}.4242.{pid}", record, host, namespace, None)
        assert lease_is_stale(f"{host}.{pid}", record, host, namespace, {"4242": "RUNNING"})
        for state in ("", "CANCELLED", "PENDING", "NODE_FAIL"):
            assert lease_is_stale(f"{host}.4242.{pid}", record, host, namespace, {"4242": state})
        # Its other processes may still run from the copy.
        for state in ("RUNNING", "COMPLETING", "SUSPENDED", "SOMETHING_NEW"):
            assert not lease_is_stale(
                f"{host}.4242.{pid}", record, host, namespace, {"4242": state}
            )


def test_a_lease_that_cannot_be_checked_here_is_stale_only_when_slurm_says_so() -> None:
    host, namespace = socket.gethostname(), pid_namespace()
    unchecked = [
        ("node9.4242.77", f"pid node9 {namespace} 77 1"),  # another node's (shared scratch)
        (f"{host}.4242.77", f"pid {host} pid:[1] 77 1"),  # another pid namespace's
        (f"{host}.job4242", f"job {host} 4242"),  # a multi-node job's
    ]
    for name, record in unchecked:
        assert not lease_is_stale(name, record, host, namespace, None), record
        assert not lease_is_stale(name, record, host, namespace, {}), record  # not asked
        for state in ("RUNNING", "COMPLETING", "SOMETHING_NEW"):
            assert not lease_is_stale(name, record, host, namespace, {"4242": state})
        for state in ("", "COMPLETED", "TIMEOUT", "OUT_OF_MEMORY"):
            assert lease_is_stale(name, record, host, namespace, {"4242": state}), state
    # Without a job id in the name (outside SLURM) nothing can tell: kept.
    assert not lease_is_stale("node9.77", f"pid node9 {namespace} 77 1", host, namespace, {})
    assert not lease_is_stale(f"{host}.4242.77", "", host, namespace, {"4242": ""})


def test_slurm_is_not_asked_outside_a_slurm_job() -> None:
    assert slurm_job_states({"4242"}, "") is None
    assert slurm_job_states(set(), "4242") is None


# -- on one node, with real files and processes -----------------------------------------------


@pytest.fixture
def snapshots(tmp_path: Path) -> tuple[Path, PackResult, Path, PackResult]:
    """Two snapshots: an earlier job's and the later job's."""
    earlier, later = tmp_path / "earlier", tmp_path / "later"
    make_code(earlier, "V = 'earlier'\n")
    make_code(later, "V = 'later'\n")
    return earlier, pack(earlier, tmp_path / "store"), later, pack(later, tmp_path / "store")


@pytest.fixture
def sleepers() -> Iterator:
    """Live processes standing in for job shells."""
    started: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        started.append(subprocess.Popen(["sleep", "120"]))
        return started[-1]

    yield start
    for process in started:
        process.kill()
        process.wait()


def entries_of(base: Path, snapshot_id: str) -> list[str]:
    return sorted(n for n in os.listdir(base) if snapshot_of(n) == snapshot_id)


def whole(snapshot_id: str) -> list[str]:
    """The entries of a snapshot's copy in use or left behind, sorted."""
    return [snapshot_id, f"{snapshot_id}.leases", f"{snapshot_id}.lock", f"{snapshot_id}.seal"]


def age(base: Path, snapshot_id: str, seconds: float) -> None:
    """Make every entry of the snapshot (not what links point to) as old as `seconds`."""
    then = time.time() - seconds
    for name in entries_of(base, snapshot_id):
        os.utime(base / name, (then, then), follow_symlinks=False)


def killed_jobs_leftover(scratch: Path, code: Path, result: PackResult) -> Path:
    """`enter` of a job whose shell is then killed by SIGKILL (it never runs `leave`)."""
    shell = subprocess.Popen(["sleep", "120"])
    entered = node(*enter_args(code, result, scratch, shell.pid), env=NOT_IN_SLURM)
    assert entered.returncode == 0, entered.stderr
    shell.send_signal(signal.SIGKILL)
    shell.wait()
    copy = Path(exports(entered.stdout)["FROZEN_DIR"])
    assert sorted(p.name for p in (copy.parent / f"{result.id}.leases").iterdir()) == [
        f"{socket.gethostname()}.{shell.pid}"
    ]
    return copy


def later_job(
    scratch: Path, code: Path, result: PackResult, holder: int, stale_after: float = HOUR
) -> subprocess.CompletedProcess[str]:
    args = [*enter_args(code, result, scratch, holder), "--stale-after", str(stale_after)]
    entered = node(*args, env=NOT_IN_SLURM)
    assert entered.returncode == 0, entered.stderr
    assert Path(exports(entered.stdout)["FROZEN_DIR"], "pkg", "__init__.py").read_text() == (
        "V = 'later'\n"
    )
    return entered


def test_a_killed_jobs_copy_is_removed_by_a_later_job_once_old_enough(
    tmp_path: Path, snapshots, sleepers
) -> None:
    earlier, old, later, new = snapshots
    copy = killed_jobs_leftover(tmp_path, earlier, old)
    base = copy.parent
    left = entries_of(base, old.id)
    assert left == whole(old.id)

    age(base, old.id, 0.5 * HOUR)
    young = later_job(tmp_path, later, new, sleepers().pid)
    assert entries_of(base, old.id) == left, "removed before it was an hour old"
    assert REMOVED not in young.stderr

    age(base, old.id, 2 * HOUR)
    entered = later_job(tmp_path, later, new, sleepers().pid)
    assert entries_of(base, old.id) == []
    assert f"{REMOVED} {old.id} in {base} ({', '.join(left)}): unused for 2.0 h" in entered.stderr
    # The job's log still starts with its own snapshot's line.
    assert entered.stderr.startswith(f"frozen: snapshot {new.id} ")
    assert sorted(os.listdir(base)) == whole(new.id)


def test_a_live_jobs_copy_is_kept_however_old(tmp_path: Path, snapshots, sleepers) -> None:
    earlier, old, later, new = snapshots
    shell = sleepers()
    entered = node(*enter_args(earlier, old, tmp_path, shell.pid), env=NOT_IN_SLURM)
    base = Path(exports(entered.stdout)["FROZEN_DIR"]).parent
    age(base, old.id, 30 * 24 * HOUR)
    later_job(tmp_path, later, new, sleepers().pid)
    assert (base / old.id / "pkg" / "__init__.py").read_text() == "V = 'earlier'\n"
    shell.kill()
    shell.wait()
    later_job(tmp_path, later, new, sleepers().pid)
    assert entries_of(base, old.id) == []


def test_a_copy_that_an_orphan_of_the_killed_shell_runs_from_is_kept(
    tmp_path: Path, snapshots, sleepers
) -> None:
    earlier, old, later, new = snapshots
    copy = killed_jobs_leftover(tmp_path, earlier, old)
    age(copy.parent, old.id, 2 * HOUR)
    orphan = subprocess.Popen(["sleep", "120"], env={**os.environ, "FROZEN_COPY": str(copy)})
    try:
        later_job(tmp_path, later, new, sleepers().pid)
        assert entries_of(copy.parent, old.id) != []
    finally:
        orphan.kill()
        orphan.wait()
    later_job(tmp_path, later, new, sleepers().pid)
    assert entries_of(copy.parent, old.id) == []


def test_an_unused_kept_copy_and_debris_of_crashed_enters_are_removed(
    tmp_path: Path, snapshots, sleepers
) -> None:
    earlier, old, later, new = snapshots
    shell = sleepers()
    entered = node(*enter_args(earlier, old, tmp_path, shell.pid), "--keep", env=NOT_IN_SLURM)
    assert node("leave", env=exports(entered.stdout)).returncode == 0
    base = user_folder(tmp_path)
    assert entries_of(base, old.id) == whole(old.id)
    # What a crashed extraction, seal writing and removal leave: read-only, half made.
    debris = [f".{old.id}.0123456789ab.tmp", f".{old.id}.deleting.ba9876543210"]
    for name in debris:
        (base / name / "pkg").mkdir(parents=True)
        (base / name / "pkg" / "half.py").write_text("V = 'half'\n")
        for path in (base / name / "pkg" / "half.py", base / name / "pkg", base / name):
            path.chmod(0o444 if path.is_file() else 0o555)
    (base / f".{old.id}.seal.00000000ffff.tmp").write_bytes(b"half a seal")
    age(base, old.id, 2 * HOUR)
    later_job(tmp_path, later, new, sleepers().pid)
    assert entries_of(base, old.id) == []


def test_foreign_entries_are_never_touched(tmp_path: Path, snapshots, sleepers) -> None:
    earlier, old, later, new = snapshots
    base = killed_jobs_leftover(tmp_path, earlier, old).parent
    files = ["notes.txt", "0123ABCD", f"{old.id}.seal.bak", f".{old.id}.tmp", "abc1234"]
    for name in files:
        (base / name).write_text("not frozen's")
    (base / "jobs").mkdir()
    (base / "jobs" / "mine.txt").write_text("not frozen's")
    then = time.time() - 30 * 24 * HOUR
    for name in [*files, "jobs"]:
        os.utime(base / name, (then, then))
    age(base, old.id, 2 * HOUR)
    later_job(tmp_path, later, new, sleepers().pid, stale_after=0)
    assert entries_of(base, old.id) == []
    assert sorted(set(os.listdir(base)) - set(whole(new.id))) == sorted([*files, "jobs"])
    for path in [*(base / name for name in files), base / "jobs" / "mine.txt"]:
        assert path.read_text() == "not frozen's"


def test_links_planted_under_our_names_are_removed_never_followed(
    tmp_path: Path, snapshots, sleepers
) -> None:
    earlier, old, later, new = snapshots
    copy = killed_jobs_leftover(tmp_path, earlier, old)
    base = copy.parent
    victim = tmp_path / "victim"
    (victim / "sub").mkdir(parents=True)
    (victim / "sub" / "precious.txt").write_text("keep me")
    (victim / "abcd0000.seal").write_text("keep me too")
    # Inside the leftover copy, and as whole entries of other snapshot ids.
    copy.chmod(0o755)
    (copy / "escape").symlink_to(victim)
    copy.chmod(0o555)
    planted = "abcd0000"
    (base / planted).symlink_to(victim / "sub")
    (base / f"{planted}.leases").symlink_to(victim)
    (base / f".{planted}.0123456789ab.tmp").symlink_to(victim)
    (base / f"{planted}.seal").symlink_to(victim / "abcd0000.seal")
    age(base, old.id, 2 * HOUR)
    age(base, planted, 2 * HOUR)
    later_job(tmp_path, later, new, sleepers().pid)
    assert entries_of(base, old.id) == entries_of(base, planted) == []
    assert (victim / "sub" / "precious.txt").read_text() == "keep me"
    assert (victim / "abcd0000.seal").read_text() == "keep me too"


def test_a_snapshot_whose_lock_a_job_holds_is_left_alone(
    tmp_path: Path, snapshots, sleepers
) -> None:
    earlier, old, later, new = snapshots
    base = killed_jobs_leftover(tmp_path, earlier, old).parent
    age(base, old.id, 2 * HOUR)
    with open(base / f"{old.id}.lock") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a job extracting or checking it right now
        later_job(tmp_path, later, new, sleepers().pid)
    assert old.id in os.listdir(base)


def test_what_cannot_be_removed_is_logged_and_the_job_runs(
    tmp_path: Path, snapshots, sleepers
) -> None:
    earlier, old, later, new = snapshots
    base = killed_jobs_leftover(tmp_path, earlier, old).parent
    age(base, old.id, 2 * HOUR)
    broken = ["bad00000", "bad11111"]
    (base / broken[0]).mkdir()
    (base / f"{broken[0]}.lock").mkdir()  # a lock that cannot be opened
    (base / broken[1]).mkdir()
    (base / f"{broken[1]}.lock").symlink_to(tmp_path / "victim-lock")  # nor followed
    for name in broken:
        age(base, name, 3 * HOUR)  # the oldest: tried first
    entered = later_job(tmp_path, later, new, sleepers().pid)
    for name in broken:
        assert (
            f"frozen: could not remove what earlier jobs left of snapshot {name} in {base}:"
            in entered.stderr
        )
        assert name in os.listdir(base)
    assert not (tmp_path / "victim-lock").exists()
    assert entries_of(base, old.id) == []  # the others are still cleaned


def test_the_later_jobs_own_snapshot_is_never_removed_even_at_stale_after_zero(
    tmp_path: Path, snapshots, sleepers
) -> None:
    _, _, later, new = snapshots
    entered = node(*enter_args(later, new, tmp_path, sleepers().pid), "--keep", env=NOT_IN_SLURM)
    assert node("leave", env=exports(entered.stdout)).returncode == 0
    entered = later_job(tmp_path, later, new, sleepers().pid, stale_after=0)
    assert " reused at " in entered.stderr and REMOVED not in entered.stderr


def test_stale_after_inf_removes_nothing_and_a_bad_value_is_refused(
    tmp_path: Path, snapshots, sleepers
) -> None:
    earlier, old, later, new = snapshots
    base = killed_jobs_leftover(tmp_path, earlier, old).parent
    age(base, old.id, 1000 * HOUR)
    later_job(tmp_path, later, new, sleepers().pid, stale_after=float("inf"))
    assert old.id in os.listdir(base)
    for bad in ("-1", "nan", "a day"):
        args = [*enter_args(later, new, tmp_path, sleepers().pid), "--stale-after", bad]
        refused = node(*args)
        assert refused.returncode == 2
        assert (
            f"--stale-after: not a number of seconds (0 or more, or inf): '{bad}'" in refused.stderr
        )


def fake_leftover(base: Path, snapshot_id: str, leases: dict[str, str]) -> None:
    """What a killed job leaves, placed by hand: a read-only copy, its seal, lock and
    leases (name: holder record)."""
    (base / snapshot_id / "pkg").mkdir(parents=True)
    (base / snapshot_id / "pkg" / "m.py").write_text("V = 1\n")
    for path in (
        base / snapshot_id / "pkg" / "m.py",
        base / snapshot_id / "pkg",
        base / snapshot_id,
    ):
        path.chmod(0o444 if path.is_file() else 0o555)
    (base / f"{snapshot_id}.seal").write_text("seal")
    (base / f"{snapshot_id}.lock").touch()
    for name, record in leases.items():
        (base / f"{snapshot_id}.leases" / name).mkdir(parents=True)
        (base / f"{snapshot_id}.leases" / name / "holder").write_text(record)


def test_a_later_job_removes_at_most_a_few_snapshots_the_oldest_first(
    tmp_path: Path, snapshots, sleepers
) -> None:
    _, _, later, new = snapshots
    base = user_folder(tmp_path)
    host, namespace, pid = socket.gethostname(), pid_namespace(), dead_pid()
    ids = [f"{n:08x}" for n in range(2 * _CLEANUP_SNAPSHOTS + 3)]
    for n, snapshot_id in enumerate(ids):
        fake_leftover(base, snapshot_id, {f"{host}.{pid}": f"pid {host} {namespace} {pid} 1"})
        age(base, snapshot_id, (100 - n) * HOUR)  # the first, the oldest
    started = time.monotonic()
    entered = later_job(tmp_path, later, new, sleepers().pid)
    took = time.monotonic() - started
    left = sorted({snapshot_of(n) for n in os.listdir(base)} - {new.id})
    assert left == ids[_CLEANUP_SNAPSHOTS:], entered.stderr
    assert entered.stderr.count(REMOVED) == _CLEANUP_SNAPSHOTS
    assert took < 5, f"enter took {took:.2f} s"
    later_job(tmp_path, later, new, sleepers().pid)
    later_job(tmp_path, later, new, sleepers().pid)
    assert {snapshot_of(n) for n in os.listdir(base)} == {new.id}


# -- on the real cluster ----------------------------------------------------------------------


def sbatch(script: Path, log: Path, *options: str) -> str:
    submitted = subprocess.run(
        ["sbatch", "--parsable", "--nodelist=node1", f"--output={log}", *options, str(script)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return submitted.stdout.strip().split(";")[0]


def wait_until(condition, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def is_listed(job_id: str) -> bool:
    """Whether squeue lists the job (pending, running or completing)."""
    listed = subprocess.run(
        ["squeue", "-h", "-j", job_id, "-o", "%A"], capture_output=True, text=True
    )
    return job_id in listed.stdout.split()


@pytest.fixture
def node1_scratch() -> Iterator[tuple[str, Path]]:
    """A folder of node1's own scratch, for this test alone (other tests' kept copies there
    are not ours to clean): the setting that reaches it, and where the host sees it."""
    scratch = CLUSTER_NODES / "node1" / "scratch"
    folder = Path(tempfile.mkdtemp(prefix="frozen-cleanup-", dir=scratch))
    try:
        yield "{SLURM_CI_NODE_SCRATCH}/" + folder.name, folder
    finally:
        shutil.rmtree(folder)  # as root: read-only copies are no bar


@pytest.mark.slurm
def test_a_job_killed_by_sigkill_leaves_a_copy_that_a_later_job_on_the_node_removes(
    tmp_path: Path, snapshots, node1_scratch: tuple[str, Path]
) -> None:
    earlier, old, later, new = snapshots
    setting, on_host = node1_scratch
    base = on_host / f"snakemake-frozen-{os.getuid()}"

    def job(name: str, code: Path, result: PackResult, command: str, stale_after: float):
        entry = batch_entry(code, result, tmp_path)
        entry = replace(entry, scratch=setting, stale_after=stale_after)
        script = tmp_path / f"{name}.sh"
        script.write_text(render(name, command, entry))
        return script, tmp_path / f"{name}.log"

    script, killed_log = job("killed", earlier, old, "sleep 300", HOUR)
    killed = sbatch(script, killed_log)
    orphans: list[int] = []
    try:
        wait_until(
            lambda: killed_log.exists() and "frozen: snapshot" in killed_log.read_text(), "enter"
        )
        assert f"extracted at {base / old.id} on node1" in killed_log.read_text()
        subprocess.run(["scancel", "--batch", "--signal=KILL", killed], check=True)
        wait_until(lambda: not is_listed(killed), "the killed job to end")
        (lease,) = (base / f"{old.id}.leases").iterdir()
        assert lease.name.startswith(f"node1.{killed}.")
        left = entries_of(base, old.id)
        assert left == whole(old.id)

        script, log = job("young", later, new, "true", HOUR)
        sbatch(script, log, "--wait")
        assert entries_of(base, old.id) == left, log.read_text()
        wait_until(lambda: time.time() - (base / f"{old.id}.leases").stat().st_mtime > 2, "age")

        # With proctrack/linuxproc (the test cluster's default) SLURM leaves running what
        # the killed shell started: the job's command still runs from the copy.
        orphans = running_from(base / old.id)
        if orphans:
            script, log = job("orphaned", later, new, "true", 2)
            sbatch(script, log, "--wait")
            assert entries_of(base, old.id) == left, log.read_text()
            end(orphans)
    finally:
        subprocess.run(["scancel", killed], capture_output=True)
        end(orphans)

    script, log = job("later", later, new, "true", 2)
    sbatch(script, log, "--wait")
    assert entries_of(base, old.id) == [], log.read_text()
    assert f"{REMOVED} {old.id} in {base} ({', '.join(left)})" in log.read_text()
    assert os.listdir(base) == []  # the later job's own copy went at its leave


def running_from(copy: Path) -> list[int]:
    """The processes whose environment says they run from `copy` (FROZEN_COPY)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"FROZEN_COPY={copy}".encode() in environ:
            found.append(int(entry.name))
    return found


def end(processes: list[int]) -> None:
    for pid in processes:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not any(map(alive, processes)), "the orphans to end")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rpartition(b")")[2].split()[0]
    except OSError:
        return False
    return state != b"Z"


@pytest.mark.slurm
def test_leases_of_other_nodes_on_a_shared_scratch_go_when_slurm_says_their_jobs_ended(
    tmp_path: Path, snapshots
) -> None:
    _, _, later, new = snapshots
    shared = tmp_path / "shared"  # the same folder on every node
    shared.mkdir()
    base = user_folder(shared)
    ended = subprocess.run(
        ["sbatch", "--parsable", "--wait", "--output=/dev/null", "--wrap=true"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    wait_until(lambda: not is_listed(ended), "the ended job to leave squeue")
    running = sbatch_sleeper(tmp_path)
    try:
        wait_until(lambda: job_state(running) == "RUNNING", "the sleeper to run")
        namespace, pid = pid_namespace(), dead_pid()
        leftovers = {
            "a0000000": ("node2", ended, True),  # another node's, its job over
            "a1111111": ("node2", running, False),  # another node's, its job running
            "a2222222": ("node1", ended, True),  # this node's, dead, its job over
            "a3333333": ("node1", running, False),  # this node's, dead, its job running
        }
        for snapshot_id, (host, job_id, _) in leftovers.items():
            record = f"pid {host} {namespace} {pid} 1"
            fake_leftover(base, snapshot_id, {f"{host}.{job_id}.{pid}": record})
            age(base, snapshot_id, 2 * HOUR)
        fake_leftover(base, "a4444444", {f"node2.job{ended}": f"job node2 {ended}"})
        age(base, "a4444444", 2 * HOUR)
        fake_leftover(base, "a5555555", {"node2.77": f"pid node2 {namespace} 77 1"})
        age(base, "a5555555", 2 * HOUR)  # outside SLURM on another node: nothing can tell

        entry = replace(batch_entry(later, new, tmp_path), scratch=str(shared), stale_after=HOUR)
        script = tmp_path / "later.sh"
        script.write_text(render("later", "true", entry))
        sbatch(script, tmp_path / "later.log", "--wait")
    finally:
        subprocess.run(["scancel", running], capture_output=True)
    log = (tmp_path / "later.log").read_text()
    kept = sorted({snapshot_of(n) for n in os.listdir(base)} - {None})
    assert kept == ["a1111111", "a3333333", "a5555555"], log
    assert log.count(REMOVED) == 3


def sbatch_sleeper(tmp_path: Path) -> str:
    return subprocess.run(
        ["sbatch", "--parsable", "--output=/dev/null", "--wrap=sleep 120"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


def job_state(job_id: str) -> str:
    listed = subprocess.run(
        ["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True
    )
    return listed.stdout.strip()
