"""Which tree the executor snapshots."""

import os
import subprocess
import time
from pathlib import Path

import pytest
from snakemake_interface_common.exceptions import WorkflowError

from snakemake_executor_plugin_frozen.workflow_sources import (
    changed_since,
    code_root_for,
    process_start_time,
)


def git_repo(path: Path, ignore: str = "") -> Path:
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    (path / ".gitignore").write_text(ignore)
    return path


def test_code_root_is_the_git_top_level_above_the_snakefile(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    (repo / "workflow").mkdir()
    (repo / "workflow" / "Snakefile").write_text("")
    assert code_root_for(repo / "workflow" / "Snakefile", "") == repo.resolve()


def test_code_root_outside_git_is_the_snakefiles_directory(tmp_path: Path) -> None:
    (tmp_path / "wf").mkdir()
    assert code_root_for(tmp_path / "wf" / "Snakefile", "") == (tmp_path / "wf").resolve()


def test_an_ignored_snakefile_does_not_belong_to_the_enclosing_repository(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo", ignore=".demo/\n")
    (repo / ".demo").mkdir()
    (repo / ".demo" / "Snakefile").write_text("")
    assert code_root_for(repo / ".demo" / "Snakefile", "") == (repo / ".demo").resolve()


def test_code_root_setting_wins_and_must_exist(tmp_path: Path) -> None:
    assert code_root_for(tmp_path / "x" / "Snakefile", str(tmp_path)) == tmp_path.resolve()
    with pytest.raises(WorkflowError, match="frozen-code-root"):
        code_root_for(tmp_path / "Snakefile", str(tmp_path / "missing"))


def test_process_start_time_is_this_processes_start() -> None:
    started = process_start_time()
    assert started is not None
    # pytest has been running for a while, but not for a day, and not in the future.
    assert time.time() - 86400 < started <= time.time() + 1


def test_files_edited_after_the_run_started_are_reported(tmp_path: Path) -> None:
    old, new, gone = tmp_path / "old.smk", tmp_path / "new.smk", tmp_path / "gone.smk"
    skewed = tmp_path / "skewed.smk"
    for path in (old, new, skewed):
        path.write_text("")
    started = time.time() - 30
    os.utime(old, (started - 60, started - 60))
    os.utime(new, (started + 5, started + 5))
    os.utime(skewed, (started + 3600, started + 3600))  # a file server's clock ahead
    assert changed_since([old, new, gone, skewed], started) == [new, gone]
    assert changed_since([old, new], None) == []
