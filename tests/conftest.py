import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CLUSTER_SCRIPT = REPO / "scripts" / "slurm-cluster"
DEMO = REPO / "workflows" / "demo"


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
