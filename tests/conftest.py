"""Fixtures for every test: the real SLURM cluster (which `@pytest.mark.slurm` tests get
started), the ordinary user, gc without its grace period, and the `repo` of a test's
`tree` mark. The shared helpers are the package `helpers` (tests/helpers/, importable
through pytest's `pythonpath`); fixtures of one folder are in that folder's conftest.py."""

import os
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
from helpers.paths import CLUSTER_SCRIPT
from helpers.snapshots import make_repo, tree_mark
from helpers.users import (
    OrdinaryUser,
    UserAccount,
    make_workspace,
    remove_workspace,
    user_account_or_skip,
)

import snakemake_executor_plugin_frozen
from snakemake_executor_plugin_frozen.record import gc


def pytest_report_header() -> str:
    """Which Snakemake, and which copy of the plugin, the run tests (scripts/test runs some
    tests again with .venv-oldest, whose plugin is installed from a wheel)."""
    plugin = Path(snakemake_executor_plugin_frozen.__file__).parent
    return f"snakemake {version('snakemake')} ({sys.executable}); plugin {plugin}"


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
    return user_account_or_skip()


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


@pytest.fixture
def no_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """gc judges by age alone: no grace period for what was made a moment ago."""
    monkeypatch.setattr(gc, "GRACE", 0.0)


@pytest.fixture
def repo(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """A git repository at tmp_path/repo holding the test's tree: its module declares it as
    `pytestmark = pytest.mark.tree(files, ...)`, in the arguments of `helpers.snapshots.
    make_repo` (ignore, modes, links, untracked, settle)."""
    mark = tree_mark(request)
    return make_repo(tmp_path / "repo", *mark.args, **mark.kwargs)
