"""Running Snakemake as a user runs it: a test workflow made in tmp_path, a run to its end
(`run_snakemake`) or in the background (`BackgroundRun`)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.version import Version

from helpers.files import write
from helpers.paths import WORKFLOWS
from helpers.snapshots import git


def snakemake_at_least(release: str) -> bool:
    """Whether the Snakemake the tests run (in this process and as `python -m snakemake`:
    this Python's) is `release` or newer. scripts/test runs the freezing tests and
    Snakemake's executor test cases a second time with .venv-oldest, which has the oldest
    Snakemake pyproject.toml allows."""
    return Version(version("snakemake")) >= Version(release)


# --replace-workflow-config came with Snakemake 9.0.
KNOWS_REPLACE_WORKFLOW_CONFIG = snakemake_at_least("9.0")

SUBMITTED_RE = re.compile(r"^Job \d+ submitted as (\S+) \(log: (\S+)\)$", re.MULTILINE)
# The executor with local submission: no SLURM needed.
LOCAL = ("--executor", "frozen", "--frozen-submit", "local", "-j1")


def make_workflow(
    tmp_path: Path,
    source: str | None = None,
    *,
    files: Mapping[str, str | bytes] | None = None,
    modes: Mapping[str, int] | None = None,
    folder: str = "wf",
    git_repo: bool = False,
    ignore: str = "",
) -> Path:
    """A workflow at ``tmp_path/folder``: a copy of tests/workflows/<source> (or a new folder)
    with ``files`` (path: content) written into it, with their ``modes``; with ``git_repo``
    (or an ``ignore``), a git repository of its own (its code root): ``commit_workflow``."""
    workdir = tmp_path / folder
    if source is None:
        workdir.mkdir(parents=True)
    else:
        shutil.copytree(WORKFLOWS / source, workdir)
    for rel, content in (files or {}).items():
        write(workdir, rel, content, mode=(modes or {}).get(rel))
    if git_repo or ignore:
        commit_workflow(workdir, ignore)
    return workdir


def commit_workflow(workdir: Path, ignore: str = "") -> Path:
    """``workdir`` made a git repository with ``ignore`` as its .gitignore, everything in it
    committed as "v1"."""
    if ignore:
        (workdir / ".gitignore").write_text(ignore)
    git(workdir, "init", "-q")
    git(workdir, "add", "-A")
    git(workdir, "commit", "-qm", "v1")
    return workdir


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

    def __enter__(self) -> BackgroundRun:
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
