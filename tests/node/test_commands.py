"""The node side: scratch resolution, the job's PYTHONPATH, extracting once per node, sharing
the copy between concurrent jobs, and removing it after the last one."""

import dataclasses
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pytest
from helpers.node import (
    NODE_RUN,
    batch_entry,
    enter_args,
    exports,
    make_code,
    node,
    processes_in,
    user_folder,
)

from snakemake_executor_plugin_frozen.jobscript import render
from snakemake_executor_plugin_frozen.node.commands import JOBSITE, frozen_pythonpath
from snakemake_executor_plugin_frozen.node.scratch import (
    NodeError,
    resolve_scratch,
)
from snakemake_executor_plugin_frozen.snapshot import PackResult, pack

# -- scratch ----------------------------------------------------------------------------------


def test_scratch_default_prefers_slurm_tmpdir_then_tmpdir_then_tmp() -> None:
    assert resolve_scratch("", {"SLURM_TMPDIR": "/a", "TMPDIR": "/b"}) == Path("/a")
    assert resolve_scratch("", {"TMPDIR": "/b"}) == Path("/b")
    assert resolve_scratch("", {}) == Path("/tmp")


def test_scratch_placeholders_are_filled_on_the_node() -> None:
    environ = {"LOCAL": "/local/job7", "USER": "ann"}
    assert resolve_scratch("{LOCAL}/frozen-{USER}", environ) == Path("/local/job7/frozen-ann")
    # `$VAR` is not ours to expand: Snakemake's profile parser did that on the login node.
    assert resolve_scratch("/scratch/$HOME", environ) == Path("/scratch/$HOME")


def test_scratch_placeholder_for_an_unset_variable_names_it() -> None:
    with pytest.raises(NodeError, match=r"frozen-scratch.*\{LOCAL\}.*\$LOCAL is not set"):
        resolve_scratch("{LOCAL}/frozen", {})


def test_a_relative_scratch_is_refused_naming_the_setting() -> None:
    """It would land in the job's working directory: the live workflow."""
    with pytest.raises(NodeError, match=r"setting frozen-scratch '\{SUB\}/x' .* relative"):
        resolve_scratch("{SUB}/x", {"SUB": "scratch"})
    with pytest.raises(NodeError, match=r"\$TMPDIR .* relative path 'tmp'.*working directory"):
        resolve_scratch("", {"TMPDIR": "tmp"})


# -- PYTHONPATH -------------------------------------------------------------------------------


def test_pythonpath_puts_the_copy_first_and_rewrites_entries_into_the_code_root() -> None:
    live, copy = Path("/home/ann/wf"), Path("/scratch/frozen/abc")
    twins = {copy / "src", copy / "lib"}
    path = frozen_pythonpath(
        copy,
        live,
        "/home/ann/wf/src:/opt/shared/python:/home/ann/wf/build",
        ["/usr/lib/python3.11", "/home/ann/wf/lib", "/home/ann/wf/.venv/lib/site-packages"],
        exists=lambda p: p in twins,
    )
    assert path == [
        "/scratch/frozen/abc",
        "/scratch/frozen/abc/src",  # export PYTHONPATH=$PWD/src, frozen
        "/opt/shared/python",  # outside the code root: untouched
        "/home/ann/wf/build",  # not in the snapshot: nothing frozen to use instead
        "/scratch/frozen/abc/lib",  # added by a .pth (pip install -e .): shadowed
    ]


def test_pythonpath_resolves_relative_entries_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    copy = Path("/scratch/x")
    path = frozen_pythonpath(copy, tmp_path, "src", [], exists=lambda p: p == copy / "src")
    assert path == ["/scratch/x", "/scratch/x/src"]


# -- the per-user folder ---------------------------------------------------------------------


def test_user_folder_is_made_private_inside_an_existing_scratch(tmp_path: Path) -> None:
    old = os.umask(0o277)  # whatever the umask, it is 0700
    try:
        folder = user_folder(tmp_path)
    finally:
        os.umask(old)
    assert folder == tmp_path / f"snakemake-frozen-{os.getuid()}"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert user_folder(tmp_path) == folder  # and used again as it is


def test_a_missing_scratch_is_not_made_but_named_with_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "scratch"
    with pytest.raises(NodeError) as refused:
        user_folder(missing)
    assert f"the scratch folder {missing} does not exist" in str(refused.value)
    assert f"mkdir -p {missing} && chmod 1777 {missing}" in str(refused.value)
    assert "frozen-scratch" in str(refused.value)
    assert not (tmp_path / "no").exists()


def test_a_wider_user_folder_is_refused_not_chmodded(tmp_path: Path) -> None:
    """Files may have been planted in it while it was open: it is not ours to trust."""
    folder = user_folder(tmp_path)
    folder.chmod(0o777)
    with pytest.raises(NodeError, match=r"has mode 0777, not 0700.*rm -rf .*frozen-scratch"):
        user_folder(tmp_path)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777


def test_user_folder_refuses_a_symlink(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (tmp_path / f"snakemake-frozen-{os.getuid()}").symlink_to(elsewhere)
    with pytest.raises(NodeError, match="is a symbolic link, not a folder"):
        user_folder(tmp_path)


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to create another user's directory")
def test_user_folder_refuses_another_users_folder(tmp_path: Path) -> None:
    planted = tmp_path / f"snakemake-frozen-{os.getuid()}"
    planted.mkdir(mode=0o700)
    os.chown(planted, 65534, 65534)
    with pytest.raises(NodeError, match="is owned by uid 65534, not by you"):
        user_folder(tmp_path)


# -- enter and leave, as the batch script runs them -------------------------------------------


@pytest.fixture
def holders():
    """Live processes standing in for job shells (a lease is live while its pid is)."""
    started: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        started.append(subprocess.Popen(["sleep", "60"]))
        return started[-1]

    yield start
    for process in started:
        process.kill()
        process.wait()


def test_concurrent_jobs_extract_once_share_the_copy_and_the_last_removes_it(
    tmp_path: Path, snapshot: tuple[Path, PackResult], holders
) -> None:
    code, result = snapshot
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    jobs = [holders() for _ in range(4)]
    entering = [
        subprocess.Popen(
            [
                sys.executable, "-P", "-m", "snakemake_executor_plugin_frozen.node",
                *enter_args(code, result, scratch, job.pid),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for job in jobs
    ]  # fmt: skip
    outputs = [p.communicate() for p in entering]
    assert all(p.returncode == 0 for p in entering), outputs
    said = [err for _, err in outputs]
    assert sum(" extracted at " in s for s in said) == 1, said
    assert sum(" reused at " in s for s in said) == 3, said

    environments = [exports(out) for out, _ in outputs]
    copy = Path(environments[0]["FROZEN_DIR"])
    assert copy == scratch / f"snakemake-frozen-{os.getuid()}" / result.id
    assert {e["FROZEN_DIR"] for e in environments} == {str(copy)}
    # The job-site folder (the sitecustomize every Python process of the job runs), then
    # the copy, ahead of anything live.
    pythonpath = environments[0]["PYTHONPATH"].split(":")
    assert pythonpath[:2] == [str(JOBSITE), str(copy)]
    assert environments[0]["FROZEN_PYTHONPATH"] == str(copy)
    assert (copy / "pkg" / "__init__.py").read_text() == "V = 1\n"
    assert os.access(copy / "run.sh", os.X_OK)
    # Each job has its own directory (for its Snakemake source cache).
    assert len({e["FROZEN_JOB_DIR"] for e in environments}) == 4

    for environment in environments[:3]:
        assert node("leave", env=environment).returncode == 0
        assert copy.is_dir(), "removed while a job still uses it"
    assert not Path(environments[0]["FROZEN_JOB_DIR"]).exists()
    assert node("leave", env=environments[3]).returncode == 0
    assert not copy.exists()
    assert list(copy.parent.iterdir()) == []  # no seal, lock or leases folder left either


def test_keep_extracted_leaves_the_copy(
    tmp_path: Path, snapshot: tuple[Path, PackResult], holders
) -> None:
    code, result = snapshot
    entered = node(*enter_args(code, result, tmp_path, holders().pid), "--keep")
    environment = exports(entered.stdout)
    assert node("leave", env=environment).returncode == 0
    assert Path(environment["FROZEN_DIR"], "Snakefile").is_file()


def test_a_dead_jobs_lease_does_not_pin_the_copy(
    tmp_path: Path, snapshot: tuple[Path, PackResult], holders
) -> None:
    """A job killed before its EXIT trap ran leaves its lease behind; it must not keep the
    copy on the node forever."""
    code, result = snapshot
    dead = subprocess.Popen(["true"])
    dead.wait()
    killed = node(*enter_args(code, result, tmp_path, dead.pid))
    alive = node(*enter_args(code, result, tmp_path, holders().pid))
    assert killed.returncode == alive.returncode == 0
    environment = exports(alive.stdout)
    assert node("leave", env=environment).returncode == 0
    assert not Path(environment["FROZEN_DIR"]).exists()


def test_debris_of_a_crashed_extraction_is_never_trusted(
    tmp_path: Path, snapshot: tuple[Path, PackResult], holders
) -> None:
    code, result = snapshot
    base = user_folder(tmp_path)
    debris = base / f".{result.id}.0123456789ab.tmp"
    debris.mkdir()
    (debris / "Snakefile").write_text("half-written")
    entered = node(*enter_args(code, result, tmp_path, holders().pid))
    assert entered.returncode == 0, entered.stderr
    assert " extracted at " in entered.stderr
    assert (base / result.id / "Snakefile").read_text() == "rule a:\n    output: 'x'\n"
    assert not debris.exists()


def test_a_tampered_archive_is_refused_and_nothing_is_extracted(
    tmp_path: Path, snapshot: tuple[Path, PackResult], holders
) -> None:
    code, result = snapshot
    args = enter_args(code, result, tmp_path, holders().pid)
    args[args.index("--sha256") + 1] = "0" * 64
    entered = node(*args)
    assert entered.returncode == 1
    assert entered.stderr.startswith("frozen: error: snapshot ")
    assert "sha256" in entered.stderr
    assert entered.stdout == ""
    assert not (tmp_path / f"snakemake-frozen-{os.getuid()}" / result.id).exists()


def test_batch_script_stops_when_the_snapshot_cannot_be_entered(
    tmp_path: Path, snapshot: tuple[Path, PackResult]
) -> None:
    """`set -e` must stop the job before Snakemake runs from anything else."""
    code, result = snapshot
    entry = replace(batch_entry(code, result, tmp_path), archive_sha256="f" * 64)
    script = tmp_path / "job.sh"
    script.write_text(render("test job", "echo RAN-THE-JOB", entry))
    ran = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    assert ran.returncode != 0
    assert "RAN-THE-JOB" not in ran.stdout
    assert "frozen: error: snapshot" in ran.stderr


def test_batch_script_runs_the_job_from_the_copy_and_cleans_up(
    tmp_path: Path, snapshot: tuple[Path, PackResult]
) -> None:
    code, result = snapshot
    entry = batch_entry(code, result, tmp_path)
    script = tmp_path / "job.sh"
    command = 'python3 -c "import pkg, sys; print(pkg.__file__)"; echo "DIR=$FROZEN_DIR"'
    script.write_text(render("test job", command, entry))
    ran = subprocess.run(
        ["bash", str(script)], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""}
    )
    assert ran.returncode == 0, ran.stderr
    imported, frozen_dir = ran.stdout.splitlines()
    assert frozen_dir.startswith(f"DIR={tmp_path}/snakemake-frozen-")
    assert imported == frozen_dir.removeprefix("DIR=") + "/pkg/__init__.py"
    assert ran.stderr.startswith(f"frozen: snapshot {result.id} from {result.archive}")
    assert not Path(frozen_dir.removeprefix("DIR=")).exists()


@pytest.mark.parametrize("user", ["root", "ordinary"])
def test_every_program_of_the_job_sees_the_snapshot_at_the_live_paths(
    user: str, request: pytest.FixtureRequest
) -> None:
    """The mount view, entered by `run` (as root, and as an ordinary user through a user
    namespace): bash reads the snapshot's file at its live path, a file added since is not
    in the folder bound whole, a write into the code is refused and names the setting, and
    data beside the code stays live and writable."""
    python, prefix = sys.executable, []
    if user == "ordinary":  # with a Python of its own: root's is not for other users
        account = request.getfixturevalue("ordinary_user_account")
        python = str(account.venv / "bin" / "python")
        prefix = ["setpriv", f"--reuid={account.uid}", f"--regid={account.gid}", "--clear-groups"]
    # Not in pytest's tmp_path: it lies in root's 0700 folder.
    world = Path(tempfile.mkdtemp(prefix="frozen-view-"))
    request.addfinalizer(lambda: shutil.rmtree(world))
    world.chmod(0o755)
    code = make_code(world / "code", module="V = 'snapshot'\n")
    result = pack(code, world / "store")
    (code / "pkg" / "__init__.py").write_text("V = 'edited'\n")
    (code / "pkg" / "added.py").write_text("")
    scratch = world / "scratch"
    scratch.mkdir()
    scratch.chmod(0o1777)
    entry = replace(
        batch_entry(code, result, world), python=python, scratch=str(scratch), whole=("pkg",)
    )
    script = world / "job.sh"
    command = (
        "cat pkg/__init__.py; ls pkg; echo made > data.txt; cat data.txt; "
        "echo x >> pkg/__init__.py || echo WRITE-REFUSED; "
        "echo x >> Snakefile || echo FILE-WRITE-REFUSED; false"
    )
    script.write_text(render("test job", command, entry, python=python))
    if prefix:
        for path in [code, *code.rglob("*"), world / "store", *(world / "store").rglob("*")]:
            os.chown(path, account.uid, account.gid)
    log = world / "job.log"  # a file, as SLURM's: `run` follows it
    with open(log, "w") as stderr:
        ran = subprocess.run(
            [*prefix, "bash", str(script)], cwd=code, stdout=subprocess.PIPE, stderr=stderr,
            text=True, env={**os.environ, "PYTHONPATH": ""},
        )  # fmt: skip
    text = log.read_text()
    assert ran.returncode == 1, text
    assert ran.stdout.splitlines() == [
        "V = 'snapshot'", "__init__.py", "made", "WRITE-REFUSED", "FILE-WRITE-REFUSED"
    ]  # fmt: skip
    kind = "mount namespace" if user == "root" else "user and mount namespace"
    assert f"frozen: view: mount ({kind} on " in text
    assert "1 folder(s) and 2 file(s) of snapshot" in text
    # An ordinary user's write is refused by the file's mode (0444) before the mount's.
    refused = "Read-only file system" if user == "root" else "Permission denied"
    assert f"pkg/__init__.py: {refused}" in text
    assert f"Snakefile: {refused}" in text
    assert "frozen-copy: per-job (--frozen-copy per-job)" in text
    assert (code / "pkg" / "__init__.py").read_text() == "V = 'edited'\n"
    assert (code / "data.txt").read_text() == "made\n"


def test_a_failing_cleanup_does_not_change_the_jobs_exit_status(
    tmp_path: Path, snapshot: tuple[Path, PackResult]
) -> None:
    """The job's outcome is the job's: a cleanup error is reported in the log, not as a
    failed job (and a failed job keeps its own exit code)."""
    code, result = snapshot
    script = tmp_path / "job.sh"
    sabotage = 'rm -rf "$(dirname "$FROZEN_DIR")"'  # leave then cannot take its lock
    # Outside the mount view, where the copy is not read-only to root.
    entry = dataclasses.replace(batch_entry(code, result, tmp_path), view="python")
    for command, expected in ((sabotage, 0), (f"{sabotage}; exit 3", 3)):
        script.write_text(render("test job", command, entry))
        ran = subprocess.run(["bash", str(script)], capture_output=True, text=True)
        assert ran.returncode == expected, ran.stderr
        assert "frozen: error:" in ran.stderr


# -- run: the job's command, ended when stuck, with what it leaves behind ---------------------

ANNOUNCED = "Shutting down, this might take some time."  # Snakemake's, after a failure
SHUT_DOWN = "Exiting because a job execution failed. Look above for error messages"


class Job:
    """`node run` of a bash command in `tmp_path/job`, its log (stdout and stderr) a file
    as in a SLURM job."""

    def __init__(
        self, tmp_path: Path, command: str, grace: float = 1.0, options: tuple[str, ...] = ()
    ) -> None:
        self.folder = tmp_path / "job"
        self.folder.mkdir(exist_ok=True)
        self.log = tmp_path / "job.log"
        self.started = time.monotonic()
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [*NODE_RUN, "--grace", str(grace), *options, "--", "bash", "-c", command],
                cwd=self.folder,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )

    def wait(self) -> tuple[int, float, str]:
        """Exit status, seconds taken, log."""
        try:
            status = self.process.wait(timeout=60)
        finally:
            self.process.kill()
        return status, time.monotonic() - self.started, self.log.read_text()

    def wait_for(self, text: str) -> None:
        deadline = time.monotonic() + 30
        while text not in self.log.read_text():
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.05)


def test_run_ends_a_job_whose_snakemake_waits_forever_after_announcing_its_shutdown(
    tmp_path: Path,
) -> None:
    """As after a pipe() group's failed producer: a consumer blocked for good opening the
    FIFO, another one orphaned; the job ends, with status 1, and nothing of it is left."""
    hung = f"mkfifo p; (cat p &); echo '{ANNOUNCED}' >&2; cat p"
    status, seconds, log = Job(tmp_path, hung, grace=1).wait()
    assert status == 1, log
    assert 1 < seconds < 5, log
    assert "announced its shutdown after a failure 1 s ago and still waits" in log
    assert "(cat p)" in log
    assert processes_in(tmp_path) == []


WILL_EXIT = "Will exit after finishing currently running jobs (scheduler)."


def test_run_ends_a_single_rule_job_whose_snakemake_hangs_after_a_failure(tmp_path: Path) -> None:
    """Snakemake 9 hangs so after a `run:` block called sys.exit: its main thread asleep in a
    futex, no child (a stand-in here: tests/node/test_supervise.py uses the real one).
    The log line alone ends nothing (issue 15 item 11): a job that prints it and works on
    runs to its end; in a group job other rules may still run after that line."""
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "snakemake").write_text(
        "import threading\nlock = threading.Lock()\nlock.acquire()\nlock.acquire()\n"
    )
    for line in (WILL_EXIT, "Exception in worker"):
        hung = f"echo '{line}' >&2; exec python3 {tmp_path}/bin/snakemake"
        job = Job(tmp_path, hung, grace=1, options=("--single-rule",))
        status, seconds, log = job.wait()
        assert status == 1 and 1 < seconds < 8, log
        assert "or a run: block that called sys.exit" in log
        (tmp_path / "job.log").unlink()
    healthy = f"echo '{WILL_EXIT}' >&2; sleep 2.5; echo DONE"
    status, seconds, log = Job(tmp_path, healthy, grace=1, options=("--single-rule",)).wait()
    assert status == 0 and seconds > 2.5 and log.endswith("DONE\n"), log
    (tmp_path / "group").mkdir()
    group = Job(tmp_path / "group", f"echo '{WILL_EXIT}' >&2; sleep 2.5; echo DONE", grace=1)
    status, seconds, log = group.wait()
    assert status == 0 and seconds > 2.5 and log.endswith("DONE\n"), log


@pytest.mark.parametrize(
    "command",
    [
        "sleep 2.5; echo DONE",  # a long job: never announces a shutdown
        # after the announcement, the wait ended: what follows is Snakemake's own business
        f"echo '{ANNOUNCED}' >&2; echo '{SHUT_DOWN}' >&2; sleep 2.5; echo DONE",
    ],
)
def test_run_leaves_a_job_that_is_not_stuck_alone(tmp_path: Path, command: str) -> None:
    (tmp_path / "job.log").write_text(f"{ANNOUNCED}\n")  # an earlier attempt's: not this job's
    status, seconds, log = Job(tmp_path, command, grace=1).wait()
    assert status == 0, log
    assert seconds > 2.5
    assert log.endswith("DONE\n"), log
    assert "frozen:" not in log


def test_run_ends_what_the_job_left_behind_and_keeps_its_status(tmp_path: Path) -> None:
    """An orphan keeps the job's process group; a `setsid` daemon does not, but it is
    orphaned to `run`, the subreaper."""
    leaves = "setsid sleep 300 & (sleep 301 &); sleep 0.5; exit 3"
    status, seconds, log = Job(tmp_path, leaves).wait()
    assert status == 3, log
    assert seconds < 3, log
    assert "the job's command ended, leaving processes running; ended: " in log
    assert "(sleep 300)" in log and "(sleep 301)" in log
    assert processes_in(tmp_path) == []


@pytest.mark.parametrize(
    ("command", "status", "at_least"), [("sleep 300", 143, 0), ("trap '' TERM; sleep 300", 137, 1)]
)
def test_run_passes_a_termination_on_and_kills_a_job_that_ignores_it(
    tmp_path: Path, command: str, status: int, at_least: float
) -> None:
    """A local cancel signals only `run`'s process group: the job must get it too."""
    job = Job(tmp_path, f"echo STARTED; {command}", grace=1)
    job.wait_for("STARTED")
    signalled = time.monotonic()
    job.process.terminate()
    ended, _, log = job.wait()
    assert ended == status, log
    assert at_least <= time.monotonic() - signalled < at_least + 4, log
    assert processes_in(tmp_path) == []


def test_batch_script_runs_a_command_of_any_length_under_run(tmp_path: Path) -> None:
    """The script runs itself again for the command, which stays a line of the script: as
    one argument it could not be longer than 128 KiB."""
    script = tmp_path / "job" / "job.sh"
    script.parent.mkdir()
    # (The pause lets the background shell become `sleep` before the command ends.)
    long_command = f": {'x' * 200_000}; (sleep 302 &); sleep 0.5; echo RAN"
    script.write_text(render("test job", long_command, None))
    ran = subprocess.run(["bash", str(script)], cwd=script.parent, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "RAN\n"
    assert "(sleep 302)" in ran.stderr
    assert processes_in(tmp_path) == []
