import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from user_helpers import (
    OrdinaryUser,
    SetupError,
    UserAccount,
    make_workspace,
    remove_workspace,
)

REPO = Path(__file__).resolve().parents[1]
CLUSTER_SCRIPT = REPO / "scripts" / "slurm-cluster"
DEMO = REPO / "workflows" / "demo"
SUBMITTED_RE = re.compile(r"^Job \d+ submitted as (\S+) \(log: (\S+)\)$", re.MULTILINE)


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    """The real local SLURM cluster, started through the project's own script.

    Under CI=true a test that needs SLURM fails when the cluster cannot be had: a skipped
    cluster test would let CI pass without ever talking to SLURM."""
    result = subprocess.run(
        [str(CLUSTER_SCRIPT), "start", "--nodes", "2", "--cpus", "4"],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        message = f"SLURM cluster unavailable:\n{result.stdout}\n{result.stderr}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def ordinary_user_account(slurm_cluster: None) -> UserAccount:
    """The ordinary (non-root) test user made by `scripts/slurm-cluster start`, with its
    Python (`scripts/lib/user.sh setup`: built once per machine, refreshed when the plugin's
    sources change). Fails under CI=true when it cannot be had, like `slurm_cluster`."""
    try:
        return UserAccount.set_up()
    except SetupError as e:
        message = f"ordinary test user unavailable: {e}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def ordinary_user(
    ordinary_user_account: UserAccount, request: pytest.FixtureRequest
) -> Iterator[OrdinaryUser]:
    """The test user with a fresh workspace of its own (`<home>/t/<test>-<random>`, 0700),
    removed afterwards unless the test failed. `.run(...)` runs a command as the user,
    `.argv(...)` gives the argv for Popen or `BackgroundRun(..., python=...)`."""
    workspace = make_workspace(ordinary_user_account, request.node.name)
    failed_before = request.session.testsfailed
    yield OrdinaryUser(ordinary_user_account, workspace)
    # (the test's own call has been reported by now: a failure counts)
    if request.session.testsfailed == failed_before:
        remove_workspace(workspace)


@pytest.fixture(autouse=True)
def _cluster_for_slurm_tests(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("slurm"):
        request.getfixturevalue("slurm_cluster")


def run_snakemake(
    workdir: Path, *args: str, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """`python -m snakemake` in workdir, as a user runs it (profiles in workdir apply)."""
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout[-6000:]}\n{result.stderr[-12000:]}"
        )
    return result


@pytest.fixture
def demo_copy(tmp_path: Path) -> Path:
    """A fresh copy of the demo workflow, outside any git repository."""
    target = tmp_path / "demo"
    shutil.copytree(DEMO, target, ignore=shutil.ignore_patterns("results", ".snakemake"))
    return target


class BackgroundRun:
    """`python -m snakemake *args` in the background, its output going to a file we can watch.

    Used as a context manager: on the way out a still running snakemake is killed and every
    SLURM job it submitted is cancelled, so a failed test leaves no sleepers on the cluster."""

    def __init__(
        self,
        workdir: Path,
        *args: str,
        env: dict[str, str] | None = None,
        python: Sequence[str] = (sys.executable,),
    ) -> None:
        """`python`: the argv that starts Python, e.g. `ordinary_user.argv("python")` to run
        as the test user (whose process is then Python itself, so killing it works)."""
        self.log = workdir.parent / "snakemake.log"
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [*python, "-m", "snakemake", *args],
                cwd=workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def __enter__(self) -> "BackgroundRun":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        ids = [job_id for job_id, _ in self.submitted()]
        if ids:
            subprocess.run(["scancel", *ids], capture_output=True)

    def output(self) -> str:
        return self.log.read_text()

    def submitted(self) -> list[tuple[str, Path]]:
        """(job id, log path) of every "Job N submitted as <id> (log: ...)" line so far."""
        return [(job_id, Path(log)) for job_id, log in SUBMITTED_RE.findall(self.output())]

    def wait_for_submissions(self, count: int, timeout: float = 120) -> list[tuple[str, Path]]:
        deadline = time.monotonic() + timeout
        while len(jobs := self.submitted()) < count:
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"fewer than {count} jobs submitted:\n{self.output()}")
            time.sleep(0.2)
        return jobs

    def finish(self, timeout: float = 300) -> tuple[int, str]:
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"snakemake still runs after {timeout} s:\n{self.output()}")
        return code, self.output()
