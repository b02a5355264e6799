"""``snakemake-frozen ... | head`` ends quietly: no BrokenPipeError traceback, the exit
status of a process ended by SIGPIPE (issue 16 item 8)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers.snapshots import make_repo, pack_tree


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A tree whose listing is far beyond a pipe's buffer (6,000 files), packed."""
    root = tmp_path_factory.mktemp("pipes") / "repo"
    repo = make_repo(root, {f"f{i}.py": f"x = {i}\n" for i in range(6000)})
    return repo, pack_tree(repo).id


@pytest.mark.parametrize("command", [["show", "--json"], ["show", "--files"]])
def test_a_reader_that_leaves_early_gets_no_traceback(
    big: tuple[Path, str], command: list[str]
) -> None:
    repo, snapshot_id = big
    argv = [sys.executable, "-m", "snakemake_executor_plugin_frozen.cli", "-C", str(repo)]
    argv += [*command, snapshot_id]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.read(10)
    process.stdout.close()  # as `head -c 10` does
    error = process.stderr.read().decode()
    assert process.wait(timeout=60) == 141, error
    assert "Traceback" not in error and "BrokenPipe" not in error, error
