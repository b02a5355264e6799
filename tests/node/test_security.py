"""The node's trust boundary, attacked: root runs the jobs and `nobody` (uid 65534) is the
hostile neighbour on the node. Whatever nobody plants, swaps or races, a job either refuses
with a message saying why and what to do, or runs the snapshot's own code; a planted module
would write a marker file, which must never appear. Also: the copy is read-only and sealed,
so an edit of a reused copy is seen and undone, and every scratch problem names the folder
and the frozen-scratch setting."""

import fcntl
import os
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers.files import shared_folder
from helpers.node import enter_args, exports, make_code, node
from helpers.users import AS_NOBODY, NOBODY

from snakemake_executor_plugin_frozen.node.copy import locked, seal
from snakemake_executor_plugin_frozen.node.leases import lease_is_live, pid_namespace, process_start
from snakemake_executor_plugin_frozen.node.scratch import open_user_folder
from snakemake_executor_plugin_frozen.snapshot import PackResult, pack

pytestmark = pytest.mark.skipif(
    os.getuid() != 0 or not shutil.which("setpriv"),
    reason="needs root, and setpriv to act as another user",
)
# Padded so that a malicious module of exactly the same size fits in its place.
MODULE = "V = 'snapshot'\n" + "#" * 200 + "\n"
NODE_MODULE = "snakemake_executor_plugin_frozen.node"


@dataclass
class Node:
    """A snapshot and a scratch folder (sticky and world-writable, like /tmp) in a folder
    that nobody can reach; the marker that foreign code would write."""

    root: Path
    code: Path
    result: PackResult
    scratch: Path
    marker: Path

    def base(self, uid: int = 0) -> Path:
        return self.scratch / f"snakemake-frozen-{uid}"

    def copy(self, uid: int = 0) -> Path:
        return self.base(uid) / self.result.id

    def malicious(self, size: int = len(MODULE)) -> str:
        code = f"import pathlib\npathlib.Path({str(self.marker)!r}).write_text('ran')\nV = 'x'\n"
        return code.ljust(size - 1, "#") + "\n"

    def enter(self, *, scratch: Path | None = None, user=(), **env: str):
        """`enter` as the batch script runs it; the pytest process is the live job shell."""
        args = enter_args(self.code, self.result, scratch or self.scratch, os.getpid())
        return node(*args, user=user, env=env)

    def job_imports(self, entered: subprocess.CompletedProcess[str], user=()) -> str:
        """What `import pkg` gives a Python process of the job (run in a neutral folder)."""
        assert entered.returncode == 0, entered.stderr
        # Only what the job's exports say about bytecode (this shell may say more).
        inherited = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        ran = subprocess.run(
            [*user, sys.executable, "-c", "import pkg; print(pkg.V)"],
            capture_output=True,
            text=True,
            cwd=self.root,
            env={**inherited, **exports(entered.stdout)},
        )
        assert ran.returncode == 0, ran.stderr
        return ran.stdout.strip()

    def replaced(self, entered, changed: str, uid: int = 0, user=()) -> None:
        """The job's log says the copy differed (`changed`) and was extracted again; the
        job imports the snapshot's code, and no foreign code ran."""
        assert (
            f"frozen: the copy at {self.copy(uid)} differs from snapshot {self.result.id} "
            f"(changed: {changed}): extracted again" in entered.stderr
        )
        assert self.job_imports(entered, user) == "snapshot"
        assert not self.marker.exists()


@pytest.fixture
def world() -> Iterator[Node]:
    with shared_folder("frozen-security-") as root:
        result = pack(make_code(root / "code", MODULE), root / "store")
        scratch = root / "scratch"
        scratch.mkdir()
        scratch.chmod(0o1777)
        yield Node(root, root / "code", result, scratch, root / "marker")


def start_as_nobody(script: str, *args: str) -> subprocess.Popen:
    """The Python ``script`` started as nobody (in this environment)."""
    return subprocess.Popen([*AS_NOBODY, sys.executable, "-c", script, *args])


PLANTER = """
import pathlib, sys
top = pathlib.Path(sys.argv[1])
(top / "pkg").mkdir(parents=True)
(top / "pkg" / "__init__.py").write_text(sys.argv[2])
(top / "Snakefile").write_text("rule a:\\n    output: 'x'\\n")
"""


def plant(folder: Path, module: str, user=()) -> None:
    """A copy-shaped tree whose pkg runs `module`, written by `user`."""
    subprocess.run([*user, sys.executable, "-c", PLANTER, str(folder), module], check=True)


def chown_tree(top: Path, uid: int) -> None:
    for path in [top, *top.rglob("*")]:
        os.chown(path, uid, uid, follow_symlinks=False)


# -- planted copies ---------------------------------------------------------------------------


def test_a_copy_planted_in_a_wide_user_folder_is_refused_and_never_run(world: Node) -> None:
    world.base().mkdir()
    world.base().chmod(0o777)
    planted = world.copy()
    plant(planted, world.malicious(), user=AS_NOBODY)
    assert planted.stat().st_uid == NOBODY
    entered = world.enter()
    assert entered.returncode == 1 and entered.stdout == ""
    assert f"{world.base()} has mode 0777, not 0700" in entered.stderr
    assert f"rm -rf {world.base()}" in entered.stderr and "frozen-scratch" in entered.stderr
    assert not world.marker.exists()
    assert (planted / "pkg" / "__init__.py").is_file(), "the evidence is left alone"


@pytest.mark.parametrize("shape", ["folder of another owner", "link to another's tree"])
def test_a_foreign_entry_under_the_id_is_replaced_never_run(world: Node, shape: str) -> None:
    world.base().mkdir(mode=0o700)
    elsewhere = world.root / "nobodys"
    plant(elsewhere, world.malicious())
    if shape == "folder of another owner":
        plant(world.copy(), world.malicious())
        chown_tree(world.copy(), NOBODY)
        # Even with a seal that matches it (of another owner, too).
        fd = os.open(world.base(), os.O_RDONLY)
        sealed = world.base() / f"{world.result.id}.seal"
        sealed.write_bytes(seal(fd, world.result.id, world.result.archive_sha256))
        os.close(fd)
        os.chown(sealed, NOBODY, NOBODY)
        why = "it is owned by uid 65534, not by this user"
    else:
        world.copy().symlink_to(elsewhere)
        why = "it is a symbolic link, not a folder"
    chown_tree(elsewhere, NOBODY)
    world.replaced(world.enter(), why)
    assert (elsewhere / "pkg" / "__init__.py").is_file(), "nothing is removed through a link"


# -- unsafe scratch folders -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "owner", "why"),
    [
        (0o777, 0, "is writable by others (mode 0777) and not sticky"),
        (0o775, 0, "is writable by its group (mode 0775) and not sticky"),
        (0o755, NOBODY, "is owned by uid 65534, not by root or you (uid 0)"),
        (0o1777, 0, ""),  # sticky, like /tmp: fine
    ],
)
def test_a_scratch_below_a_folder_others_control_is_refused_naming_it(
    world: Node, mode: int, owner: int, why: str
) -> None:
    parent = world.root / "team"
    scratch = parent / "frozen"
    scratch.mkdir(parents=True)
    parent.chmod(mode)
    os.chown(parent, owner, owner)
    entered = world.enter(scratch=scratch)
    if not why:
        assert world.job_imports(entered) == "snapshot"
        return
    assert entered.returncode == 1 and entered.stdout == ""
    assert f"frozen: error: refusing the scratch folder {scratch}: {parent} {why}" in entered.stderr
    assert "frozen-scratch" in entered.stderr
    assert not scratch.joinpath("snakemake-frozen-0").exists(), "nothing made in it"


# A loop of nobody's: as soon as the per-user folder appears, move it away and put a link
# to its own look-alike tree in its place.
RACER = """
import os, sys
scratch, base, evil = sys.argv[1:]
n = 0
while True:
    if os.path.isdir(base) and not os.path.islink(base):
        n += 1
        try:
            os.rename(base, f"{scratch}/moved-{n}")
            os.symlink(evil, base)
        except OSError:
            pass
"""


@pytest.mark.parametrize("mode", [0o777, 0o1777], ids=["writable parent", "sticky parent"])
def test_a_racing_rename_and_symlink_of_the_user_folder_never_runs_foreign_code(
    world: Node, mode: int
) -> None:
    scratch = world.root / "team"
    scratch.mkdir()
    scratch.chmod(mode)
    evil = world.root / "evil"
    plant(evil / world.result.id, world.malicious())
    evil.chmod(0o700)
    chown_tree(evil, NOBODY)
    base = scratch / "snakemake-frozen-0"
    racer = start_as_nobody(RACER, str(scratch), str(base), str(evil))
    outcomes = []
    try:
        for _ in range(50):
            entered = world.enter(scratch=scratch)
            outcomes.append(entered.returncode)
            if entered.returncode == 0:
                assert world.job_imports(entered) == "snapshot"
            else:
                assert "frozen-scratch" in entered.stderr, entered.stderr
            # Start the next try without the folder, to race its creation as well.
            if base.is_symlink() or base.is_file():
                base.unlink(missing_ok=True)
            else:
                shutil.rmtree(base, ignore_errors=True)
    finally:
        racer.kill()
        racer.wait()
    assert not world.marker.exists()
    if mode == 0o777:
        assert set(outcomes) == {1}  # refused before the per-user folder is looked at


# -- the archive ------------------------------------------------------------------------------


SWAPPER = """
import os, sys
a, b, target = sys.argv[1:]
while True:
    for source in (a, b):
        os.link(source, target + ".swap")
        os.replace(target + ".swap", target)
"""


def test_a_swapped_archive_never_puts_the_other_content_under_the_id(world: Node) -> None:
    other = pack(make_code(world.root / "other", "V = 'other'\n"), world.root / "store-2")
    folder = world.root / "archives"
    folder.mkdir()
    a, b, target = folder / "a.tar.zst", folder / "b.tar.zst", folder / "code.tar.zst"
    shutil.copyfile(world.result.archive, a)
    shutil.copyfile(other.archive, b)
    shutil.copyfile(world.result.archive, target)
    chown_tree(folder, NOBODY)
    args = enter_args(world.code, world.result, world.scratch, os.getpid())
    args[args.index("--archive") + 1] = str(target)
    swapper = start_as_nobody(SWAPPER, str(a), str(b), str(target))
    seen = {"right content": 0, "refused": 0}
    try:
        for attempt in range(40):
            scratch = world.root / f"s{attempt}"
            scratch.mkdir()
            args[args.index("--scratch") + 1] = str(scratch)
            entered = node(*args)
            if entered.returncode == 0:
                copy = Path(exports(entered.stdout)["FROZEN_DIR"])
                assert (copy / "pkg" / "__init__.py").read_text() == MODULE
                seen["right content"] += 1
            else:
                assert f"snapshot {world.result.id} from {target}: " in entered.stderr
                assert "has sha256" in entered.stderr or "not a readable" in entered.stderr
                assert not (scratch / "snakemake-frozen-0" / world.result.id).exists()
                seen["refused"] += 1
    finally:
        swapper.kill()
        swapper.wait()
    assert sum(seen.values()) == 40, seen


# -- a reused copy is proven to be the snapshot's ---------------------------------------------


def _edit_keeping_size_and_mtime(copy: Path, malicious: str) -> None:
    module = copy / "pkg" / "__init__.py"
    before = module.stat()
    module.chmod(0o644)
    module.write_text(malicious)
    module.chmod(0o444)
    os.utime(module, ns=(before.st_atime_ns, before.st_mtime_ns))  # only ctime tells


def _root_writes_without_chmod(copy: Path, malicious: str) -> None:
    (copy / "pkg" / "__init__.py").write_text(malicious)


def _add_a_file(copy: Path, malicious: str) -> None:
    (copy / "pkg").chmod(0o755)
    (copy / "pkg" / "evil.py").write_text(malicious)
    (copy / "pkg").chmod(0o555)


def _remove_a_file(copy: Path, malicious: str) -> None:
    copy.chmod(0o755)
    (copy / "run.sh").unlink()
    copy.chmod(0o555)


def _replace_by_a_link(copy: Path, malicious: str) -> None:
    outside = copy.parent.parent.parent / "outside.py"
    outside.write_text(malicious)
    module = copy / "pkg" / "__init__.py"
    module.unlink()
    module.symlink_to(outside)


def _chmod_and_back(copy: Path, malicious: str) -> None:
    (copy / "run.sh").chmod(0o755)
    (copy / "run.sh").chmod(0o555)


TAMPERING = {
    "edit keeping size and mtime": (_edit_keeping_size_and_mtime, "pkg/__init__.py"),
    "root writes without chmod": (_root_writes_without_chmod, "pkg/__init__.py"),
    "a file added": (_add_a_file, "pkg, pkg/evil.py (extra)"),
    "a file removed": (_remove_a_file, "its top folder, run.sh (missing)"),
    "a file replaced by a link": (_replace_by_a_link, "pkg, pkg/__init__.py"),
    "chmod and back": (_chmod_and_back, "run.sh"),
}


@pytest.mark.parametrize("how", TAMPERING)
def test_a_tampered_copy_is_seen_and_extracted_again(world: Node, how: str) -> None:
    tamper, changed = TAMPERING[how]
    first = world.enter()
    assert " extracted at " in first.stderr, first.stderr
    # The job's own imports (as root, who could write __pycache__ there) leave it as sealed.
    assert world.job_imports(first) == "snapshot"
    again = world.enter()
    assert " reused at " in again.stderr and "differs" not in again.stderr
    tamper(world.copy(), world.malicious())
    world.replaced(world.enter(), changed)
    assert " reused at " in world.enter().stderr  # the new copy is sealed in turn


@pytest.mark.parametrize("editor", ["the owner", "root"])
def test_an_edit_of_a_users_copy_by_its_owner_or_root_is_seen(world: Node, editor: str) -> None:
    assert world.job_imports(world.enter(user=AS_NOBODY), user=AS_NOBODY) == "snapshot"
    module = world.copy(NOBODY) / "pkg" / "__init__.py"
    edit = f"import os; os.chmod({str(module)!r}, 0o644); open({str(module)!r}, 'w').write('V = 1')"
    if editor == "the owner":
        subprocess.run([*AS_NOBODY, sys.executable, "-c", edit], check=True)
    else:
        module.write_text("V = 1")  # root needs no chmod
    world.replaced(world.enter(user=AS_NOBODY), "pkg/__init__.py", NOBODY, AS_NOBODY)


def test_modes_of_the_copy_its_seal_lock_leases_and_the_user_folder(world: Node) -> None:
    entered = world.enter()
    job_dir = Path(exports(entered.stdout)["FROZEN_JOB_DIR"])
    copy, base, snapshot_id = world.copy(), world.base(), world.result.id

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.lstat().st_mode)

    assert mode(base) == 0o700
    assert {p.name: mode(p) for p in base.iterdir()} == {
        snapshot_id: 0o555,
        f"{snapshot_id}.seal": 0o400,
        f"{snapshot_id}.lock": 0o600,
        f"{snapshot_id}.leases": 0o700,
    }
    assert {str(p.relative_to(copy)): mode(p) for p in copy.rglob("*")} == {
        ".frozen": 0o555,
        ".frozen/manifest.json": 0o444,
        "Snakefile": 0o444,
        "pkg": 0o555,
        "pkg/__init__.py": 0o444,
        "run.sh": 0o555,
    }
    assert job_dir.parent == base / f"{snapshot_id}.leases"
    assert (mode(job_dir), mode(job_dir / "holder")) == (0o700, 0o600)


def test_a_copy_is_read_only_for_its_owner_too_yet_its_last_leave_removes_it(
    world: Node,
) -> None:
    entered = world.enter(user=AS_NOBODY)
    theirs = world.copy(NOBODY)
    assert entered.returncode == 0 and theirs.stat().st_uid == NOBODY
    for path in (theirs / "pkg" / "new.py", theirs / "pkg" / "__init__.py"):
        write = f"echo x >> {shlex.quote(str(path))}"
        denied = subprocess.run([*AS_NOBODY, "sh", "-c", write], capture_output=True)
        assert denied.returncode != 0 and b"Permission denied" in denied.stderr
    left = node("leave", env=exports(entered.stdout), user=AS_NOBODY)
    assert left.returncode == 0, left.stderr
    assert list(world.base(NOBODY).iterdir()) == []


# -- scratch errors name the scratch folder and the setting -----------------------------------


def test_a_full_scratch_is_named_not_the_archive(world: Node) -> None:
    big = world.root / "big"
    (big / "data").mkdir(parents=True)
    (big / "data" / "noise.bin").write_bytes(os.urandom(300_000))
    result = pack(big, world.root / "store")
    small = world.root / "small"
    small.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=1777", "tmpfs", str(small)],
        capture_output=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs: {mounted.stderr.decode()}")
    try:
        entered = node(*enter_args(big, result, small, os.getpid()))
        assert entered.returncode == 1
        assert (
            f"frozen: error: the scratch folder {small} is full (No space left on device) "
            f"while extracting into {small}/snakemake-frozen-0/{result.id}: free space there "
            "or set frozen-scratch to a folder with room" in entered.stderr
        )
        assert "cannot read" not in entered.stderr
        left = sorted(p.name for p in (small / "snakemake-frozen-0").iterdir())
        assert left == [f"{result.id}.lock"], "no partial copy, no temporary folder"
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_a_scratch_the_user_cannot_write_is_named_with_the_fix(world: Node) -> None:
    scratch = world.root / "roots-only"
    scratch.mkdir(mode=0o755)
    entered = world.enter(scratch=scratch, user=AS_NOBODY)
    assert entered.returncode == 1
    assert (
        f"cannot create {scratch}/snakemake-frozen-65534 in the scratch folder {scratch}: "
        f"Permission denied; make it writable for its users (chmod 1777 {scratch}) or "
        "change the setting frozen-scratch" in entered.stderr
    )


# -- locks and leases -------------------------------------------------------------------------


def test_a_job_waiting_on_a_removed_lock_takes_the_one_now_at_its_name(world: Node) -> None:
    base, _ = open_user_folder(world.scratch, create=True)
    lock = world.base() / "abc.lock"
    inside = threading.Event()
    second_holds_the_named_lock = []

    def second_job() -> None:
        with locked(base, "abc"):
            inside.set()
            probe = os.open(lock, os.O_RDONLY | os.O_CREAT)
            try:
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
                second_holds_the_named_lock.append(False)  # a third job would get in
            except BlockingIOError:
                second_holds_the_named_lock.append(True)
            finally:
                os.close(probe)

    try:
        with locked(base, "abc"):
            waiting = threading.Thread(target=second_job)
            waiting.start()
            time.sleep(0.3)  # the second job now waits on the file we hold
            assert not inside.is_set()
            lock.unlink()  # as `leave` does with the last copy
        waiting.join(10)
        assert second_holds_the_named_lock == [True]
    finally:
        os.close(base)


def test_leases_are_named_by_job_and_judged_by_the_very_process(world: Node) -> None:
    host = socket.gethostname()
    entered = world.enter(SLURM_JOB_ID="4242")
    job_dir = Path(exports(entered.stdout)["FROZEN_JOB_DIR"])
    assert job_dir.name == f"{host}.4242.{os.getpid()}"
    record = (job_dir / "holder").read_text()
    namespace, start = pid_namespace(), process_start(os.getpid())
    assert record == f"pid {host} {namespace} {os.getpid()} {start}"
    assert lease_is_live(record, host, namespace)
    # The same pid with another start time is another process: the lease is dead.
    assert not lease_is_live(f"pid {host} {namespace} {os.getpid()} 1", host, namespace)
    # Nothing to check from here: another node's, another pid namespace's, a job lease.
    assert lease_is_live(f"pid node9 {namespace} {os.getpid()} 1", host, namespace)
    assert lease_is_live(f"pid {host} pid:[1] {os.getpid()} 1", host, namespace)
    assert lease_is_live(f"job {host} 4242", host, namespace)


def test_leases_from_per_job_pid_namespaces_neither_collide_nor_look_dead(world: Node) -> None:
    """Two jobs whose shells both have pid 2 in their own namespaces; then a job in the
    node's namespace leaves: it must not remove the copy they run from."""
    inside = []
    holders = []
    for job in ("77", "78"):
        out = world.root / f"job{job}.env"
        args = enter_args(world.code, world.result, world.scratch, 0)[:-1]  # holder: $!
        command = shlex.join([sys.executable, "-P", "-m", NODE_MODULE, *args])
        script = f"sleep 60 & {command} $! > {out}; wait"
        inside.append(
            subprocess.Popen(
                ["unshare", "--pid", "--fork", "--mount-proc", "bash", "-c", script],
                env={**os.environ, "SLURM_JOB_ID": job},
            )
        )
        deadline = time.monotonic() + 30
        while not (out.exists() and "FROZEN_JOB_DIR" in out.read_text()):
            assert time.monotonic() < deadline, "enter in a pid namespace did not finish"
            time.sleep(0.1)
        holders.append(Path(exports(out.read_text())["FROZEN_JOB_DIR"]).name)
    try:
        host = socket.gethostname()
        pid = holders[0].rpartition(".")[2]
        assert holders == [f"{host}.77.{pid}", f"{host}.78.{pid}"]  # the same pid, twice
        leases = world.base() / f"{world.result.id}.leases"
        assert sorted(p.name for p in leases.iterdir()) == holders
        holder = subprocess.Popen(["sleep", "60"])
        args = enter_args(world.code, world.result, world.scratch, holder.pid)
        mine = exports(node(*args).stdout)
        holder.kill()
        holder.wait()
        assert node("leave", env=mine).returncode == 0
        assert world.copy().is_dir(), "removed while jobs in other pid namespaces use it"
        assert sorted(p.name for p in leases.iterdir()) == holders
    finally:
        for process in inside:
            process.kill()
            process.wait()
